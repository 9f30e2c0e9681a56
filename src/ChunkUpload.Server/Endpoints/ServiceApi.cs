using ChunkUpload.Core;
using ChunkUpload.Server.Diagnostics;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Endpoints;

/// <summary>Health (liveness and readiness), metrics, and the settings clients configure themselves from.</summary>
public static class ServiceApi
{
    // Statuses on which resumable.js should give up on a file: what this server answers for permanent problems.
    private static readonly int[] PermanentErrors = [400, 401, 403, 404, 409, 415, 500, 501];

    public static IEndpointRouteBuilder MapServiceApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => TypedResults.Ok(new Health("ok")))
            .WithTags("Service").WithName("Health").WithSummary("Liveness: 200 while the server runs.");
        app.MapHealthChecks("/readyz", new HealthCheckOptions
            {
                Predicate = check => check.Tags.Contains(ReadinessChecks.Tag),
                ResponseWriter = ReadinessChecks.WriteAsync,
                ResultStatusCodes =
                {
                    [HealthStatus.Healthy] = StatusCodes.Status200OK,
                    [HealthStatus.Degraded] = StatusCodes.Status200OK,
                    [HealthStatus.Unhealthy] = StatusCodes.Status503ServiceUnavailable,
                },
            })
            .WithTags("Service").WithName("Ready").WithSummary("Readiness: 200 when the storage is writable with free space above the floor and the configured database and object store answer; 503 otherwise. JSON: each check's status.")
            .WithMetadata(new ProducesResponseTypeMetadata(StatusCodes.Status200OK, typeof(ReadinessReport), ["application/json"]),
                new ProducesResponseTypeMetadata(StatusCodes.Status503ServiceUnavailable, typeof(ReadinessReport), ["application/json"]));
        if (app.ServiceProvider.GetRequiredService<IOptions<MetricsOptions>>().Value.Enabled)
        {
            app.MapGet("/metrics", MetricsEndpoint.Export)
                .WithTags("Service").WithName("Metrics")
                .WithSummary("Prometheus metrics (text format 0.0.4), for the networks in Metrics:AllowedNetworks (loopback by default) or a scraper with Metrics:ApiKey.")
                .Produces<string>(StatusCodes.Status200OK, "text/plain").ProducesProblem(StatusCodes.Status403Forbidden);
        }

        app.MapGet("/config", GetConfig)
            .WithTags("Service").WithName("Config").WithSummary("Chunk size and limits for clients to configure themselves.");
        return app;
    }

    public static Ok<ClientConfig> GetConfig(IOptions<UploadOptions> options)
    {
        var o = options.Value;
        return TypedResults.Ok(new ClientConfig(o.RecommendedChunkSize, o.MaxChunkSize, o.MaxFileSize, o.SimultaneousUploads, PermanentErrors));
    }

    public sealed record Health(string Status);

    public sealed record ClientConfig(long ChunkSize, long MaxChunkSize, long MaxFileSize, int SimultaneousUploads, IReadOnlyList<int> PermanentErrors);
}
