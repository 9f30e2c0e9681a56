using System.Net;

namespace ChunkUpload.BrowserTests;

/// <summary>The page's "On the server" section (GET /uploads): listing, live progress, download link, delete.</summary>
public sealed partial class UploadPageTests
{
    [Fact]
    public async Task On_the_server_lists_an_uploaded_file_as_complete_and_its_delete_button_removes_it()
    {
        var file = CreateFile("listed-on-server.bin", 2 * MiB);
        await OpenPageAsync();
        await Expect(_page.GetByRole(AriaRole.Heading, new() { Name = "On the server" })).ToBeVisibleAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        await WaitForStateAsync(file, "complete");

        var row = ServerRow(file);
        await Expect(row).ToHaveAttributeAsync("data-state", "complete", new() { Timeout = 20_000 });
        await Expect(row.Locator(".name")).ToHaveTextAsync("listed-on-server.bin");
        await Expect(row.Locator(".size")).ToHaveTextAsync("2.0 MB");
        await Expect(row.Locator(".protocol")).ToHaveTextAsync("resumable");
        await Expect(row.Locator(".state")).ToHaveTextAsync("Complete");
        await Expect(row.Locator(".percent")).ToHaveTextAsync("100%");
        await Expect(row.Locator(".age")).ToContainTextAsync("ago");
        var download = row.GetByRole(AriaRole.Link, new() { Name = "listed-on-server.bin: download the copy on the server" });
        await Expect(download).ToHaveAttributeAsync("href", "/files/" + Identifier(file));

        await _page.Locator("#server").ScreenshotAsync(new LocatorScreenshotOptions
        {
            Path = Path.Combine(BrowserFixture.ArtifactsDirectory, "on-the-server.png"),
        });

        await row.GetByRole(AriaRole.Button, new() { Name = "listed-on-server.bin: delete from the server" }).ClickAsync();
        await Expect(row).ToHaveCountAsync(0);
        Assert.Equal(HttpStatusCode.NotFound, await ServerStatusCodeAsync(file));
    }

    [Fact]
    public async Task On_the_server_shows_an_upload_in_progress_with_its_progress_growing()
    {
        var file = CreateFile("growing-on-server.bin", 16 * MiB);
        await BrowserPage.UseChunkSizeAsync(_page, MiB);
        await SlowDownChunkPostsAsync(TimeSpan.FromMilliseconds(400));
        await OpenPageAsync();

        await _page.Locator("#file-input").SetInputFilesAsync(file);
        var row = ServerRow(file);
        await Expect(row).ToHaveAttributeAsync("data-state", "receiving", new() { Timeout = 30_000 });
        var bar = row.GetByRole(AriaRole.Progressbar, new() { Name = "Stored on the server: growing-on-server.bin" });
        var first = await bar.EvaluateAsync<double>("p => p.value");
        Assert.True(first < 1, $"the upload was already complete ({first}) when first listed");

        // The list refreshes by itself while the upload runs: the bar grows without any action.
        await _page.WaitForFunctionAsync(
            "([id, before]) => { const r = document.querySelector(`#server-list tr[data-id=\"${id}\"]`); return r && r.querySelector('progress').value > before; }",
            new object[] { Identifier(file), first },
            new PageWaitForFunctionOptions { Timeout = 30_000 });
        await Expect(row).ToHaveAttributeAsync("data-state", "complete", new() { Timeout = (float)BrowserPage.UploadTimeout.TotalMilliseconds });
        await Expect(row.Locator(".percent")).ToHaveTextAsync("100%");
    }

    private ILocator ServerRow(string file) => _page.Locator($"#server-list tr.server-upload[data-id=\"{Identifier(file)}\"]");
}
