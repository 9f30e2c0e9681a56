using ChunkUpload.Core.Hooks;
using ChunkUpload.Server.Diagnostics;
using Serilog;
using Serilog.Extensions.Hosting;
using Serilog.Extensions.Logging;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;
using Serilog.Settings.Configuration;

namespace ChunkUpload.Server.Hosting;

/// <summary>Logging (Serilog), request logging, metrics (Prometheus) and readiness.</summary>
public static class DiagnosticsExtensions
{
    /// <summary>The console's line format for <c>Logging:Format=text</c> (the default).</summary>
    public const string TextTemplate = "[{Timestamp:HH:mm:ss} {Level:u3}] {SourceContext}: {Message:lj} {Properties:j}{NewLine}{Exception}";

    /// <summary>
    /// Serilog as the logging backend: the console, as text lines or (<c>Logging:Format=json</c>) compact JSON, one
    /// object per event (Serilog.Formatting.Compact's CLEF: <c>@t</c>, <c>@mt</c>, <c>@l</c>, the event's properties
    /// including <c>EventId</c> and <c>UploadId</c>). Sinks named in <c>Serilog:WriteTo</c> replace the console.
    /// </summary>
    /// <remarks>
    /// Serilog is added as a provider of the host's logger factory (not as its replacement), so other providers still
    /// see every event with its event id and message as Microsoft.Extensions.Logging renders it. The logger is built
    /// from the service provider, which also lends it any registered <c>ILogEventSink</c>.
    /// </remarks>
    public static WebApplicationBuilder AddChunkUploadLogging(this WebApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        var format = LogFormat.From(configuration["Logging:Format"]);
        builder.Services.AddSingleton(format);
        builder.Services.AddSingleton(sp =>
        {
            var logger = new LoggerConfiguration()
                .MinimumLevel.Information()
                .MinimumLevel.Override("Microsoft", Serilog.Events.LogEventLevel.Warning)
                .MinimumLevel.Override("Microsoft.Hosting.Lifetime", Serilog.Events.LogEventLevel.Information)
                .Enrich.FromLogContext()
                .ReadFrom.Configuration(configuration, new ConfigurationReaderOptions(
                    typeof(ConsoleLoggerConfigurationExtensions).Assembly, typeof(FileLoggerConfigurationExtensions).Assembly, typeof(CompactJsonFormatter).Assembly))
                .ReadFrom.Services(sp);
            if (configuration.GetSection("Serilog:WriteTo").Exists())
                return logger.CreateLogger();
            if (format.Name == LogFormat.Json)
                logger.WriteTo.Console(format.Formatter);
            else
                logger.WriteTo.Console(outputTemplate: TextTemplate, formatProvider: System.Globalization.CultureInfo.InvariantCulture);
            return logger.CreateLogger();
        });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<ILoggerProvider>(sp => new SerilogLoggerProvider(sp.GetRequiredService<Serilog.Core.Logger>()));
        // Serilog's request logging collects per-request properties here.
        builder.Services.AddSingleton(new DiagnosticContext(null));
        builder.Services.AddSingleton<IDiagnosticContext>(sp => sp.GetRequiredService<DiagnosticContext>());

        if (string.IsNullOrEmpty(configuration["urls"]) && !configuration.GetSection("Kestrel:Endpoints").Exists())
            builder.WebHost.UseUrls(HostingExtensions.DefaultUrl);
        return builder;
    }

    /// <summary>Metrics (an observer of the engine, exported at <c>/metrics</c>) and the readiness checks.</summary>
    public static WebApplicationBuilder AddChunkUploadDiagnostics(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<UploadMetrics>();
        builder.Services.AddSingleton<IUploadObserver>(sp => sp.GetRequiredService<UploadMetrics>());
        builder.Services.AddOptions<MetricsOptions>()
            .BindConfiguration(MetricsOptions.SectionName)
            .ValidateDataAnnotations()
            .Validate(o => o.Problem() is null, "Metrics:AllowedNetworks must list networks in CIDR form (such as 10.0.0.0/8 or ::1/128).")
            .ValidateOnStart();

        var storage = builder.Configuration.GetSection(StorageOptions.SectionName).Get<StorageOptions>() ?? new StorageOptions();
        builder.Services.AddHealthChecks().AddChunkUploadReadiness(
            database: storage.Metadata == MetadataStoreKind.PostgreSQL,
            objectStore: storage.Data == DataStoreKind.S3);
        return builder;
    }

    /// <summary>The upload-id scope for everything a request logs, then one line per request.</summary>
    public static WebApplication UseChunkUploadRequestLogging(this WebApplication app)
    {
        app.UseUploadLogScope();
        var logger = app.Services.GetRequiredService<Serilog.Core.Logger>();
        app.UseSerilogRequestLogging(options => RequestLogging.Configure(options, logger));
        return app;
    }
}

/// <summary>The console's format, from <c>Logging:Format</c>: <c>text</c> (default) or <c>json</c>.</summary>
public sealed class LogFormat
{
    public const string Text = "text";
    public const string Json = "json";

    private LogFormat(string name, ITextFormatter formatter)
    {
        Name = name;
        Formatter = formatter;
    }

    public string Name { get; }

    public ITextFormatter Formatter { get; }

    public static LogFormat From(string? setting) => setting?.Trim().ToUpperInvariant() switch
    {
        null or "" or "TEXT" => new LogFormat(Text, new MessageTemplateTextFormatter(DiagnosticsExtensions.TextTemplate, System.Globalization.CultureInfo.InvariantCulture)),
        "JSON" => new LogFormat(Json, new CompactJsonFormatter()),
        _ => throw new InvalidOperationException($"Logging:Format is '{setting}'; use text (the default) or json."),
    };
}
