using ChunkUpload.Core;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Hooks;
using ChunkUpload.Core.Local;
using ChunkUpload.Server.Services;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Amazon.S3;
using ChunkUpload.Storage.Postgres;
using ChunkUpload.Storage.S3;
using Npgsql;

namespace ChunkUpload.Server.Hosting;

/// <summary>Service registration, kept out of Program.cs so that it reads as a table of contents.</summary>
public static class HostingExtensions
{
    public const string DefaultUrl = "http://localhost:5080";

    private static readonly string[] CommonResponseHeaders = ["Range", "Location", "Retry-After", "Content-Disposition"];

    /// <summary>The upload engine: options validated at start-up, the store, the assembler and its background service.</summary>
    public static WebApplicationBuilder AddChunkUploadStorage(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<UploadOptions>()
            .BindConfiguration(UploadOptions.SectionName)
            .ValidateDataAnnotations()
            .Validate(o => o.RecommendedChunkSize <= o.MaxChunkSize, "Upload:RecommendedChunkSize must not exceed Upload:MaxChunkSize.")
            .Validate(o => !string.IsNullOrWhiteSpace(o.StorageRoot) && Path.IsPathFullyQualified(o.ResolveStorageRoot()), "Upload:StorageRoot must name a folder.")
            .ValidateOnStart();
        builder.Services.TryAddSingleton(TimeProvider.System);

        // The engine over its four contracts. Metadata and the lock: local disk and in-process, or PostgreSQL (shared
        // by every node). Data: local disk, or S3-compatible object storage.
        var storage = builder.Configuration.GetSection(StorageOptions.SectionName).Get<StorageOptions>() ?? new StorageOptions();
        string? connectionString = builder.Configuration.GetConnectionString("Uploads");
        builder.Services.AddOptions<StorageOptions>()
            .BindConfiguration(StorageOptions.SectionName)
            .ValidateDataAnnotations()
            .Validate(o => o.Problem(connectionString) is null, storage.Problem(connectionString) ?? "Storage settings are inconsistent.")
            .ValidateOnStart();
        builder.Services.AddSingleton(sp => new LocalLayout(sp.GetRequiredService<IOptions<UploadOptions>>().Value.ResolveStorageRoot()));
        if (storage.Metadata == MetadataStoreKind.PostgreSQL)
        {
            builder.Services.AddOptions<PostgresOptions>().BindConfiguration(PostgresOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
            builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(connectionString ?? ""));
            builder.Services.AddSingleton<PostgresMetadataStore>();
            builder.Services.AddSingleton<IUploadMetadataStore>(sp => sp.GetRequiredService<PostgresMetadataStore>());
            builder.Services.AddSingleton<ICompletionOutbox>(sp => sp.GetRequiredService<PostgresMetadataStore>());
            builder.Services.AddSingleton<IUploadLockProvider, PostgresLockProvider>();
        }
        else
        {
            builder.Services.AddSingleton<LocalMetadataStore>();
            builder.Services.AddSingleton<IUploadMetadataStore>(sp => sp.GetRequiredService<LocalMetadataStore>());
            builder.Services.AddSingleton<ICompletionOutbox>(sp => sp.GetRequiredService<LocalMetadataStore>());
            builder.Services.AddSingleton<IUploadLockProvider, InProcessLockProvider>();
        }

        if (storage.Data == DataStoreKind.S3)
        {
            builder.Services.AddOptions<S3Options>()
                .BindConfiguration(S3Options.SectionName)
                .ValidateDataAnnotations()
                .Validate(o => o.ServiceUrl is not null || !string.IsNullOrWhiteSpace(o.Region), "S3:ServiceUrl (an S3-compatible endpoint) or S3:Region (AWS) is required with Storage:Data=S3.")
                .Validate(o => string.IsNullOrEmpty(o.AccessKey) == string.IsNullOrEmpty(o.SecretKey), "S3:AccessKey and S3:SecretKey go together.")
                .ValidateOnStart();
            builder.Services.AddSingleton<IAmazonS3>(sp => S3DataStore.CreateClient(sp.GetRequiredService<IOptions<S3Options>>().Value));
            builder.Services.AddSingleton<IUploadDataStore, S3DataStore>();
        }
        else
        {
            builder.Services.AddSingleton<IUploadDataStore, LocalDataStore>();
        }

        builder.Services.AddSingleton<IUploadHooks>(sp => new UploadHooks(sp.GetService<IUploadAuthorizer>(), sp.GetServices<IUploadObserver>()));
        builder.Services.AddSingleton<UploadEngine>();
        builder.Services.AddHostedService<StorageService>();
        builder.Services.AddHostedService<SweepService>();

        builder.Services.AddOptions<WebhookOptions>().BindConfiguration(WebhookOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => o.Secret is null or { Length: >= 32 }, "Webhook:Secret must be at least 32 characters.")
            .ValidateOnStart();
        if (builder.Configuration.GetValue<Uri?>("Webhook:Url") is not null)
        {
            builder.Services.PostConfigure<UploadOptions>(o => o.RecordCompletionEvents = true);
            builder.Services.AddHttpClient<WebhookService>().ConfigurePrimaryHttpMessageHandler(WebhookService.CreateHandler);
            builder.Services.AddHostedService(sp => sp.GetRequiredService<WebhookService>());
        }

        builder.Services.AddProblemDetails();
        return builder;
    }

