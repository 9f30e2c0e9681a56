using Microsoft.Extensions.FileProviders;
using Microsoft.Net.Http.Headers;

namespace ChunkUpload.Server.Hosting;

/// <summary>
/// Serves the browser page from the web root beside the binary (<c>wwwroot/</c> in the build or publish output;
/// <c>--webroot</c> moves it): index.html as the default document, app.js, app.css, and under <c>/lib</c> the
/// library files the page loads. The build copies them there (webpage.targets): the page from the repository's
/// <c>wwwroot/</c>, and from npm's <c>node_modules</c> exactly the allow-listed files (<c>/lib/resumable.js</c>,
/// <c>/lib/flow.js</c>, <c>/lib/fine-uploader.core.js</c>, <c>/lib/uppy.min.js</c>, <c>/lib/uppy.min.css</c>), so
/// the output folder serves the page with no repository and no npm beside it.
/// </summary>
public static partial class WebPageExtensions
{
    private const string DefaultDocument = "index.html";

    public static WebApplication UseChunkUploadWebPage(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(WebPageExtensions).FullName!);

        var webRoot = app.Environment.WebRootPath is { Length: > 0 } configured
            ? configured
            : Path.Combine(app.Environment.ContentRootPath, "wwwroot");
        if (!File.Exists(Path.Combine(webRoot, DefaultDocument)))
        {
            LogPageMissing(logger, Path.Combine(webRoot, DefaultDocument));
            return app;
        }

        var pageFiles = new PhysicalFileProvider(webRoot);
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = pageFiles });
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = pageFiles,
            // The page is small and changes with the server; always revalidate (ETag/Last-Modified).
            OnPrepareResponse = context => context.Context.Response.Headers[HeaderNames.CacheControl] = "no-cache",
        });
        return app;
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning,
        Message = "The web page is not served: {Page} does not exist (the build puts the page into wwwroot/ beside the binary; run from the build or publish output, or set --webroot)")]
    private static partial void LogPageMissing(ILogger logger, string page);
}
