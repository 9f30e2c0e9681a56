using System.Globalization;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Ranges;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Server.Hosting;
using ChunkUpload.Server.Http;
using ChunkUpload.Server.Protocol;
using ChunkUpload.Server.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Net.Http.Headers;

namespace ChunkUpload.Server.Endpoints;

/// <summary>
/// Protocol-neutral view of uploads: the caller's list, status, deletion, and the finished file. An upload's id here
/// is its protocol's own name for it (the resumable.js identifier, the last segment of a tus URL, ...).
/// </summary>
public static class UploadsApi
{
    private const int MaxListedRanges = 1000;

    /// <summary>Uploads in one page of <c>GET /uploads</c> when the client names no <c>limit</c>.</summary>
    public const int DefaultListLimit = 50;

    /// <summary>The largest <c>limit</c> accepted.</summary>
    public const int MaxListLimit = 200;

    public static readonly UploadError InvalidLimit = new("invalid_limit", 400, "The page size is not acceptable");
    public static readonly UploadError InvalidCursor = new("invalid_cursor", 400, "The page cursor is not one this server made");
    public static readonly UploadError InvalidState = new("invalid_state", 400, "The state filter is not a known upload state");

    public static IEndpointRouteBuilder MapUploadsApi(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        var uploads = app.MapGroup("/uploads").WithTags("Uploads").RequireUploadCredentials(configuration);
        uploads.MapGet("", List)
            .WithName("ListUploads").Performs(UploadOperation.List)
            .WithSummary("The caller's uploads, newest first, a page at a time: ?state=receiving|complete|failed (receiving includes uploads being assembled), ?limit=1..200 (default 50), ?after=<next from the previous page>.")
            .ProducesProblem(StatusCodes.Status400BadRequest);
        uploads.MapGet("/{**identifier}", GetStatus)
            .WithName("GetUpload").Performs(UploadOperation.Status)
            .WithSummary("State of an upload: stored and missing byte ranges (and chunks, for chunk protocols), the SHA-256 once complete.")
            .ProducesProblem(StatusCodes.Status404NotFound);
        uploads.MapDelete("/{**identifier}", Delete)
            .WithName("DeleteUpload").Performs(UploadOperation.Delete)
            .WithSummary("Removes an upload's data and any partial or finished file, whatever protocol made it.")
            .ProducesProblem(StatusCodes.Status404NotFound);

        app.MapGet("/files/{**identifier}", Download)
            .WithTags("Uploads")
            .WithName("DownloadFile").Performs(UploadOperation.Download)
            .WithSummary("The completed file, with Range support; 404 until the upload is complete.")
            .Produces(StatusCodes.Status200OK, contentType: "application/octet-stream")
            .Produces(StatusCodes.Status206PartialContent)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .RequireUploadCredentials(configuration);
        return app;
    }

