using ChunkUpload.Core;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Server.Hosting;
using ChunkUpload.Server.Http;
using ChunkUpload.Server.Protocol;
using ChunkUpload.Server.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Endpoints;

/// <summary>
/// resumable.js and flow.js (../shared/PROTOCOLS.md sections 2 and 3): a GET per chunk asks whether it is stored
/// (200 yes, 204 no), a POST (or PUT) sends it as multipart (fields, then the part <c>file</c>) or as a raw body
/// with the parameters in the query string. Both clients' parameter names are accepted. Chunk n is the byte range
/// the clients' geometry gives it; the engine stores ranges and this adapter counts chunks from them.
/// </summary>
public static class ResumableApi
{
    public const string Protocol = "resumable";
    public const string FileField = "file";
    private const int MaxListedChunks = 1000;

    public static IEndpointRouteBuilder MapResumableApi(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        var group = app.MapGroup("/upload").WithTags("resumable.js / flow.js").RequireUploadCredentials(configuration);

        group.MapGet("", TestChunk)
            .WithName("TestChunk").Performs(UploadOperation.Status)
            .WithSummary("Chunk test: 200 when the chunk is stored in full, 204 when it is not (never 404).")
            .ProducesProblem(StatusCodes.Status400BadRequest);

        group.MapMethods("", ["POST", "PUT", "PATCH"], UploadChunk)
            .WithName("UploadChunk").Performs(UploadOperation.Upload)
            .WithSummary("Stores one chunk (multipart with the part 'file', or a raw body; POST, or PUT/PATCH as resumable.js uploadMethod allows); 200 once it is durable.")
            // No Accepts(...) here: it would make routing answer 415 to any other Content-Type, and flow.js sends
            // octet chunks typed as the file (video/mp4, ...). Anything that is not multipart is a raw chunk.
            .WithDescription("Body: multipart/form-data with the chunk parameters as fields followed by the part 'file', " +
                "or the raw chunk bytes (any other Content-Type, or none) with the parameters in the query string.")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .ProducesProblem(StatusCodes.Status507InsufficientStorage);

        return app;
    }

    // 204 and not 404 for a missing chunk: flow.js treats a 404 on the test GET as fatal for the whole file, and
    // resumable.js floods the console with it. Only 200/201 mean "stored" to both clients.
    public static async Task<Results<Ok<ChunkPresence>, NoContent>> TestChunk(HttpContext context, UploadEngine engine)
    {
        var bag = ParameterBag.FromQuery(context.Request.Query);
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = ResumableParameters.IdentifierOf(bag);
        var caller = Principals.CallerOf(context);
        var (chunk, geometry, range) = Describe(bag, engine.Options);
        engine.Validate(SpecOf(chunk, geometry), caller);
        var snapshot = await engine.FindAsync(caller, chunk.Identifier, context.RequestAborted);
        bool stored = snapshot is not null && snapshot.Record.Protocol == Protocol && Matches(snapshot.Record, geometry, chunk.FileName)
            && snapshot.Contains(range.Offset, range.Length);
        return stored ? TypedResults.Ok(new ChunkPresence(chunk.Identifier, chunk.ChunkNumber, Stored: true)) : TypedResults.NoContent();
    }

