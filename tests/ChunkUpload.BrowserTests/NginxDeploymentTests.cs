using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;

namespace ChunkUpload.BrowserTests;

/// <summary>
/// README "Deploying", run: the published server (not the repository's build) behind Debian's nginx with the README's
/// site configuration, over TLS, and the page driven in Chromium through nginx.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class NginxDeploymentTests(BrowserFixture browser, NginxDeployment deployment, ITestOutputHelper output)
    : IClassFixture<NginxDeployment>, IAsyncLifetime
{
    private const int MiB = 1024 * 1024;

    // URL file name under /lib -> the npm file the build copies there (webpage.targets).
    private static readonly Dictionary<string, string> Libraries = new(StringComparer.Ordinal)
    {
        ["resumable.js"] = "resumablejs/resumable.js",
        ["flow.js"] = "@flowjs/flow.js/dist/flow.js",
        ["fine-uploader.core.js"] = "fine-uploader/fine-uploader/fine-uploader.core.js",
        ["uppy.min.js"] = "uppy/dist/uppy.min.js",
        ["uppy.min.css"] = "uppy/dist/uppy.min.css",
    };

    private readonly List<int> _chunkStatuses = [];
    private IBrowserContext _context = null!;
    private IPage _page = null!;
    private int _chunkPosts;

    public async Task InitializeAsync()
    {
        // nginx's certificate is self-signed for this test.
        (_context, _page) = await BrowserPage.NewAsync(browser.Browser, deployment.ProxyUri, output, options => options.IgnoreHTTPSErrors = true);
        _page.Response += (_, response) =>
        {
            if (response.Request.Method == "POST" && BrowserPage.IsUploadUrl(response.Url))
            {
                lock (_chunkStatuses)
                {
                    _chunkStatuses.Add(response.Status);
                }
            }
        };
    }

    public async Task DisposeAsync() => await _context.CloseAsync();

    [Fact]
    public async Task Published_folder_holds_the_page_and_exactly_its_libraries_and_nothing_of_the_repository()
    {
        output.WriteLine("fixture: " + deployment.Timings);
        var publish = deployment.PublishDirectory;
        var files = Directory.GetFiles(publish, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(publish, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList();
        var bytes = files.Sum(f => new FileInfo(Path.Combine(publish, f)).Length);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"published folder: {files.Count} files, {bytes / (double)MiB:F1} MiB; wwwroot: {string.Join(", ", files.Where(f => f.StartsWith("wwwroot/", StringComparison.Ordinal)))}"));

        // The page: exactly the repository's wwwroot, byte for byte.
        var repositoryPage = Path.Combine(ServerProcess.RepositoryRoot, "wwwroot");
        var pageFiles = Directory.GetFiles(repositoryPage, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(repositoryPage, f).Replace('\\', '/')).ToList();
        Assert.Contains("index.html", pageFiles);
        Assert.Contains("app.js", pageFiles);
        Assert.Contains("app.css", pageFiles);
        var expectedWebRoot = pageFiles.Select(f => "wwwroot/" + f)
            .Concat(Libraries.Keys.Select(name => "wwwroot/lib/" + name)).Order(StringComparer.Ordinal);
        Assert.Equal(expectedWebRoot, files.Where(f => f.StartsWith("wwwroot/", StringComparison.Ordinal)));
        foreach (var page in pageFiles)
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(repositoryPage, page)), File.ReadAllBytes(Path.Combine(publish, "wwwroot", page)));
        }

        // The libraries: the allow-listed npm files, byte for byte.
        foreach (var (name, npmPath) in Libraries)
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(ServerProcess.RepositoryRoot, "node_modules", npmPath)),
                File.ReadAllBytes(Path.Combine(publish, "wwwroot", "lib", name)));
        }

        // Nothing of the repository or of npm's tree.
        Assert.DoesNotContain(files, f => f.EndsWith(".sln", StringComparison.Ordinal) || f.EndsWith(".csproj", StringComparison.Ordinal)
                                          || f.EndsWith(".targets", StringComparison.Ordinal) || Path.GetFileName(f) is "package.json" or "package-lock.json"
                                          || f.Split('/').Any(part => part is "node_modules" or "src" or "tests" or "scripts" or ".git"));
        Assert.True(File.Exists(Path.Combine(publish, "ChunkUpload.Server.dll")));
        Assert.True(File.Exists(Path.Combine(publish, "appsettings.json")));

        // The published server serves them, and nothing else of node_modules, with no repository above it.
        Assert.DoesNotContain("not served", deployment.Server.Log, StringComparison.Ordinal);
        Assert.Equal(File.ReadAllText(Path.Combine(repositoryPage, "index.html")), await deployment.ProxyHttp.GetStringAsync(new Uri("/", UriKind.Relative)));
        foreach (var name in Libraries.Keys)
        {
            using var library = await deployment.ProxyHttp.GetAsync(new Uri("/lib/" + name, UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, library.StatusCode);
        }

        foreach (var outside in new[] { "/lib/uppy.min.js.map", "/lib/", "/node_modules/resumablejs/resumable.js", "/lib/package.json" })
        {
            using var response = await deployment.ProxyHttp.GetAsync(new Uri(outside, UriKind.Relative));
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }
    }

    [Fact]
    public async Task Resumable_js_upload_through_nginx_resumes_after_a_reload_and_downloads_byte_identical()
    {
        const int chunks = 40;
        var file = CreateFile("through-nginx.bin", chunks * MiB);
        await BrowserPage.UseChunkSizeAsync(_page, MiB);
        await SlowDownChunkPostsAsync(TimeSpan.FromMilliseconds(300));
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        await WaitForServerAsync(file, status => status["receivedChunks"]!.GetValue<int>() >= 10);
        await BrowserPage.ReloadAsync(_page);
        Interlocked.Exchange(ref _chunkPosts, 0);

        var before = await ServerStatusAsync(file);
        var missing = before!["missingChunks"]!.AsArray().Count;
        output.WriteLine($"after the reload: {chunks - missing} of {chunks} chunks on the server");
        Assert.InRange(missing, 1, chunks - 10);

        // Selecting the same file again resumes it: the chunk tests (through nginx) skip what the server has.
        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var row = Row(file);
        await Expect(row.Locator(".note")).ToContainTextAsync(BrowserPage.ResumingPercent());
        await WaitForStateAsync(file, "complete");
        var expected = TestFiles.Sha256(file);
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(expected);
        var posts = Volatile.Read(ref _chunkPosts);
        output.WriteLine($"chunk POSTs after the reload: {posts} (missing was {missing})");
        Assert.InRange(posts, Math.Max(1, missing - 4), missing);

        await AssertDownloadThroughNginxAsync(row, file, expected);
        // Every chunk went through nginx, over HTTP/2 from the browser.
        var logged = ChunkPostsInAccessLog();
        Assert.True(logged >= chunks, $"nginx logged {logged} chunk POSTs for {chunks} chunks");
    }

    [Fact]
    public async Task Upload_through_nginx_rides_out_a_server_restart_answered_502_and_completes_by_itself()
    {
        var file = CreateFile("server-restart.bin", 24 * MiB);
        await BrowserPage.UseChunkSizeAsync(_page, MiB);
        await SlowDownChunkPostsAsync(TimeSpan.FromMilliseconds(300));
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        await WaitForServerAsync(file, status => status["receivedChunks"]!.GetValue<int>() >= 5);

        // The server dies mid-upload (SIGKILL): nginx answers 502, and the page retries with a growing delay.
        await deployment.Server.StopAsync();
        var row = Row(file);
        await Expect(row.Locator(".status")).ToContainTextAsync("HTTP 502", new() { Timeout = 30_000 });
        await Expect(row.Locator(".status")).ToContainTextAsync(BrowserPage.RetryingInSeconds());

        // Restarted on the same port (systemd's Restart=on-failure): the upload goes on with no one touching it.
        await deployment.Server.RestartAsync(samePort: true);
        await WaitForStateAsync(file, "complete");
        var expected = TestFiles.Sha256(file);
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(expected);
        lock (_chunkStatuses)
        {
            output.WriteLine($"chunk POST statuses: {string.Join(", ", _chunkStatuses.GroupBy(s => s).Select(g => $"{g.Key} x{g.Count()}"))}");
            Assert.Contains(502, _chunkStatuses);
        }

        await AssertDownloadThroughNginxAsync(row, file, expected);
    }

    [Fact]
    public async Task Forwarded_proto_is_believed_from_nginx_and_ignored_from_other_addresses()
    {
        // Through nginx (TLS): the Google-style session URL the server makes is nginx's https address.
        var name = "forwarded-" + Guid.NewGuid().ToString("N") + ".bin";
        using (var viaNginx = await InitiateGoogleUploadAsync(deployment.ProxyHttp, name + "-a"))
        {
            Assert.Equal(HttpStatusCode.OK, viaNginx.StatusCode);
            Assert.Equal(new Uri(deployment.ProxyUri, "/upload/" + name + "-a"), viaNginx.Headers.Location);
        }

        // Straight to the server from 127.0.0.2, which is no configured proxy: forged headers change nothing.
        using (var forgedClient = ClientFrom(IPAddress.Parse("127.0.0.2")))
        using (var forged = await InitiateGoogleUploadAsync(forgedClient, name + "-b", forge: true))
        {
            Assert.Equal(HttpStatusCode.OK, forged.StatusCode);
            Assert.Equal(new Uri(deployment.Server.BaseUri, "/upload/" + name + "-b"), forged.Headers.Location);
        }

        // The same forged headers from nginx's own address (127.0.0.1) are believed: trust is by address.
        using (var fromProxyAddress = ClientFrom(IPAddress.Loopback))
        using (var believed = await InitiateGoogleUploadAsync(fromProxyAddress, name + "-c", forge: true))
        {
            Assert.Equal(HttpStatusCode.OK, believed.StatusCode);
            Assert.Equal("https", believed.Headers.Location!.Scheme);
        }
    }

    [Fact]
    public async Task Uploads_count_against_the_address_nginx_forwards_and_a_forged_address_counts_only_from_nginx()
    {
        // Upload:MaxActiveUploadsPerClient is small here; each address is fresh, so only this test's uploads count.
        var limit = NginxDeployment.MaxActiveUploadsPerClient;
        var client = FreshLoopbackAddress();
        var neighbour = FreshLoopbackAddress();
        var name = "per-client-" + Guid.NewGuid().ToString("N");

        // Through nginx from the client's address: nginx connects from 127.0.0.1 and names the client in X-Forwarded-For.
        using var viaNginx = deployment.ProxyClient(client);
        for (var i = 0; i < limit; i++)
        {
            using var started = await InitiateGoogleUploadAsync(viaNginx, $"{name}-{i}");
            Assert.Equal(HttpStatusCode.OK, started.StatusCode);
        }

        // The next one is refused: the server counted them against the client. A forged X-Forwarded-For sent to nginx
        // does not help, since nginx appends the address it saw and the server takes only that last one (ForwardLimit 1).
        using (var refused = await InitiateGoogleUploadAsync(viaNginx, name + "-over", forwardedFor: FreshLoopbackAddress().ToString()))
        {
            await AssertTooManyUploadsAsync(refused);
        }

        // Another client of the same nginx (the same 127.0.0.1 at the server's socket) is a different client.
        using (var neighbourViaNginx = deployment.ProxyClient(neighbour))
        using (var accepted = await InitiateGoogleUploadAsync(neighbourViaNginx, name + "-neighbour"))
        {
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        }

        // Straight to the server from the client's address, which is no configured proxy: its X-Forwarded-For naming
        // a fresh address is ignored, and the client's own address is still full.
        using (var direct = ClientFrom(client))
        using (var forged = await InitiateGoogleUploadAsync(direct, name + "-direct", forwardedFor: FreshLoopbackAddress().ToString()))
        {
            await AssertTooManyUploadsAsync(forged);
        }

        // The same header from nginx's address (the configured proxy) is believed: the client it names is fresh.
        using (var fromProxyAddress = ClientFrom(IPAddress.Loopback))
        using (var believed = await InitiateGoogleUploadAsync(fromProxyAddress, name + "-believed", forwardedFor: client.ToString()))
        {
            await AssertTooManyUploadsAsync(believed);
        }

        using (var fromProxyAddress = ClientFrom(IPAddress.Loopback))
        using (var believed = await InitiateGoogleUploadAsync(fromProxyAddress, name + "-fresh", forwardedFor: FreshLoopbackAddress().ToString()))
        {
            Assert.Equal(HttpStatusCode.OK, believed.StatusCode);
        }
    }

    // ---------- helpers ----------

    private static async Task<HttpResponseMessage> InitiateGoogleUploadAsync(HttpClient client, string name, bool forge = false, string? forwardedFor = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/upload/" + name + "?uploadType=resumable", UriKind.Relative));
        request.Headers.Add("X-Upload-Content-Length", "5");
        if (forge)
        {
            request.Headers.Add("X-Forwarded-Proto", "https");
            forwardedFor ??= "203.0.113.9";
        }

        if (forwardedFor is not null)
        {
            request.Headers.Add("X-Forwarded-For", forwardedFor);
        }

        return await client.SendAsync(request);
    }

    private async Task AssertTooManyUploadsAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        output.WriteLine($"{(int)response.StatusCode} {body}");
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("too_many_uploads", JsonNode.Parse(body)!["error"]!["errors"]![0]!["reason"]!.GetValue<string>());
    }

    /// <summary>A loopback address no other test uses (127.x.y.z, not 127.0.0.x), so its per-client counts start at 0.</summary>
    private static IPAddress FreshLoopbackAddress() =>
        new([127, (byte)Random.Shared.Next(1, 255), (byte)Random.Shared.Next(0, 256), (byte)Random.Shared.Next(1, 255)]);

    /// <summary>A client of the server (not of nginx) whose connections come from <paramref name="source"/>.</summary>
    private HttpClient ClientFrom(IPAddress source) =>
        new(new SocketsHttpHandler { ConnectCallback = (context, ct) => NginxDeployment.ConnectFromAsync(source, context.DnsEndPoint, ct) })
        {
            BaseAddress = deployment.Server.BaseUri,
            Timeout = TimeSpan.FromSeconds(30),
        };

    private async Task AssertDownloadThroughNginxAsync(ILocator row, string file, string expected)
    {
        var (download, saved) = await BrowserPage.DownloadAsync(row, browser.WorkDirectory);
        Assert.StartsWith(deployment.ProxyUri.ToString(), download.Url, StringComparison.Ordinal);
        Assert.Equal(new FileInfo(file).Length, new FileInfo(saved).Length);
        Assert.Equal(expected, TestFiles.Sha256(saved));
        Assert.Equal(Path.GetFileName(file), download.SuggestedFilename);
    }

    private int ChunkPostsInAccessLog() =>
        deployment.AccessLog().Split('\n').Count(line => line.Contains("\"POST /upload?", StringComparison.Ordinal));

    private Task OpenPageAsync() => BrowserPage.OpenAsync(_page, "/");

    /// <summary>Counts chunk POSTs and holds each for a while, like a slow uplink, so a test can act mid-upload.</summary>
    private Task SlowDownChunkPostsAsync(TimeSpan delay) =>
        BrowserPage.SlowDownChunkPostsAsync(_page, delay, () => Interlocked.Increment(ref _chunkPosts));

    private ILocator Row(string file) => BrowserPage.ResumableRow(_page, file);

    private Task<ILocator> WaitForStateAsync(string file, string state) =>
        BrowserPage.WaitForStateAsync(Row(file), state, output, deployment.Server, () => deployment.NginxLog);

    private Task<JsonNode?> ServerStatusAsync(string file) => ServerStatus.GetAsync(deployment.Server.Http, Identifier(file));

    private Task WaitForServerAsync(string file, Func<JsonNode, bool> condition) =>
        ServerStatus.WaitForAsync(deployment.Server.Http, Identifier(file), condition, () => deployment.NginxLog);

    private static string Identifier(string file) => ServerStatus.ResumableIdentifier(file);

    private string CreateFile(string name, int size) => TestFiles.Create(browser.WorkDirectory, name, size);
}
