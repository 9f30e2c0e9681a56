using ChunkUpload.Core;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Endpoints;

/// <summary>Health and the settings clients configure themselves from.</summary>
public static class ServiceApi
{
    // Statuses on which resumable.js should give up on a file: what this server answers for permanent problems.
    private static readonly int[] PermanentErrors = [400, 401, 403, 404, 409, 415, 500, 501];

    public static IEndpointRouteBuilder MapServiceApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => TypedResults.Ok(new Health("ok")))
            .WithTags("Service").WithName("Health").WithSummary("Liveness: 200 while the server runs.");
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
