using System.Globalization;
using System.Text;
using ChunkUpload.Server.Http;
using Serilog.AspNetCore;
using Serilog.Context;
using Serilog.Core;
using Serilog.Events;

namespace ChunkUpload.Server.Diagnostics;

/// <summary>
/// One line per request (Serilog's request logging: method, path, status, elapsed, and the upload id when the request
/// named one), and the upload id on every line logged while a request for an upload runs. Protocol adapters leave the
/// id in <c>HttpContext.Items[ErrorHandlingMiddleware.IdentifierItem]</c> as soon as they know it, which is after
/// this middleware began; the property is therefore read when each event is written.
/// </summary>
public static class RequestLogging
{
    public const string UploadIdProperty = "UploadId";

    private static readonly string[] QuietPaths = ["/healthz", "/readyz", "/metrics"];

    public static IApplicationBuilder UseUploadLogScope(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        var scope = new UploadIdEnricher(context);
        try
        {
            using (LogContext.Push(scope))
                await next(context);
        }
        finally
        {
            scope.RequestEnded();
        }
    });

    public static void Configure(RequestLoggingOptions options, Serilog.ILogger logger)
    {
        options.Logger = logger;
        options.IncludeQueryInRequestPath = false; // query strings may carry access tokens
        options.GetLevel = static (context, _, exception) =>
            exception is not null || context.Response.StatusCode >= 500 ? LogEventLevel.Error
            : QuietPaths.Contains(context.Request.Path.Value, StringComparer.OrdinalIgnoreCase) ? LogEventLevel.Verbose
            : LogEventLevel.Information;
        options.GetMessageTemplateProperties = static (context, path, elapsed, status) =>
        [
            new LogEventProperty("RequestMethod", new ScalarValue(context.Request.Method)),
            new LogEventProperty("RequestPath", new ScalarValue(Escape(path))),
            new LogEventProperty("StatusCode", new ScalarValue(status)),
            new LogEventProperty("Elapsed", new ScalarValue(elapsed)),
        ];
    }

    /// <summary>Control characters (a CR/LF in a decoded path could forge a log line) as \u escapes.</summary>
    public static string Escape(string value)
    {
        if (!value.Any(char.IsControl))
            return value;
        var escaped = new StringBuilder(value.Length + 16);
        foreach (char c in value)
        {
            if (char.IsControl(c))
                escaped.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            else
                escaped.Append(c);
        }

        return escaped.ToString();
    }

    /// <summary>Adds UploadId while the request runs; after it ended (HttpContext objects are reused) only the id it had.</summary>
    private sealed class UploadIdEnricher(HttpContext context) : ILogEventEnricher
    {
        private HttpContext? _context = context;
        private string? _final;

        public void RequestEnded()
        {
            _final = Read(_context);
            Volatile.Write(ref _context, null);
        }

        public void Enrich(LogEvent logEvent, ILogEventPropertyFactory propertyFactory)
        {
            var id = Volatile.Read(ref _context) is { } live ? Read(live) : _final;
            if (id is not null)
                logEvent.AddPropertyIfAbsent(propertyFactory.CreateProperty(UploadIdProperty, Escape(id)));
        }

        private static string? Read(HttpContext? context)
        {
            try
            {
                return context?.Items[ErrorHandlingMiddleware.IdentifierItem] as string;
            }
            catch (ObjectDisposedException)
            {
                return null;
            }
        }
    }
}
