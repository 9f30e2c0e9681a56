using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace ChunkUpload.Server.Hosting;

/// <summary>
/// Serves the browser page: the repository's top-level <c>wwwroot/</c> at <c>/</c> (index.html as the
/// default document) and exactly the library files it loads from the repository's npm <c>node_modules</c>:
/// <c>/lib/resumable.js</c>, <c>/lib/flow.js</c>, <c>/lib/fine-uploader.core.js</c> (Fine Uploader's core build,
/// qq.FineUploaderBasic, no templates) and Uppy's prebuilt bundle <c>/lib/uppy.min.js</c> + <c>/lib/uppy.min.css</c>
/// (for <c>?lib=uppy</c>). The libraries are installed by <c>npm ci</c> (see npm.targets), never copied into the
/// repository.
/// </summary>
public static partial class WebPageExtensions
{
    /// <summary>Configuration key that overrides where the repository root (holding ChunkUpload.sln) is.</summary>
    public const string RepositoryRootKey = "WebPage:RepositoryRoot";

    private const string SolutionFileName = "ChunkUpload.sln";

    // URL file name under /lib -> path under node_modules. Nothing else in node_modules is reachable.
    private static readonly Dictionary<string, string> Libraries = new(StringComparer.Ordinal)
    {
        ["resumable.js"] = Path.Combine("resumablejs", "resumable.js"),
        ["flow.js"] = Path.Combine("@flowjs", "flow.js", "dist", "flow.js"),
        ["fine-uploader.core.js"] = Path.Combine("fine-uploader", "fine-uploader", "fine-uploader.core.js"),
        ["uppy.min.js"] = Path.Combine("uppy", "dist", "uppy.min.js"),
        ["uppy.min.css"] = Path.Combine("uppy", "dist", "uppy.min.css"),
    };

    public static WebApplication UseChunkUploadWebPage(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(WebPageExtensions).FullName!);

        var root = FindRepositoryRoot(app.Configuration[RepositoryRootKey], app.Environment.ContentRootPath);
        if (root is null)
        {
            LogRepositoryRootNotFound(logger, SolutionFileName, app.Environment.ContentRootPath, AppContext.BaseDirectory, RepositoryRootKey);
            return app;
        }

        var webRoot = Path.Combine(root, "wwwroot");
        if (Directory.Exists(webRoot))
        {
            var pageFiles = new PhysicalFileProvider(webRoot);
            app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = pageFiles });
            app.UseStaticFiles(new StaticFileOptions
            {
                FileProvider = pageFiles,
                // The page is small and changes with the server; always revalidate (ETag/Last-Modified).
                OnPrepareResponse = context => context.Context.Response.Headers[HeaderNames.CacheControl] = "no-cache",
            });
        }
        else
        {
            LogWebRootMissing(logger, webRoot);
        }

        var nodeModules = Path.Combine(root, "node_modules");
        foreach (var library in Libraries.Values)
        {
            if (!File.Exists(Path.Combine(nodeModules, library)))
            {
                LogLibraryMissing(logger, Path.Combine(nodeModules, library), root);
            }
        }

        if (Directory.Exists(nodeModules))
        {
            app.UseStaticFiles(new StaticFileOptions
            {
                RequestPath = "/lib",
                FileProvider = new AllowListFileProvider(new PhysicalFileProvider(nodeModules), Libraries),
                OnPrepareResponse = context => context.Context.Response.Headers[HeaderNames.CacheControl] = "no-cache",
            });
        }

        return app;
    }

    /// <summary>
    /// The directory holding ChunkUpload.sln: the configured one, else the first found walking up from
    /// the content root, the application's base directory or the current directory.
    /// </summary>
    internal static string? FindRepositoryRoot(string? configured, string contentRoot)
    {
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return File.Exists(Path.Combine(configured, SolutionFileName)) ? Path.GetFullPath(configured) : null;
        }

        foreach (var start in new[] { contentRoot, AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                if (File.Exists(Path.Combine(directory.FullName, SolutionFileName)))
                {
                    return directory.FullName;
                }
            }
        }

        return null;
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning,
        Message = "The web page is not served: no {Solution} found above {ContentRoot} or {BaseDirectory}; set {Key}")]
    private static partial void LogRepositoryRootNotFound(ILogger logger, string solution, string contentRoot, string baseDirectory, string key);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "The web page is not served: {WebRoot} does not exist")]
    private static partial void LogWebRootMissing(ILogger logger, string webRoot);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning,
        Message = "{Library} is missing: run 'npm ci' in {Root} (the build does this when npm is installed)")]
    private static partial void LogLibraryMissing(ILogger logger, string library, string root);

    /// <summary>Exposes only the listed files of an inner provider, each under its own flat name.</summary>
    private sealed class AllowListFileProvider(IFileProvider inner, IReadOnlyDictionary<string, string> files) : IFileProvider
    {
        public IFileInfo GetFileInfo(string subpath) =>
            files.TryGetValue(subpath.TrimStart('/'), out var target)
                ? inner.GetFileInfo(target)
                : new NotFoundFileInfo(subpath);

        public IDirectoryContents GetDirectoryContents(string subpath) => NotFoundDirectoryContents.Singleton;

        public IChangeToken Watch(string filter) => NullChangeToken.Singleton;
    }
}
