using System.Globalization;
using System.Text.Json.Nodes;

namespace ChunkUpload.BrowserTests;

/// <summary>
/// The page's tus mode (/?lib=uppy): Uppy 6's Dashboard and tus plugin from the npm package "uppy" (its prebuilt
/// bundle), driven in Chromium against the real server's /tus endpoint.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class UppyPageTests(BrowserFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private const int MiB = 1024 * 1024;

    private readonly List<TusRequest> _tusRequests = [];
    private IBrowserContext _context = null!;
    private IPage _page = null!;

    public async Task InitializeAsync() =>
        (_context, _page) = await BrowserPage.NewAsync(fixture.Browser, fixture.Server.BaseUri, output,
            options => options.ViewportSize = new ViewportSize { Width = 1000, Height = 1000 });

    public async Task DisposeAsync() => await _context.CloseAsync();

    [Fact]
    public async Task File_added_to_the_Uppy_Dashboard_uploads_with_tus_and_shows_the_SHA256_and_download_link()
    {
        const string name = "Ünïcödé 東京 ✓.bin"; // Uppy sends it (as name and filename) in Upload-Metadata
        var file = CreateFile(name, (9 * MiB) + 321);
        await RecordTusRequestsAsync(TimeSpan.Zero);
        await OpenPageAsync();
        await Expect(_page.Locator("#library-name")).ToHaveTextAsync("Uppy (tus)");
        await Expect(_page.Locator("#limits")).ToContainTextAsync("tus protocol");

        await DashboardFileInput().SetInputFilesAsync(file);
        var row = await WaitForStateAsync(name, "complete");

        var expected = Sha256(file);
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(expected);
        var (download, saved) = await BrowserPage.DownloadAsync(row, fixture.WorkDirectory);
        Assert.Equal(expected, Sha256(saved));
        Assert.Equal(name, download.SuggestedFilename);

        var requests = TusRequests();
        var post = Assert.Single(requests, r => r.Method == "POST");
        Assert.Contains("filename ", post.Metadata, StringComparison.Ordinal);
        var serverId = ServerIdOf(requests.First(r => r.Method == "PATCH").Url);
        var status = await ServerStatusAsync(serverId);
        Assert.Equal("tus", status!["protocol"]!.GetValue<string>());
        Assert.Equal(name, status["fileName"]!.GetValue<string>());
        Assert.Null(status["relativePath"]); // Uppy sends relativePath "null" for a file not picked from a folder
        Assert.Equal(expected, status["sha256"]!.GetValue<string>());
        await _page.ScreenshotAsync(new PageScreenshotOptions
        {
            Path = Path.Combine(BrowserFixture.ArtifactsDirectory, "finished-page-uppy.png"),
            FullPage = true,
        });
    }

    [Fact]
    public async Task Reload_mid_upload_then_the_same_file_again_resumes_with_PATCHes_for_the_missing_bytes_only()
    {
        const int size = 32 * MiB;
        const string name = "reload-me-uppy.bin";
        var file = CreateFile(name, size);
        await BrowserPage.UseChunkSizeAsync(_page, MiB);
        await RecordTusRequestsAsync(TimeSpan.FromMilliseconds(300));
        await OpenPageAsync();

        await DashboardFileInput().SetInputFilesAsync(file);
        var serverId = await WaitForAsync(() => TusRequests().FirstOrDefault(r => r.Method == "PATCH") is { } p ? ServerIdOf(p.Url) : null);
        await WaitForServerAsync(serverId, status => status["offset"]!.GetValue<long>() >= 10 * MiB);
        await BrowserPage.ReloadAsync(_page);
        lock (_tusRequests)
        {
            _tusRequests.Clear();
        }

        var before = (await ServerStatusAsync(serverId))!;
        var stored = before["offset"]!.GetValue<long>();
        output.WriteLine($"after reload: {stored} of {size} bytes on the server ({before["state"]})");
        Assert.Equal("receiving", before["state"]!.GetValue<string>());

        await DashboardFileInput().SetInputFilesAsync(file);
        var row = Row(name);
        await Expect(row.Locator(".note")).ToContainTextAsync(BrowserPage.ResumingPercent());
        await WaitForStateAsync(name, "complete");
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(Sha256(file));

        var after = TusRequests();
        foreach (var request in after)
        {
            output.WriteLine($"after reload: {request.Method} {request.Url} offset={request.Offset} body={request.BodyBytes}");
        }

        Assert.DoesNotContain(after, r => r.Method == "POST"); // resumed from the URL Uppy kept, not created anew
        Assert.All(after, r => Assert.Equal(serverId, ServerIdOf(r.Url)));
        Assert.Equal("HEAD", after[0].Method);
        var patches = after.Where(r => r.Method == "PATCH").ToList();
        var first = patches[0].Offset;
        Assert.InRange(first, stored, size - 1); // from where the server stopped (a PATCH cut by the reload may add a prefix)
        Assert.Equal(
            Enumerable.Range(0, (int)((size - first + MiB - 1) / MiB)).Select(k => first + ((long)k * MiB)),
            patches.Select(p => p.Offset));
        Assert.Equal(size - first, patches.Sum(p => p.BodyBytes));
    }

    [Fact]
    public async Task A_refused_tus_upload_shows_the_servers_problem_detail_in_its_row()
    {
        const string name = "refused-uppy.bin";
        var file = CreateFile(name, MiB);
        await _page.RouteAsync(BrowserPage.PathIs("/tus"), async route =>
        {
            await route.FulfillAsync(new RouteFulfillOptions
            {
                Status = 413,
                ContentType = "application/problem+json",
                Headers = new Dictionary<string, string> { ["Tus-Resumable"] = "1.0.0" },
                Body = """{"type":"about:blank","title":"Payload Too Large","status":413,"detail":"This server takes files up to 1 KB; this one is 1 MB.","code":"file_too_large"}""",
            });
        });
        await OpenPageAsync();

        await DashboardFileInput().SetInputFilesAsync(file);

        var row = await WaitForStateAsync(name, "error");
        await Expect(row.Locator(".status")).ToHaveTextAsync("Failed: This server takes files up to 1 KB; this one is 1 MB.");
    }

    // ---------- helpers ----------

    private sealed record TusRequest(string Method, string Url, long Offset, long BodyBytes, string Metadata);

    private ILocator DashboardFileInput() => _page.Locator("input.uppy-Dashboard-input[name='files[]']:not([webkitdirectory])");

    private ILocator Row(string name) =>
        _page.Locator("li.file", new() { Has = _page.Locator(".name", new() { HasTextString = name }) });

    private List<TusRequest> TusRequests()
    {
        lock (_tusRequests)
        {
            return [.. _tusRequests];
        }
    }

    private static string ServerIdOf(string url) => Uri.UnescapeDataString(new Uri(url).Segments[^1]);

    private async Task OpenPageAsync()
    {
        await BrowserPage.OpenAsync(_page, "/?lib=uppy");
        await Expect(_page.Locator("#uppy-dashboard .uppy-Dashboard")).ToBeVisibleAsync();
    }

    /// <summary>Records every tus request the page makes; holds each PATCH for <paramref name="patchDelay"/>, like a slow uplink.</summary>
    private async Task RecordTusRequestsAsync(TimeSpan patchDelay) =>
        await _page.RouteAsync(url => new Uri(url).AbsolutePath.StartsWith("/tus", StringComparison.Ordinal), async route =>
        {
            var request = route.Request;
            var headers = await request.AllHeadersAsync();
            var offset = headers.TryGetValue("upload-offset", out var o) ? long.Parse(o, CultureInfo.InvariantCulture) : -1;
            lock (_tusRequests)
            {
                _tusRequests.Add(new TusRequest(request.Method, request.Url, offset, request.PostDataBuffer?.LongLength ?? 0,
                    headers.TryGetValue("upload-metadata", out var m) ? m : ""));
            }

            if (request.Method == "PATCH")
            {
                await Task.Delay(patchDelay);
            }

            await BrowserPage.ContinueAsync(route);
        });

    private Task<ILocator> WaitForStateAsync(string name, string state) =>
        BrowserPage.WaitForStateAsync(Row(name), state, output, fixture.Server);

    private Task<JsonNode?> ServerStatusAsync(string serverId) => ServerStatus.GetAsync(fixture.Server.Http, serverId);

    private Task WaitForServerAsync(string serverId, Func<JsonNode, bool> condition) =>
        ServerStatus.WaitForAsync(fixture.Server.Http, serverId, condition);

    private static async Task<T> WaitForAsync<T>(Func<T?> probe)
        where T : class
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (probe() is { } value)
            {
                return value;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("the condition did not hold within 60 s");
            }

            await Task.Delay(50);
        }
    }

    private string CreateFile(string name, int size) => TestFiles.Create(fixture.WorkDirectory, name, size);

    private static string Sha256(string path) => TestFiles.Sha256(path);
}
