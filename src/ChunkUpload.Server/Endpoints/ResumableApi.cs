using ChunkUpload.Core;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Storage;
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
/// with the parameters in the query string. Both clients' parameter names are accepted.
/// </summary>
public static class ResumableApi
{
    public const string FileField = "file";

    public static IEndpointRouteBuilder MapResumableApi(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        var group = app.MapGroup("/upload").WithTags("resumable.js / flow.js").RequireUploadCredentials(configuration);

        group.MapGet("", TestChunk)
            .WithName("TestChunk")
            .WithSummary("Chunk test: 200 when the chunk is stored in full, 204 when it is not (never 404).")
            .ProducesProblem(StatusCodes.Status400BadRequest);

        group.MapMethods("", ["POST", "PUT", "PATCH"], UploadChunk)
            .WithName("UploadChunk")
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
    public static Results<Ok<ChunkPresence>, NoContent> TestChunk(HttpContext context, UploadStore store)
    {
        var bag = ParameterBag.FromQuery(context.Request.Query);
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = ResumableParameters.IdentifierOf(bag);
        var chunk = ResumableParameters.Parse(bag);
        return store.IsChunkStored(Principals.OwnerOf(context), chunk)
            ? TypedResults.Ok(new ChunkPresence(chunk.Identifier, chunk.ChunkNumber, Stored: true))
            : TypedResults.NoContent();
    }

    public static async Task<Ok<ChunkAck>> UploadChunk(HttpContext context, UploadStore store, IOptions<UploadOptions> options)
    {
        ChunkBody.LimitBody(context, (2 * options.Value.MaxChunkSize) + ChunkBody.MultipartOverhead, options.Value);
        var bag = ParameterBag.FromQuery(context.Request.Query);
        string owner = Principals.OwnerOf(context);
        var token = context.RequestAborted;

        Task<ChunkReceipt> Store(Stream body)
        {
            context.Items[ErrorHandlingMiddleware.IdentifierItem] = ResumableParameters.IdentifierOf(bag);
            var chunk = ResumableParameters.Parse(bag);
            if (Principals.MaxFileSizeOf(context) is { } max && chunk.TotalSize > max)
                throw new UploadException(SecurityErrors.QuotaExceeded,
                    $"The file is {chunk.TotalSize} bytes; your upload token allows files up to {max} bytes.");
            return store.StoreChunkAsync(owner, chunk, body, token, Principals.ClientOf(context));
        }

        var receipt = ChunkBody.IsMultipart(context.Request)
            ? await ChunkBody.ReadMultipartAsync(context.Request, bag, FileField, Store, token)
            : await Store(new RequestBodyStream(context.Request.Body, token, UploadErrors.IncompleteBody));
        return TypedResults.Ok(new ChunkAck(receipt.Identifier, receipt.ChunkNumber, receipt.ReceivedChunks, receipt.TotalChunks, receipt.State));
    }

    public sealed record ChunkPresence(string Identifier, int ChunkNumber, bool Stored);

    public sealed record ChunkAck(string Identifier, int ChunkNumber, int ReceivedChunks, int TotalChunks, string State);
}
