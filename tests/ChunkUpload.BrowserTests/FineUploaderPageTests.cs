using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ChunkUpload.BrowserTests;

/// <summary>
/// The page with Fine Uploader 5.16.2 (/?lib=fineuploader) in Chromium against the real server: parts in parallel,
/// the completion request, automatic retries and resume from the library's localStorage records.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed partial class FineUploaderPageTests(BrowserFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private const int MiB = 1024 * 1024;

    private readonly List<string> _partBodies = [];
    private IBrowserContext _context = null!;
    private IPage _page = null!;
    private int _partPosts;
    private int _donePosts;
    private int _inFlight;
    private int _maxInFlight;

    public async Task InitializeAsync()
    {
        (_context, _page) = await BrowserPage.NewAsync(fixture.Browser, fixture.Server.BaseUri, output);
        _page.Request += (_, request) =>
        {
            if (IsPartPost(request))
            {
                var now = Interlocked.Increment(ref _inFlight);
                int seen;
                while (now > (seen = Volatile.Read(ref _maxInFlight)) && Interlocked.CompareExchange(ref _maxInFlight, now, seen) != seen)
                {
                }
            }
        };
        _page.RequestFinished += (_, request) => Done(request);
        _page.RequestFailed += (_, request) => Done(request);

        void Done(IRequest request)
        {
            if (IsPartPost(request))
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }
    }

    public async Task DisposeAsync() => await _context.CloseAsync();

    [Fact]
    public async Task Parts_go_up_in_parallel_and_the_done_request_completes_the_file_with_the_right_sha256()
    {
        const int parts = 11;
        var file = CreateFile("fu-concurrent.bin", (10 * MiB) + 777);
        await BrowserPage.UseChunkSizeAsync(_page, MiB);
        await WatchUploadsAsync(TimeSpan.FromMilliseconds(150));
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var row = await WaitForStateAsync(file, "complete");

        var sha256 = TestFiles.Sha256(file);
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(sha256);
        var uuid = await UuidOfAsync(row);
        Assert.Matches(UuidPattern(), uuid);
        await Expect(row.Locator("a.download")).ToHaveAttributeAsync("href", "/files/" + uuid);
        var status = await ServerStatusAsync(uuid);
        Assert.Equal("fineuploader", status!["protocol"]!.GetValue<string>());
        Assert.Equal(sha256, status["sha256"]!.GetValue<string>());

        Assert.Equal(parts, Volatile.Read(ref _partPosts));
        Assert.Equal(1, Volatile.Read(ref _donePosts));
        output.WriteLine($"most parts in flight at once: {Volatile.Read(ref _maxInFlight)}");
        Assert.True(Volatile.Read(ref _maxInFlight) >= 2, "the parts were sent one at a time");
        Assert.Equal(0, await ResumeRecordsAsync()); // the library forgets a finished file
        await _page.ScreenshotAsync(new PageScreenshotOptions
        {
            Path = Path.Combine(BrowserFixture.ArtifactsDirectory, "finished-page-fineuploader.png"),
            FullPage = true,
        });
    }

    [Fact]
    public async Task A_part_that_fails_once_with_500_is_retried_and_the_file_completes()
    {
        var file = CreateFile("fu-flaky.bin", (6 * MiB) + 5);
        await BrowserPage.UseChunkSizeAsync(_page, MiB);
        var failuresLeft = 1;
        await _page.RouteAsync(IsPartUrl, async route =>
        {
            if (route.Request.Method == "POST" && Interlocked.Decrement(ref failuresLeft) >= 0)
            {
                Interlocked.Increment(ref _partPosts);
                await route.FulfillAsync(new RouteFulfillOptions { Status = 500, ContentType = "text/plain", Body = "simulated failure" });
                return;
            }

            if (route.Request.Method == "POST")
            {
                Interlocked.Increment(ref _partPosts);
            }

            await BrowserPage.ContinueAsync(route);
        });
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var row = Row(file);
        await Expect(row.Locator(".status")).ToContainTextAsync(BrowserPage.RetryingInSeconds(), new() { Timeout = 20_000 });
        await Expect(row.Locator(".status")).ToContainTextAsync("The server had a problem (HTTP 500).");
        await WaitForStateAsync(file, "complete");
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(TestFiles.Sha256(file));
        Assert.True(failuresLeft < 0, "the injected failure was used");
        // 7 parts plus the failed one sent again (and any sibling parts the library aborted with it).
        Assert.InRange(Volatile.Read(ref _partPosts), 8, 7 + 1 + 4);
    }

    [Fact]
    public async Task Reload_mid_upload_then_the_same_file_again_resumes_with_fewer_part_posts_than_parts()
    {
        const int parts = 32;
        var file = CreateFile("fu-reload.bin", parts * MiB);
        await BrowserPage.UseChunkSizeAsync(_page, MiB);
        await WatchUploadsAsync(TimeSpan.FromMilliseconds(300));
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var uuid = await UuidOfAsync(Row(file));
        await WaitForServerAsync(uuid, status => status["receivedChunks"]!.GetValue<int>() >= 10);
        await BrowserPage.ReloadAsync(_page);
        Assert.Equal(1, await ResumeRecordsAsync());
        var missing = (await ServerStatusAsync(uuid))!["missingChunks"]!.AsArray().Count;
        output.WriteLine($"after reload: {parts - missing} of {parts} parts on the server");
        Interlocked.Exchange(ref _partPosts, 0);
        lock (_partBodies)
        {
            _partBodies.Clear();
        }

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var row = Row(file);
        Assert.Equal(uuid, await UuidOfAsync(row)); // the library took the uuid from its record
        await Expect(row.Locator(".note")).ToContainTextAsync(BrowserPage.ResumingPercent());
        await WaitForStateAsync(file, "complete");
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(TestFiles.Sha256(file));

        var posts = Volatile.Read(ref _partPosts);
        output.WriteLine($"part POSTs after the reload: {posts} (missing was {missing})");
        Assert.True(posts < parts, $"{posts} part POSTs after the reload for {parts} parts: nothing was resumed");
        // Parts cut by the reload may have landed after the library's last record: they are sent again (and drained).
        Assert.InRange(posts, missing, missing + 4);
        lock (_partBodies)
        {
            Assert.Contains(_partBodies, body => body.Contains("name=\"qqresume\"", StringComparison.Ordinal));
        }

        Assert.Equal(1, Volatile.Read(ref _donePosts));
    }

    [Fact]
    public async Task A_part_the_server_never_got_makes_done_answer_reset_and_the_library_sends_the_file_again()
    {
        const int parts = 5;
        var file = CreateFile("fu-lost-part.bin", (4 * MiB) + 99);
        await BrowserPage.UseChunkSizeAsync(_page, MiB);
        var swallowed = 0;
        await _page.RouteAsync(IsPartUrl, async route =>
        {
            // The second part "succeeds" without reaching the server, as if an intermediary lost it.
            if (route.Request.Method == "POST" && Interlocked.Increment(ref _partPosts) == 2)
            {
                Interlocked.Exchange(ref swallowed, 1);
                await route.FulfillAsync(new RouteFulfillOptions { Status = 200, ContentType = "application/json", Body = """{"success":true}""" });
                return;
            }

            await BrowserPage.ContinueAsync(route);
        });
        await _page.RouteAsync(BrowserPage.PathIs("/fineuploader/done"), async route =>
        {
            Interlocked.Increment(ref _donePosts);
            await BrowserPage.ContinueAsync(route);
        });
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var row = Row(file);
        await Expect(row.Locator(".status")).ToContainTextAsync("never arrived", new() { Timeout = 30_000 });
        await WaitForStateAsync(file, "complete");
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(TestFiles.Sha256(file));
        Assert.Equal(1, swallowed);
        Assert.Equal(2, Volatile.Read(ref _donePosts));
        Assert.Equal(2 * parts, Volatile.Read(ref _partPosts)); // every part again from part 0
    }

    [Fact]
    public async Task A_resumed_file_the_server_no_longer_has_starts_over_from_its_first_part()
    {
        const int parts = 16;
        var file = CreateFile("fu-forgotten.bin", parts * MiB);
        await BrowserPage.UseChunkSizeAsync(_page, MiB);
        await WatchUploadsAsync(TimeSpan.FromMilliseconds(300));
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var uuid = await UuidOfAsync(Row(file));
        await WaitForServerAsync(uuid, status => status["receivedChunks"]!.GetValue<int>() >= 4);
        await BrowserPage.ReloadAsync(_page);
        Assert.Equal(1, await ResumeRecordsAsync());
        using (var delete = await fixture.Server.Http.DeleteAsync(new Uri("uploads/" + uuid, UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        }

        Interlocked.Exchange(ref _partPosts, 0);
        lock (_partBodies)
        {
            _partBodies.Clear();
        }

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        await WaitForStateAsync(file, "complete");
        await Expect(Row(file).Locator(".sha256")).ToHaveTextAsync(TestFiles.Sha256(file));
        Assert.Equal(parts, Volatile.Read(ref _partPosts));
        lock (_partBodies)
        {
            // The page told the library not to resume, so no request asked the server for parts it no longer had.
            Assert.DoesNotContain(_partBodies, body => body.Contains("name=\"qqresume\"", StringComparison.Ordinal));
        }
    }

    // ---------- helpers ----------

    private static bool IsPartUrl(string url) => new Uri(url).AbsolutePath == "/fineuploader";

    private static bool IsPartPost(IRequest request) => request.Method == "POST" && IsPartUrl(request.Url);

    [GeneratedRegex("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")]
    private static partial Regex UuidPattern();

    private async Task OpenPageAsync()
    {
        await BrowserPage.OpenAsync(_page, "/?lib=fineuploader");
        await Expect(_page.Locator("#library-name")).ToHaveTextAsync("Fine Uploader");
    }

    /// <summary>Counts part and done POSTs, keeps each part's parameters, and holds each part like a slow uplink.</summary>
    private async Task WatchUploadsAsync(TimeSpan delay) =>
        await _page.RouteAsync(url => new Uri(url).AbsolutePath.StartsWith("/fineuploader", StringComparison.Ordinal), async route =>
        {
            if (route.Request.Method == "POST" && IsPartUrl(route.Request.Url))
            {
                Interlocked.Increment(ref _partPosts);
                if (route.Request.PostDataBuffer is { } body)
                {
                    // The parameters come before the part's bytes; 4 KiB holds them all.
                    var head = Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, 4096));
                    lock (_partBodies)
                    {
                        _partBodies.Add(head);
                    }
                }

                await Task.Delay(delay);
            }
            else if (route.Request.Method == "POST")
            {
                Interlocked.Increment(ref _donePosts);
            }

            await BrowserPage.ContinueAsync(route);
        });

    private ILocator Row(string file) =>
        _page.Locator("li.file").Filter(new() { Has = _page.Locator(".name", new() { HasTextString = Path.GetFileName(file) }) });

    private static async Task<string> UuidOfAsync(ILocator row)
    {
        await Expect(row).ToHaveCountAsync(1);
        return await row.GetAttributeAsync("data-id") ?? throw new InvalidOperationException("the row has no data-id");
    }

    private Task<int> ResumeRecordsAsync() =>
        _page.EvaluateAsync<int>("Object.keys(localStorage).filter(k => k.indexOf('qqtraditionalresume') === 0).length");

    private Task<ILocator> WaitForStateAsync(string file, string state) =>
        BrowserPage.WaitForStateAsync(Row(file), state, output, fixture.Server);

    private Task<JsonNode?> ServerStatusAsync(string uuid) => ServerStatus.GetAsync(fixture.Server.Http, uuid);

    private Task WaitForServerAsync(string uuid, Func<JsonNode, bool> condition) => ServerStatus.WaitForAsync(fixture.Server.Http, uuid, condition);

    private string CreateFile(string name, int size) => TestFiles.Create(fixture.WorkDirectory, name, size);
}
