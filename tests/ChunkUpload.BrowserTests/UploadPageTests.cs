using System.Net;
using System.Text.Json.Nodes;

namespace ChunkUpload.BrowserTests;

/// <summary>The page at / (resumable.js, or flow.js with ?lib=flow) driven in Chromium against the real server.</summary>
[Collection(BrowserCollection.Name)]
public sealed partial class UploadPageTests(BrowserFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private const int MiB = 1024 * 1024;

    private IBrowserContext _context = null!;
    private IPage _page = null!;
    private int _chunkPosts;

    public async Task InitializeAsync() => (_context, _page) = await BrowserPage.NewAsync(fixture.Browser, fixture.Server.BaseUri, output);

    public async Task DisposeAsync() => await _context.CloseAsync();

    [Fact]
    public async Task File_of_32_MiB_uploads_through_the_page_and_downloads_with_the_same_hash()
    {
        var file = CreateFile("big-32mib.bin", 32 * MiB);
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var row = await WaitForStateAsync(file, "complete");

        var expected = Sha256(file);
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(expected);
        await Expect(_page.Locator("#overall-progress")).ToHaveJSPropertyAsync("value", 1);

        var (download, saved) = await BrowserPage.DownloadAsync(row, fixture.WorkDirectory);
        Assert.Equal(expected, Sha256(saved));
        Assert.Equal("big-32mib.bin", download.SuggestedFilename);
    }

    [Fact]
    public async Task Pause_stops_sending_and_resume_completes_the_upload()
    {
        var file = CreateFile("pause-me.bin", 24 * MiB);
        await BrowserPage.UseChunkSizeAsync(_page, MiB);
        await SlowDownChunkPostsAsync(TimeSpan.FromMilliseconds(300));
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        await WaitForServerAsync(file, status => status["receivedChunks"]!.GetValue<int>() >= 3);
        var row = Row(file);
        await row.GetByRole(AriaRole.Button, new() { Name = "Pause pause-me.bin" }).ClickAsync();
        await Expect(row).ToHaveAttributeAsync("data-state", "paused");
        await Expect(row.Locator(".status")).ToContainTextAsync("Paused");

        // In-flight chunks were aborted; nothing new may start while paused.
        var postsAtPause = Volatile.Read(ref _chunkPosts);
        await _page.WaitForTimeoutAsync(1500);
        Assert.Equal(postsAtPause, Volatile.Read(ref _chunkPosts));
        var paused = await ServerStatusAsync(file);
        Assert.True(paused!["receivedChunks"]!.GetValue<int>() < 24, "the upload finished although it was paused");

        // The Resume button takes the focus: the keyboard user presses Enter.
        var resume = row.GetByRole(AriaRole.Button, new() { Name = "Resume pause-me.bin" });
        await Expect(resume).ToBeFocusedAsync();
        await _page.Keyboard.PressAsync("Enter");
        await WaitForStateAsync(file, "complete");
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(Sha256(file));
    }

    [Fact]
    public async Task Cancel_removes_the_upload_from_the_server()
    {
        var file = CreateFile("cancel-me.bin", 24 * MiB);
        await BrowserPage.UseChunkSizeAsync(_page, MiB);
        await SlowDownChunkPostsAsync(TimeSpan.FromMilliseconds(300));
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        await WaitForServerAsync(file, status => status["receivedChunks"]!.GetValue<int>() >= 2);
        var row = Row(file);
        await row.GetByRole(AriaRole.Button, new() { Name = "Cancel cancel-me.bin" }).ClickAsync();
        await Expect(row).ToHaveAttributeAsync("data-state", "cancelled");

        // The page sends DELETE /uploads/{id}; the session must disappear (GET -> 404).
        var deadline = DateTime.UtcNow.AddSeconds(20);
        HttpStatusCode status;
        while ((status = await ServerStatusCodeAsync(file)) != HttpStatusCode.NotFound && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
        }

        Assert.Equal(HttpStatusCode.NotFound, status);
    }

    [Fact]
    public async Task Chunk_posts_failing_for_a_while_are_retried_with_backoff_and_the_upload_completes()
    {
        var file = CreateFile("flaky-network.bin", 12 * MiB);
        await BrowserPage.UseChunkSizeAsync(_page, 2 * MiB);
        var failuresLeft = 6;
        await _page.RouteAsync(BrowserPage.IsUploadUrl, async route =>
        {
            if (route.Request.Method == "POST" && Interlocked.Decrement(ref failuresLeft) >= 0)
            {
                await route.FulfillAsync(new RouteFulfillOptions
                {
                    Status = 503,
                    ContentType = "application/problem+json",
                    Headers = new Dictionary<string, string> { ["Retry-After"] = "1" },
                    Body = """{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"The server is busy; try again shortly.","code":"busy"}""",
                });
                return;
            }

            await BrowserPage.ContinueAsync(route);
        });
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var row = Row(file);
        await Expect(row.Locator(".status")).ToContainTextAsync(BrowserPage.RetryingInSeconds(), new() { Timeout = 20_000 });
        await Expect(row.Locator(".status")).ToContainTextAsync("The server is busy; try again shortly.");
        await WaitForStateAsync(file, "complete");
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(Sha256(file));
        Assert.True(failuresLeft < 0, "every injected failure was used");
    }

    [Fact]
    public async Task Reload_mid_upload_then_the_same_file_again_sends_only_the_missing_chunks()
    {
        const int chunks = 32;
        var file = CreateFile("reload-me.bin", chunks * MiB);
        await BrowserPage.UseChunkSizeAsync(_page, MiB);
        await SlowDownChunkPostsAsync(TimeSpan.FromMilliseconds(300));
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        await WaitForServerAsync(file, status => status["receivedChunks"]!.GetValue<int>() >= 10);
        await BrowserPage.ReloadAsync(_page);
        Interlocked.Exchange(ref _chunkPosts, 0);

        var before = await ServerStatusAsync(file);
        var missing = before!["missingChunks"]!.AsArray().Count;
        var present = chunks - missing;
        output.WriteLine($"after reload: {present} of {chunks} chunks on the server, {missing} missing");
        Assert.InRange(missing, 1, chunks - 10);

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var row = Row(file);
        await Expect(row.Locator(".note")).ToContainTextAsync(BrowserPage.ResumingPercent());
        await WaitForStateAsync(file, "complete");
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(Sha256(file));

        var posts = Volatile.Read(ref _chunkPosts);
        output.WriteLine($"chunk POSTs after the reload: {posts} (missing was {missing})");
        // Chunks whose upload was cut by the reload may still have landed: never more than were missing,
        // at most the in-flight ones fewer.
        Assert.InRange(posts, Math.Max(1, missing - 4), missing);
    }

    [Fact]
    public async Task Two_files_at_once_one_with_a_unicode_name_and_one_empty_both_complete()
    {
        var unicode = CreateFile("résumé 東京.bin", (5 * MiB) + 12345);
        var empty = CreateFile("empty.bin", 0);
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(new[] { unicode, empty });
        var unicodeRow = await WaitForStateAsync(unicode, "complete");
        var emptyRow = await WaitForStateAsync(empty, "complete");

        await Expect(unicodeRow.Locator(".name")).ToHaveTextAsync("résumé 東京.bin");
        await Expect(unicodeRow.Locator(".sha256")).ToHaveTextAsync(Sha256(unicode));
        await Expect(emptyRow.Locator(".sha256")).ToHaveTextAsync("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        await Expect(_page.Locator("#overall-text")).ToContainTextAsync("2 complete");

        var status = await ServerStatusAsync(unicode);
        Assert.Equal("résumé 東京.bin", status!["fileName"]!.GetValue<string>());

        var (download, saved) = await BrowserPage.DownloadAsync(unicodeRow, fixture.WorkDirectory);
        Assert.Equal(Sha256(unicode), Sha256(saved));
        Assert.Equal("résumé 東京.bin", download.SuggestedFilename);

        var screenshot = Path.Combine(BrowserFixture.ArtifactsDirectory, "finished-page.png");
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        output.WriteLine($"Screenshot of the finished page: {screenshot}");
        Console.WriteLine($"Screenshot of the finished page: {screenshot}");
        Assert.True(new FileInfo(screenshot).Length > 0);
    }

    [Fact]
    public async Task Flow_js_variant_uploads_with_parameters_in_the_body_only()
    {
        var file = CreateFile("via-flow.bin", (10 * MiB) + 777);
        var empty = CreateFile("flow-empty.bin", 0);
        await BrowserPage.UseChunkSizeAsync(_page, 2 * MiB);
        var postUrls = new List<string>();
        await _page.RouteAsync(BrowserPage.IsUploadUrl, async route =>
        {
            if (route.Request.Method == "POST")
            {
                lock (postUrls)
                {
                    postUrls.Add(route.Request.Url);
                }
            }

            await BrowserPage.ContinueAsync(route);
        });
        await OpenPageAsync("/?lib=flow");
        await Expect(_page.Locator("#library-name")).ToHaveTextAsync("flow.js");

        await _page.Locator("#file-input").SetInputFilesAsync(new[] { file, empty });
        var row = await WaitForStateAsync(file, "complete");
        var emptyRow = await WaitForStateAsync(empty, "complete");
        await Expect(row.Locator(".sha256")).ToHaveTextAsync(Sha256(file));
        await Expect(emptyRow.Locator(".sha256")).ToHaveTextAsync("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

        lock (postUrls)
        {
            Assert.Equal(5 + 1, postUrls.Count);
            Assert.All(postUrls, url => Assert.DoesNotContain("?", url, StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task A_permanent_server_error_is_shown_in_words_from_the_problem_detail()
    {
        var file = CreateFile("conflict.bin", 3 * MiB);
        await _page.RouteAsync(BrowserPage.IsUploadUrl, async route =>
        {
            if (route.Request.Method == "POST")
            {
                await route.FulfillAsync(new RouteFulfillOptions
                {
                    Status = 409,
                    ContentType = "application/problem+json",
                    Body = """{"type":"about:blank","title":"Conflict","status":409,"detail":"Another file with this name and size is being uploaded with a different chunk size.","code":"upload_conflict"}""",
                });
                return;
            }

            await BrowserPage.ContinueAsync(route);
        });
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var row = Row(file);
        await Expect(row).ToHaveAttributeAsync("data-state", "error");
        await Expect(row.Locator(".status")).ToHaveTextAsync(
            "Failed: Another file with this name and size is being uploaded with a different chunk size.");
        await Expect(row.GetByRole(AriaRole.Button, new() { Name = "Try again conflict.bin" })).ToBeVisibleAsync();
    }

    [Fact]
    public async Task Page_is_labelled_keyboard_reachable_and_fits_a_narrow_screen()
    {
        await _page.SetViewportSizeAsync(360, 740);
        await OpenPageAsync();

        await Expect(_page.GetByLabel("Choose files…")).ToHaveAttributeAsync("type", "file");
        await Expect(_page.GetByRole(AriaRole.Progressbar, new() { Name = "All uploads" })).ToBeVisibleAsync();
        var scrollWidth = await _page.EvaluateAsync<int>("document.documentElement.scrollWidth");
        Assert.True(scrollWidth <= 360, $"the page is {scrollWidth}px wide on a 360px screen");

        // Tab from the top reaches the file picker within a few presses.
        var reached = false;
        for (var i = 0; i < 6 && !reached; i++)
        {
            await _page.Keyboard.PressAsync("Tab");
            reached = await _page.EvaluateAsync<string>("document.activeElement && document.activeElement.id") == "file-input";
        }

        Assert.True(reached, "the file picker is not reachable with Tab");

        var file = CreateFile("narrow.bin", MiB);
        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var row = await WaitForStateAsync(file, "complete");
        await Expect(row.GetByRole(AriaRole.Progressbar, new() { Name = "Upload progress of narrow.bin" })).ToBeVisibleAsync();
        await Expect(row.GetByRole(AriaRole.Link, new() { Name = "Download narrow.bin" })).ToBeVisibleAsync();
        scrollWidth = await _page.EvaluateAsync<int>("document.documentElement.scrollWidth");
        Assert.True(scrollWidth <= 360, $"with a finished file the page is {scrollWidth}px wide on a 360px screen");
        await _page.ScreenshotAsync(new PageScreenshotOptions
        {
            Path = Path.Combine(BrowserFixture.ArtifactsDirectory, "finished-page-narrow.png"),
            FullPage = true,
        });
    }

    // ---------- helpers ----------

    private Task OpenPageAsync(string path = "/") => BrowserPage.OpenAsync(_page, path);

    /// <summary>Counts chunk POSTs and holds each for a while, like a slow uplink, so a test can act mid-upload.</summary>
    private Task SlowDownChunkPostsAsync(TimeSpan delay) =>
        BrowserPage.SlowDownChunkPostsAsync(_page, delay, () => Interlocked.Increment(ref _chunkPosts));

    private ILocator Row(string file) => BrowserPage.ResumableRow(_page, file);

    private Task<ILocator> WaitForStateAsync(string file, string state) =>
        BrowserPage.WaitForStateAsync(Row(file), state, output, fixture.Server);

    private Task<JsonNode?> ServerStatusAsync(string file) => ServerStatus.GetAsync(fixture.Server.Http, Identifier(file));

    private async Task<HttpStatusCode> ServerStatusCodeAsync(string file)
    {
        using var response = await fixture.Server.Http.GetAsync(new Uri("uploads/" + Uri.EscapeDataString(Identifier(file)), UriKind.Relative));
        return response.StatusCode;
    }

    private Task WaitForServerAsync(string file, Func<JsonNode, bool> condition) =>
        ServerStatus.WaitForAsync(fixture.Server.Http, Identifier(file), condition);

    private static string Identifier(string file) => ServerStatus.ResumableIdentifier(file);

    private string CreateFile(string name, int size) => TestFiles.Create(fixture.WorkDirectory, name, size);

    private static string Sha256(string path) => TestFiles.Sha256(path);
}
