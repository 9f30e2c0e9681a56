using System.Text.Json;
using Amazon.S3;
using Amazon.S3.Model;
using ChunkUpload.Core;
using ChunkUpload.Storage.S3;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Npgsql;

namespace ChunkUpload.Server.Diagnostics;

/// <summary>
/// Readiness (<c>/readyz</c>): can this node take uploads now? The storage root must be writable with free space
/// above <see cref="UploadOptions.MinFreeSpace"/>; when configured, PostgreSQL and the object store must answer.
/// Liveness stays <c>/healthz</c> (the process runs), so an orchestrator stops sending traffic to a node with a full
/// disk instead of restarting it. The answers say what is wrong, never how many bytes are free (that is in the
/// access-controlled metrics).
/// </summary>
public static class ReadinessChecks
{
    public const string Tag = "ready";

    public static IHealthChecksBuilder AddChunkUploadReadiness(this IHealthChecksBuilder checks, bool database, bool objectStore)
    {
        checks.AddCheck<StorageReadiness>("storage", tags: [Tag], timeout: TimeSpan.FromSeconds(5));
        if (database)
            checks.AddCheck<DatabaseReadiness>("database", tags: [Tag], timeout: TimeSpan.FromSeconds(5));
        if (objectStore)
            checks.AddCheck<ObjectStoreReadiness>("objectStore", tags: [Tag], timeout: TimeSpan.FromSeconds(5));
        return checks;
    }

    /// <summary>The JSON body: the overall status and each check's status and description.</summary>
    public static async Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        var body = new ReadinessReport(
            StatusText(report.Status),
            report.Entries.ToDictionary(e => e.Key, e => new ReadinessEntry(StatusText(e.Value.Status), e.Value.Description, Math.Round(e.Value.Duration.TotalMilliseconds, 1))));
        await JsonSerializer.SerializeAsync(context.Response.Body, body, ReadinessJson.Default.ReadinessReport, context.RequestAborted);
    }

    private static string StatusText(HealthStatus status) => status switch
    {
        HealthStatus.Healthy => "healthy",
        HealthStatus.Degraded => "degraded",
        _ => "unhealthy",
    };
}

public sealed record ReadinessReport(string Status, IReadOnlyDictionary<string, ReadinessEntry> Checks);

public sealed record ReadinessEntry(string Status, string? Description, double DurationMs);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[System.Text.Json.Serialization.JsonSerializable(typeof(ReadinessReport))]
internal sealed partial class ReadinessJson : System.Text.Json.Serialization.JsonSerializerContext;

/// <summary>The storage root takes a write (a probe file, removed at once) and its volume has room above the floor.</summary>
public sealed class StorageReadiness(IOptions<UploadOptions> options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var settings = options.Value;
        string root = settings.ResolveStorageRoot();
        try
        {
            string probe = Path.Combine(root, ".ready-" + Guid.NewGuid().ToString("N"));
            await using var file = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
            await file.WriteAsync("ready"u8.ToArray(), cancellationToken);
            await file.FlushAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return HealthCheckResult.Unhealthy("The storage root cannot be written: " + ex.GetType().Name + ".");
        }

        if (UploadMetrics.FreeBytes(root) is { } free && free < settings.MinFreeSpace)
            return HealthCheckResult.Unhealthy("The storage volume's free space is below Upload:MinFreeSpace; new data would be refused (507).");
        return HealthCheckResult.Healthy("The storage root is writable and its free space is above Upload:MinFreeSpace.");
    }
}

// The checks catch every failure themselves: the health service would put the exception's message (host names,
// credentials' user names) into the public answer.

/// <summary>PostgreSQL answers a query.</summary>
public sealed class DatabaseReadiness(NpgsqlDataSource database) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await using var ping = database.CreateCommand("SELECT 1");
            await ping.ExecuteScalarAsync(cancellationToken);
            return HealthCheckResult.Healthy("PostgreSQL answers.");
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            return HealthCheckResult.Unhealthy("PostgreSQL does not answer: " + ex.GetType().Name + ".");
        }
    }
}

/// <summary>The object store answers a listing of the bucket (one key at most).</summary>
public sealed class ObjectStoreReadiness(IAmazonS3 s3, IOptions<S3Options> options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var settings = options.Value;
        try
        {
            await s3.ListObjectsV2Async(new ListObjectsV2Request { BucketName = settings.Bucket, Prefix = settings.KeyPrefix, MaxKeys = 1 }, cancellationToken);
            return HealthCheckResult.Healthy("The object store answers.");
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            return HealthCheckResult.Unhealthy("The object store does not answer: " + ex.GetType().Name + ".");
        }
    }
}