    public static async Task<Ok<UploadList>> List(HttpContext context, UploadEngine engine)
    {
        var query = context.Request.Query;
        int limit = DefaultListLimit;
        if (query.TryGetValue("limit", out var limitText)
            && (limitText.Count != 1 || !int.TryParse(limitText[0], NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxListLimit))
            throw new UploadException(InvalidLimit, $"limit must be one whole number from 1 to {MaxListLimit}.");

        UploadState? state = null;
        if (query.TryGetValue("state", out var stateText))
        {
            state = stateText.Count == 1 ? StateFilter(stateText[0]) : null;
            if (state is null)
                throw new UploadException(InvalidState, "state must be one of receiving (uploads in progress, including those being assembled), complete or failed.");
        }

        UploadCursor? after = null;
        if (query.TryGetValue("after", out var afterText) && (afterText.Count != 1 || !UploadCursor.TryParse(afterText[0], out after)))
            throw new UploadException(InvalidCursor, "after must be the `next` value of a previous page of this listing, unchanged.");

        var page = await engine.ListAsync(Principals.CallerOf(context), state, after, limit, context.RequestAborted);
        string prefix = context.Request.PathBase.Value ?? "";
        return TypedResults.Ok(new UploadList([.. page.Uploads.Select(u => UploadSummary.Of(u, prefix))], page.Next?.ToString()));
    }

    private static UploadState? StateFilter(string? text) => text switch
    {
        UploadStates.Receiving => UploadState.Receiving,
        UploadStates.Complete => UploadState.Complete,
        UploadStates.Failed => UploadState.Failed,
        _ => null,
    };

    public static async Task<Ok<UploadStatus>> GetStatus(string identifier, HttpContext context, UploadEngine engine)
    {
        identifier = RouteIdentifier(identifier);
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = identifier;
        var snapshot = await engine.FindAsync(Principals.CallerOf(context), identifier, context.RequestAborted) ?? throw NotFound(identifier);
        return TypedResults.Ok(UploadStatus.Of(snapshot));
    }

    public static async Task<NoContent> Delete(string identifier, HttpContext context, UploadEngine engine)
    {
        identifier = RouteIdentifier(identifier);
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = identifier;
        if (!await engine.DeleteAsync(Principals.CallerOf(context), identifier, context.RequestAborted))
            throw NotFound(identifier);
        return TypedResults.NoContent();
    }

    public static async Task<IResult> Download(string identifier, HttpContext context, UploadEngine engine)
    {
        identifier = RouteIdentifier(identifier);
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = identifier;
        var (record, data) = await engine.OpenCompletedAsync(Principals.CallerOf(context), identifier, context.RequestAborted) ?? throw NotFound(identifier);
        context.Response.Headers.XContentTypeOptions = "nosniff";
        // Always an attachment of type octet-stream: the client-declared type is never trusted to render inline.
        var etag = new EntityTagHeaderValue("\"" + record.Sha256 + "\"");
        string name = DownloadNames.Safe(record.FileName);
        if (data.RedirectUrl is { } presigned)
            return TypedResults.Redirect(presigned.ToString()); // S3:PresignDownloads: the object store serves the bytes
        if (data.PhysicalPath is { } path)
            return new RangeProblems(TypedResults.PhysicalFile(path, "application/octet-stream", fileDownloadName: name, entityTag: etag, enableRangeProcessing: true), data.Length);
        var stream = await data.OpenRange!(0, data.Length, context.RequestAborted);
        return new RangeProblems(TypedResults.Stream(stream, "application/octet-stream", fileDownloadName: name, entityTag: etag, enableRangeProcessing: true), data.Length);
    }

    /// <summary>
    /// A file answer whose 416 (a Range no byte of the file satisfies, such as <c>bytes=-0</c>) carries a problem body
    /// with a code, beside the <c>Content-Range: bytes */length</c> the framework sets. The framework decides what is
    /// satisfiable (one range, If-Range), and writes no body for a 416, so the problem is written after it, before
    /// the response starts.
    /// </summary>
    private sealed class RangeProblems(IResult file, long length) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            await file.ExecuteAsync(httpContext);
            var response = httpContext.Response;
            if (response.StatusCode != StatusCodes.Status416RangeNotSatisfiable || response.HasStarted)
                return;
            string range = httpContext.Request.Headers.Range.ToString();
            response.ContentLength = null;
            response.Headers.ContentDisposition = default;
            response.Headers.ContentType = default;
            string detail = length == 0
                ? $"The file is empty; no Range ('{ParameterBag.Truncate(range)}') can name a byte of it. Send no Range."
                : $"The file has {length} bytes; no byte of the Range '{ParameterBag.Truncate(range)}' is in it. Ask for bytes 0 to {length - 1} (as in 'bytes=0-'), or send no Range.";
            await Problems.From(HttpErrors.RangeNotSatisfiable, detail).ExecuteAsync(httpContext);
        }
    }

    // Identifiers may contain '/': the route takes the rest of the path, and an encoded slash (%2F, which Kestrel
    // leaves encoded in the path) is decoded here.
    private static string RouteIdentifier(string identifier) =>
        identifier.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);

    private static UploadException NotFound(string identifier) =>
        new(UploadErrors.UploadNotFound, $"There is no upload '{ParameterBag.Truncate(identifier)}' (it may have been deleted, expired or never started).");

    /// <summary>An upload's state on the wire. Range and chunk lists are bounded (the first 1,000, with a count).</summary>
    public sealed record UploadStatus(
        string Identifier,
        string Protocol,
        string FileName,
        string? RelativePath,
        long? TotalSize,
        long Offset,
        long StoredBytes,
        IReadOnlyList<RangeDto> StoredRanges,
        int StoredRangeCount,
        IReadOnlyList<RangeDto> MissingRanges,
        int MissingRangeCount,
        long? ChunkSize,
        int? TotalChunks,
        int? ReceivedChunks,
        IReadOnlyList<int>? MissingChunks,
        int? MissingChunkCount,
        string State,
        string? Sha256,
        DateTimeOffset CreatedAt,
        DateTimeOffset? CompletedAt,
        DateTimeOffset? ExpiresAt)
    {
        public static UploadStatus Of(UploadSnapshot s)
        {
            var chunks = ResumableApi.StatusOf(s);
            var missing = s.MissingRanges(MaxListedRanges);
            var r = s.Record;
            return new UploadStatus(
                r.Id, r.Protocol, r.FileName, r.RelativePath, r.Length, s.Offset, s.StoredBytes,
                [.. s.StoredRanges.Take(MaxListedRanges).Select(RangeDto.Of)], s.StoredRanges.Count,
                [.. missing.Select(RangeDto.Of)], s.MissingRangeCount,
                chunks?.ChunkSize, chunks?.TotalChunks, chunks?.ReceivedChunks, chunks?.MissingChunks, chunks?.MissingChunkCount,
                s.WireState, s.IsComplete ? r.Sha256 : null, r.CreatedAt, r.CompletedAt, s.ExpiresAt);
        }
    }

    /// <summary>A page of <c>GET /uploads</c>; <c>next</c> (null on the last page) is the <c>after</c> of the next one.</summary>
    public sealed record UploadList(IReadOnlyList<UploadSummary> Uploads, string? Next);

    /// <summary>One upload in a listing: enough for a list row; its status and file are at the given paths.</summary>
    public sealed record UploadSummary(
        string Identifier,
        string Protocol,
        string FileName,
        long? TotalSize,
        long StoredBytes,
        string State,
        string? Sha256,
        DateTimeOffset CreatedAt,
        DateTimeOffset? CompletedAt,
        DateTimeOffset? ExpiresAt,
        string StatusUrl,
        string? DownloadUrl)
    {
        public static UploadSummary Of(UploadSnapshot s, string pathBase)
        {
            var r = s.Record;
            string id = Uri.EscapeDataString(r.Id);
            return new UploadSummary(
                r.Id, r.Protocol, r.FileName, r.Length, s.StoredBytes, s.WireState, s.IsComplete ? r.Sha256 : null,
                r.CreatedAt, r.CompletedAt, s.ExpiresAt,
                pathBase + "/uploads/" + id, s.IsComplete ? pathBase + "/files/" + id : null);
        }
    }

    /// <summary>A byte range: <c>length</c> bytes from <c>offset</c>.</summary>
    public sealed record RangeDto(long Offset, long Length)
    {
        public static RangeDto Of(ByteRange range) => new(range.Offset, range.Length);
    }
}
