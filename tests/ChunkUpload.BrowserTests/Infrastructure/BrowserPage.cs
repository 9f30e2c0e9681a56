using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ChunkUpload.BrowserTests.Infrastructure;

/// <summary>
/// What the browser tests do to the page the same way: a context and page that report the browser's errors, routes
/// that rewrite or hold the page's requests, waits on a file's row, and the download of a finished file.
/// </summary>
internal static partial class BrowserPage
{
    /// <summary>How long a file's row may take to reach a state: tens of MiB on two cores shared with other tests.</summary>
    public static readonly TimeSpan UploadTimeout = TimeSpan.FromMinutes(3);

    /// <summary>
    /// A new context on <paramref name="baseUri"/> (1000x900, downloads accepted, <paramref name="configure"/> may change
    /// that) with a 30 s deadline for every action, and its page, whose console errors and uncaught exceptions go to
    /// <paramref name="output"/>.
    /// </summary>
    public static async Task<(IBrowserContext Context, IPage Page)> NewAsync(IBrowser browser, Uri baseUri, ITestOutputHelper output,
        Action<BrowserNewContextOptions>? configure = null)
    {
        var options = new BrowserNewContextOptions
        {
            BaseURL = baseUri.ToString(),
            AcceptDownloads = true,
            ViewportSize = new ViewportSize { Width = 1000, Height = 900 },
        };
        configure?.Invoke(options);
        var context = await browser.NewContextAsync(options);
        context.SetDefaultTimeout(30_000);
        var page = await context.NewPageAsync();
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                output.WriteLine($"[browser console] {message.Text}");
            }
        };
        page.PageError += (_, error) => output.WriteLine($"[page error] {error}");
        return (context, page);
    }

    /// <summary>Goes to <paramref name="path"/> and waits until the page says it is ready.</summary>
    public static async Task OpenAsync(IPage page, string path)
    {
        await page.GotoAsync(path);
        await Expect(page.Locator("html")).ToHaveAttributeAsync("data-ready", "true");
    }

    /// <summary>Reloads the page and waits until it says it is ready again.</summary>
    public static async Task ReloadAsync(IPage page)
    {
        await page.ReloadAsync();
        await Expect(page.Locator("html")).ToHaveAttributeAsync("data-ready", "true");
    }

    /// <summary>A route matcher for the URLs whose path is <paramref name="path"/>.</summary>
    public static Func<string, bool> PathIs(string path) => url => new Uri(url).AbsolutePath == path;

    /// <summary>The chunk endpoint of resumable.js and flow.js.</summary>
    public static bool IsUploadUrl(string url) => new Uri(url).AbsolutePath == "/upload";

    /// <summary>Serves GET /config with a smaller chunk size, so a test file takes many chunks (parts, PATCHes).</summary>
    public static Task UseChunkSizeAsync(IPage page, int chunkSize) =>
        page.RouteAsync(PathIs("/config"), async route =>
        {
            var response = await route.FetchAsync();
            var config = JsonNode.Parse(await response.TextAsync())!;
            config["chunkSize"] = chunkSize;
            await route.FulfillAsync(new RouteFulfillOptions { Response = response, Body = config.ToJsonString() });
        });

    /// <summary>Calls <paramref name="onPost"/> for each chunk POST and holds it for <paramref name="delay"/>, like a slow uplink, so a test can act mid-upload.</summary>
    public static Task SlowDownChunkPostsAsync(IPage page, TimeSpan delay, Action onPost) =>
        page.RouteAsync(IsUploadUrl, async route =>
        {
            if (route.Request.Method == "POST")
            {
                onPost();
                await Task.Delay(delay);
            }

            await ContinueAsync(route);
        });

    /// <summary>Lets a held request go on to the server.</summary>
    public static async Task ContinueAsync(IRoute route)
    {
        try
        {
            await route.ContinueAsync();
        }
        catch (PlaywrightException)
        {
            // the page aborted the request (pause, cancel, reload, abort of sibling parts) while it was held
        }
    }

    /// <summary>The row of a resumable.js or flow.js upload, found by the library's identifier of <paramref name="file"/>.</summary>
    public static ILocator ResumableRow(IPage page, string file) =>
        page.Locator($"li.file[data-id=\"{ServerStatus.ResumableIdentifier(file)}\"]");

    /// <summary>Waits up to <see cref="UploadTimeout"/> for <paramref name="row"/> to reach <paramref name="state"/>; if it does not, writes the row's status, the server's log and <paramref name="moreLog"/> to <paramref name="output"/>.</summary>
    public static async Task<ILocator> WaitForStateAsync(ILocator row, string state, ITestOutputHelper output, ServerProcess server, Func<string>? moreLog = null)
    {
        try
        {
            await Expect(row).ToHaveAttributeAsync("data-state", state, new() { Timeout = (float)UploadTimeout.TotalMilliseconds });
        }
        catch (PlaywrightException)
        {
            output.WriteLine("row status: " + await row.Locator(".status").TextContentAsync());
            output.WriteLine("server log:\n" + server.Log);
            if (moreLog is not null)
            {
                output.WriteLine(moreLog());
            }

            throw;
        }

        return row;
    }

    /// <summary>Clicks the download link of <paramref name="row"/> and saves the file under <paramref name="workDirectory"/>.</summary>
    public static async Task<(IDownload Download, string Saved)> DownloadAsync(ILocator row, string workDirectory)
    {
        var download = await row.Page.RunAndWaitForDownloadAsync(() => row.Locator("a.download").ClickAsync());
        var saved = Path.Combine(workDirectory, "downloaded-" + Guid.NewGuid().ToString("N"));
        await download.SaveAsAsync(saved);
        return (download, saved);
    }

    /// <summary>A row's status while the page waits to retry a failed request.</summary>
    [GeneratedRegex(@"Retrying in \d+ s")]
    public static partial Regex RetryingInSeconds();

    /// <summary>A row's note when the page resumes a file the server has part of.</summary>
    [GeneratedRegex(@"resuming: \d+% already on the server")]
    public static partial Regex ResumingPercent();
}