    /// <summary>CORS for pages on other origins, from <c>Cors:AllowedOrigins</c>; nothing is allowed when the list is empty.</summary>
    public static WebApplicationBuilder AddChunkUploadCors(this WebApplicationBuilder builder)
    {
        var origins = builder.Configuration.GetSection("Cors:AllowedOrigins").Get<string[]>() ?? [];
        bool credentials = builder.Configuration.GetValue("Cors:AllowCredentials", false);
        builder.Services.AddCors(options => options.AddDefaultPolicy(policy =>
        {
            if (origins.Length == 0)
                return;
            // Any request header: the protocols' own (X-File-Id, X-Start-Byte, Content-Range, X-Content-Range,
            // Content-Disposition, Session-ID, X-Session-ID, X-Upload-Content-*, the tus and IETF draft headers; see
            // each API's RequestHeaders) and whatever custom headers a page adds to its client.
            policy.WithOrigins(origins)
                .WithMethods("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
                .AllowAnyHeader()
                .WithExposedHeaders([.. CommonResponseHeaders
                    .Concat(Endpoints.TusApi.ResponseHeaders).Concat(Endpoints.GoogleApi.ResponseHeaders)
                    .Concat(Endpoints.NginxUploadApi.ResponseHeaders).Concat(Endpoints.AppendApi.ResponseHeaders)
                    .Concat(Endpoints.ResumableUploadsApi.ResponseHeaders)
                    .Distinct(StringComparer.OrdinalIgnoreCase)]);
            if (credentials)
                policy.AllowCredentials();
        }));
        return builder;
    }

    /// <summary>Swagger UI and the OpenAPI document, unless <c>Swagger:Enabled</c> is false.</summary>
    public static WebApplicationBuilder AddChunkUploadApiDocs(this WebApplicationBuilder builder)
    {
        if (!SwaggerEnabled(builder.Configuration))
            return builder;
        builder.Services.AddEndpointsApiExplorer();
        builder.Services.AddSwaggerGen();
        return builder;
    }

    public static WebApplication UseChunkUploadApiDocs(this WebApplication app)
    {
        if (!SwaggerEnabled(app.Configuration))
            return app;
        app.UseSwagger();
        app.UseSwaggerUI();
        return app;
    }

    public static bool SwaggerEnabled(IConfiguration configuration) => configuration.GetValue("Swagger:Enabled", true);
}