    public static async Task<Ok<ChunkAck>> UploadChunk(HttpContext context, UploadEngine engine, IOptions<UploadOptions> options)
    {
        ChunkBody.LimitBody(context, (2 * options.Value.MaxChunkSize) + ChunkBody.MultipartOverhead, options.Value);
        var bag = ParameterBag.FromQuery(context.Request.Query);
        var caller = Principals.CallerOf(context);
        var token = context.RequestAborted;

        // Per-request integrity: a Content-Digest or Content-MD5 of the request content is checked before the chunk is kept.
        using var digest = BodyDigest.Of(context.Request);

        async Task<ChunkAck> Store(Stream body, Core.Integrity.IBodyVerifier? verifier)
        {
            context.Items[ErrorHandlingMiddleware.IdentifierItem] = ResumableParameters.IdentifierOf(bag);
            var (chunk, geometry, range) = Describe(bag, engine.Options);
            var (snapshot, _) = await engine.GetOrCreateAsync(caller, SpecOf(chunk, geometry) with { ExpectedSha256 = Digests.ReprSha256(context.Request) }, token);
            if (!Matches(snapshot.Record, geometry, chunk.FileName))
            {
                var m = snapshot.Record;
                var known = ChunkView.Of(m)?.Geometry;
                throw new UploadException(UploadErrors.SessionMismatch,
                    $"Upload '{ParameterBag.Truncate(chunk.Identifier)}' is '{m.FileName}', {m.Length} bytes in {known?.TotalChunks} chunks of {known?.ChunkSize} bytes; " +
                    $"this chunk says '{chunk.FileName}', {geometry.TotalSize} bytes in {geometry.TotalChunks} chunks of {geometry.ChunkSize}. " +
                    "Use another identifier, or delete the existing upload first.");
            }

            snapshot = await engine.WriteAsync(caller, chunk.Identifier, range.Offset, body,
                new WriteOptions { Protocol = Protocol, ExpectedLength = range.Length, Verifier = verifier }, token);
            var (received, _, _) = new ChunkView(geometry).Count(snapshot, 0);
            return new ChunkAck(chunk.Identifier, chunk.ChunkNumber, received, geometry.TotalChunks, snapshot.WireState);
        }

        var ack = ChunkBody.IsMultipart(context.Request)
            ? await ChunkBody.ReadMultipartAsync(context.Request, bag, FileField, ResumableParameters.Names, options.Value, Store, digest, token)
            : await Store(Observed(new RequestBodyStream(context.Request.Body, token, UploadErrors.IncompleteBody)), digest?.Verifier);
        return TypedResults.Ok(ack);

        Stream Observed(Stream body) => digest?.Observe(body) ?? body;
    }

    /// <summary>Status fields of a chunk upload: its geometry, the chunks stored and the first missing ones.</summary>
    public static ChunkStatus? StatusOf(UploadSnapshot snapshot)
    {
        if (ChunkView.Of(snapshot.Record) is not { } view)
            return null;
        var (received, missing, count) = view.Count(snapshot, MaxListedChunks);
        return new ChunkStatus(view.Geometry.ChunkSize, view.Geometry.TotalChunks, received, missing, count);
    }

    private static (ChunkDescriptor Chunk, ChunkGeometry Geometry, Core.Ranges.ByteRange Range) Describe(ParameterBag bag, UploadOptions options)
    {
        var chunk = ResumableParameters.Parse(bag);
        var geometry = ChunkGeometry.Create(chunk.TotalSize, chunk.ChunkSize, chunk.TotalChunks, options);
        var range = geometry.RangeOf(chunk.ChunkNumber);
        if (chunk.CurrentChunkSize is { } declared && declared != range.Length)
            throw new UploadException(UploadErrors.ChunkSizeMismatch,
                $"Chunk {chunk.ChunkNumber} of a {geometry.TotalSize}-byte file with chunk size {geometry.ChunkSize} is {range.Length} bytes long, but the request says {declared}.");
        return (chunk, geometry, range);
    }

    private static UploadSpec SpecOf(ChunkDescriptor chunk, ChunkGeometry geometry) => new()
    {
        Id = chunk.Identifier,
        Protocol = Protocol,
        Length = geometry.TotalSize,
        FileName = chunk.FileName,
        RelativePath = chunk.RelativePath,
        ContentType = chunk.ContentType,
        Properties = ChunkView.Properties(geometry),
    };

    private static bool Matches(UploadRecord record, ChunkGeometry geometry, string fileName) =>
        ChunkView.Of(record)?.Geometry == geometry && string.Equals(record.FileName, fileName, StringComparison.Ordinal);

    public sealed record ChunkPresence(string Identifier, int ChunkNumber, bool Stored);

    public sealed record ChunkAck(string Identifier, int ChunkNumber, int ReceivedChunks, int TotalChunks, string State);

    public sealed record ChunkStatus(long ChunkSize, int TotalChunks, int ReceivedChunks, IReadOnlyList<int> MissingChunks, int MissingChunkCount);
}
