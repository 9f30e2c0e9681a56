using System.Collections.Frozen;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using ChunkUpload.Core;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Server.Hosting;
using ChunkUpload.Server.Http;
using ChunkUpload.Server.Protocol;
using ChunkUpload.Server.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.WebUtilities;

namespace ChunkUpload.Server.Endpoints;

/// <summary>
/// Fine Uploader 5.16.2, traditional endpoint (../shared/PROTOCOLS.md sections 4, 9.3, 9.4 and 11), at
/// <c>/fineuploader</c>. The client names each file with a UUID of its own (<c>qquuid</c>) and POSTs either the whole
/// file or, with chunking, part <c>qqpartindex</c> (from 0) of <c>qqtotalparts</c>, starting at byte
/// <c>qqpartbyteoffset</c> and <c>qqchunksize</c> bytes long (the last part is the remainder), as multipart (fields,
/// then the part <c>qqfile</c>) or as a raw body with the parameters in the query string. With concurrent chunking
/// the parts come in any order and the client POSTs <c>/fineuploader/done</c> once every part succeeded.
/// Every answer is JSON with <c>success</c>; a failure adds <c>error</c> (shown to the user), a stable <c>code</c>,
/// and <c>preventRetry</c> when retrying cannot help. <c>reset</c> makes the client forget its progress and send the
/// file again from part 0; it is answered only when the stored parts are gone (a resumed request or a completion
/// request for an upload the server no longer has) or never came (the completion request), because a reset answered
/// to a part while others are in flight makes 5.16.2 throw and stall. After a reload the client resumes from its
/// localStorage record (<c>qqresume=true</c>), so parts are kept for the engine's idle expiry (7 days by default,
/// the client's record lifetime). <c>DELETE /fineuploader/{uuid}</c> removes a file.
/// </summary>
public static class FineUploaderApi
{
    public const string Protocol = "fineuploader";
    public const string BasePath = "/fineuploader";
    public const string FileField = "qqfile";
    private const int MaxUuidLength = 128;
    private const int MaxListedParts = 20;
    private const long MaxDoneBody = 64 * 1024;

    // How long an upload answer waits for the completion it caused (the last part of a sequential upload is the
    // file's completion response), and how long the done request waits for it (FineUploader #2032: ~60 s into a slow
    // merge the client sends done again; completion is exactly-once, so a repeated done is harmless).
    private static readonly TimeSpan CompletionWait = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan DoneWait = TimeSpan.FromSeconds(30);

    private static readonly string[] PartParameters = ["qqpartindex", "qqpartbyteoffset", "qqchunksize", "qqtotalparts"];

    /// <summary>The parameters Fine Uploader sends (PROTOCOLS.md 4.1, 4.2): the only multipart fields kept.</summary>
    private static readonly FrozenSet<string> Parameters = FrozenSet.Create(StringComparer.Ordinal,
        ["qquuid", "qqfilename", "qqtotalfilesize", "qqresume", .. PartParameters]);

    public static IEndpointRouteBuilder MapFineUploaderApi(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        var group = app.MapGroup(BasePath).WithTags("Fine Uploader").RequireUploadCredentials(configuration)
            .WithMetadata(JsonErrors.Instance);

        group.MapMethods("", ["POST", "PUT"], Upload)
            .WithName("FineUploaderUpload").Performs(UploadOperation.Upload)
            .WithSummary("Stores a whole file, or one part of a chunked file (qqpartindex, qqpartbyteoffset, qqchunksize, qqtotalparts), all or nothing; {\"success\":true} once it is durable.")
            // No Accepts(...): any body that is not multipart/form-data is the raw file or part (Fine Uploader sends
            // application/octet-stream with the parameters in the query string when forceMultipart is off).
            .WithDescription("Body: multipart/form-data with the parameters as fields followed by the part 'qqfile', or the raw bytes " +
                "with the parameters in the query string. Parameters: qquuid, qqfilename, qqtotalfilesize, for a part also qqpartindex " +
                "(from 0), qqpartbyteoffset, qqchunksize (this part's length), qqtotalparts, and qqresume=true on a resumed upload. " +
                "Failures: {\"success\":false,\"error\":\"...\",\"code\":\"...\"} with preventRetry when retrying cannot help, " +
                "or reset when the server no longer has the earlier parts of a resumed upload.")
            .Produces<FineUploaderResponse>(StatusCodes.Status200OK)
            .Produces<FineUploaderResponse>(StatusCodes.Status400BadRequest)
            .Produces<FineUploaderResponse>(StatusCodes.Status404NotFound)
            .Produces<FineUploaderResponse>(StatusCodes.Status409Conflict)
            .Produces<FineUploaderResponse>(StatusCodes.Status503ServiceUnavailable)
            .Produces<FineUploaderResponse>(StatusCodes.Status507InsufficientStorage);

        group.MapMethods("/done", ["POST", "PUT"], Done)
            .WithName("FineUploaderDone").Performs(UploadOperation.Upload)
            .WithSummary("Concurrent chunking's completion request (qquuid, qqfilename, qqtotalfilesize, qqtotalparts; form or JSON): 200 once the file is complete, 202 while it is still being checked, 409 with reset naming the parts that never arrived.")
            .Produces<FineUploaderResponse>(StatusCodes.Status200OK)
            .Produces<FineUploaderResponse>(StatusCodes.Status202Accepted)
            .Produces<FineUploaderResponse>(StatusCodes.Status400BadRequest)
            .Produces<FineUploaderResponse>(StatusCodes.Status404NotFound)
            .Produces<FineUploaderResponse>(StatusCodes.Status409Conflict)
            .Produces<FineUploaderResponse>(StatusCodes.Status415UnsupportedMediaType);

        group.MapDelete("/{uuid}", Delete)
            .WithName("FineUploaderDelete").Performs(UploadOperation.Delete)
            .WithSummary("Fine Uploader's deleteFile request: removes the upload with this qquuid, finished or not.")
            .Produces<FineUploaderResponse>(StatusCodes.Status200OK)
            .Produces<FineUploaderResponse>(StatusCodes.Status400BadRequest)
            .Produces<FineUploaderResponse>(StatusCodes.Status404NotFound)
            .Produces<FineUploaderResponse>(StatusCodes.Status409Conflict);
        return app;
    }

    public static async Task<JsonHttpResult<FineUploaderResponse>> Upload(HttpContext context, UploadEngine engine)
    {
        var request = context.Request;
        var options = engine.Options;
        var bag = ParameterBag.FromQuery(request.Query);
        bool multipart = ChunkBody.IsMultipart(request);
        // A multipart body may hold a whole file (its parameters are inside it); a raw part is at most one part long.
        ChunkBody.LimitBody(context, multipart ? options.MaxFileSize + ChunkBody.MultipartOverhead
            : IsPart(bag) ? options.MaxChunkSize : options.MaxFileSize, options);
        if (bag.TryGet("qquuid", out var named))
            context.Items[ErrorHandlingMiddleware.IdentifierItem] = named;
        var caller = Principals.CallerOf(context);
        var token = context.RequestAborted;
        using var digest = BodyDigest.Of(request); // Content-Digest / Content-MD5 of the request content

        async Task<JsonHttpResult<FineUploaderResponse>> Store(Stream body, Core.Integrity.IBodyVerifier? verifier)
        {
            var upload = Parse(bag, request, multipart, options);
            context.Items[ErrorHandlingMiddleware.IdentifierItem] = upload.Uuid;
            var spec = SpecOf(upload, request) with { ExpectedSha256 = Digests.ReprSha256(request) };
            engine.Validate(spec, caller);
            if (upload.Resuming && await engine.FindAsync(caller, upload.Uuid, token) is null)
                return Reset(context, UploadErrors.UploadNotFound, Gone(upload.Uuid));

            var (snapshot, _) = await engine.GetOrCreateAsync(caller, spec, token);
            EnsureSameFile(snapshot.Record, upload);
            try
            {
                snapshot = await engine.WriteAsync(caller, upload.Uuid, upload.Offset, body,
                    new WriteOptions { Protocol = Protocol, ExpectedLength = upload.Length, Verifier = verifier }, token);
            }
            catch (UploadException ex) when (upload.Resuming && ex.Error == UploadErrors.UploadNotFound)
            {
                return Reset(context, UploadErrors.UploadNotFound, Gone(upload.Uuid)); // expired or deleted meanwhile
            }

            if (snapshot.AllStored && !snapshot.IsComplete)
                snapshot = await engine.WaitForCompletionAsync(caller, upload.Uuid, CompletionWait, token) ?? snapshot;
            return TypedResults.Json(Success(snapshot) with { PartIndex = upload.Part?.Index });
        }

        var raw = new RequestBodyStream(request.Body, token, UploadErrors.IncompleteBody);
        return multipart
            ? await ChunkBody.ReadMultipartAsync(request, bag, FileField, Parameters, options, Store, digest, token)
            : await Store(digest?.Observe(raw) ?? raw, digest?.Verifier);
    }

    public static async Task<JsonHttpResult<FineUploaderResponse>> Done(HttpContext context, UploadEngine engine)
    {
        ChunkBody.LimitBody(context, MaxDoneBody, engine.Options);
        var token = context.RequestAborted;
        var bag = ParameterBag.FromQuery(context.Request.Query);
        await ReadDoneBodyAsync(context.Request, bag, token);
        string uuid = Uuid(bag);
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = uuid;
        string name = Text(bag, "qqfilename");
        long total = Number(bag, "qqtotalfilesize");
        long parts = Number(bag, "qqtotalparts");
        var caller = Principals.CallerOf(context);
        engine.Validate(new UploadSpec { Id = uuid, Protocol = Protocol, Length = total, FileName = name }, caller);

        var snapshot = await engine.FindAsync(caller, uuid, token);
        if (snapshot is null)
            return Reset(context, UploadErrors.UploadNotFound, Gone(uuid));
        var record = snapshot.Record;
        EnsureProtocol(record);
        var view = ChunkView.Of(record);
        if (record.Length != total || !string.Equals(record.FileName, name, StringComparison.Ordinal) || (view is not null && view.Geometry.TotalChunks != parts))
            throw new UploadException(UploadErrors.SessionMismatch,
                $"Upload '{uuid}' is '{record.FileName}', {record.Length} bytes{(view is null ? "" : $" in {view.Geometry.TotalChunks} parts")}; " +
                $"this request says '{name}', {total} bytes in {parts} parts.");
        EnsureNotFailed(record);

        // Sent once every part succeeded, so no part is in flight: a reset here makes the client send the file again
        // from part 0 (parts already stored are read and discarded), the only way this client re-sends parts at all.
        if (!snapshot.AllStored)
            return Reset(context, UploadErrors.PartsMissing, MissingParts(snapshot, view));

        if (!snapshot.IsComplete)
            snapshot = await engine.WaitForCompletionAsync(caller, uuid, DoneWait, token) ?? snapshot;
        EnsureNotFailed(snapshot.Record);
        // 202 is a success to the client too; the file is checked and published without another request.
        return TypedResults.Json(Success(snapshot), statusCode: snapshot.IsComplete ? StatusCodes.Status200OK : StatusCodes.Status202Accepted);
    }

    public static async Task<JsonHttpResult<FineUploaderResponse>> Delete(string uuid, HttpContext context, UploadEngine engine)
    {
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = uuid;
        ValidateUuid(uuid);
        var caller = Principals.CallerOf(context);
        var snapshot = await engine.FindAsync(caller, uuid, context.RequestAborted) ?? throw NotFound(uuid);
        EnsureProtocol(snapshot.Record);
        if (!await engine.DeleteAsync(caller, uuid, context.RequestAborted))
            throw NotFound(uuid);
        return TypedResults.Json(new FineUploaderResponse { Success = true, Uuid = uuid });
    }

    // ------------------------------------------------------------------ the request

    /// <summary>One upload request as the client describes it: the whole file (no part), or one part.</summary>
    private sealed record UploadRequest(string Uuid, string FileName, long TotalSize, FilePart? Part, bool Resuming)
    {
        public long Offset => Part?.Offset ?? 0;

        public long Length => Part?.Length ?? TotalSize;
    }

    private sealed record FilePart(int Index, long Offset, long Length, ChunkGeometry Geometry);

    private static bool IsPart(ParameterBag bag) => PartParameters.Any(name => bag.TryGet(name, out _));

    private static UploadRequest Parse(ParameterBag bag, HttpRequest request, bool multipart, UploadOptions options)
    {
        string uuid = Uuid(bag);
        string name = FileName(bag);
        bool resuming = Flag(bag, "qqresume");
        if (IsPart(bag))
        {
            long total = Number(bag, "qqtotalfilesize");
            var part = PartOf(bag, total, options);
            if (!multipart && request.ContentLength is { } sent && sent != part.Length)
                throw new UploadException(UploadErrors.ChunkLengthMismatch, $"Part {part.Index} is {part.Length} bytes long, but the body is {sent} bytes.");
            return new UploadRequest(uuid, name, total, part, resuming);
        }

        // A raw whole-file request carries no qqtotalfilesize (Fine Uploader leaves it out): its length is the body's.
        long? declared = bag.TryGet("qqtotalfilesize", out _) ? Number(bag, "qqtotalfilesize") : null;
        long? body = multipart ? null : request.ContentLength;
        if (declared is { } d && body is { } b && d != b)
            throw new UploadException(UploadErrors.ChunkLengthMismatch, $"qqtotalfilesize says {d} bytes, but the body is {b} bytes.");
        long size = declared ?? body ?? throw (multipart
            ? new UploadException(UploadErrors.MissingParameter, "The parameter 'qqtotalfilesize' is required.")
            : new UploadException(UploadErrors.LengthRequired, "Send qqtotalfilesize or a Content-Length with a raw file body."));
        if (size > options.MaxFileSize)
            throw FileTooLarge(size, options);
        return new UploadRequest(uuid, name, size, null, resuming);
    }

    // The client's geometry (PROTOCOLS.md 4.2): parts of partSize bytes, ceil(size / partSize) of them, the last one the
    // remainder. qqchunksize is this part's own length, so the part size is qqchunksize for every part but the last,
    // and qqpartbyteoffset / qqpartindex for the last.
    private static FilePart PartOf(ParameterBag bag, long total, UploadOptions options)
    {
        long index = Number(bag, "qqpartindex");
        long offset = Number(bag, "qqpartbyteoffset");
        long size = Number(bag, "qqchunksize");
        long count = Number(bag, "qqtotalparts");
        if (total > options.MaxFileSize)
            throw FileTooLarge(total, options);
        if (total < 1)
            throw new UploadException(UploadErrors.InvalidParameter, "A file sent in parts has at least one byte: qqtotalfilesize must be 1 or more.");
        if (count < 1)
            throw new UploadException(UploadErrors.InvalidParameter, "qqtotalparts must be 1 or more.");
        if (count > options.MaxChunksPerFile)
            throw new UploadException(UploadErrors.TooManyChunks,
                $"The file would have {count} parts; this server accepts at most {options.MaxChunksPerFile}. Use a larger chunking.partSize.");
        if (index >= count)
            throw new UploadException(UploadErrors.ChunkOutOfRange, $"Part {index} does not exist: this file has parts 0 to {count - 1}.");
        if (size < 1)
            throw new UploadException(UploadErrors.InvalidParameter, "qqchunksize (this part's length) must be 1 or more.");

        bool last = index == count - 1;
        long partSize = size;
        if (last && index > 0)
        {
            if (offset == 0 || offset % index != 0)
                throw new UploadException(UploadErrors.PartOffsetMismatch,
                    $"Part {index} starts at byte {offset}, which is not {index} parts of equal size.");
            partSize = offset / index;
        }

        if (partSize > options.MaxChunkSize)
            throw new UploadException(UploadErrors.ChunkSizeTooLarge,
                $"The part size is {partSize} bytes; this server accepts parts up to {options.MaxChunkSize} bytes. Use a smaller chunking.partSize.");
        if (offset != index * partSize)
            throw new UploadException(UploadErrors.PartOffsetMismatch,
                $"Part {index} of parts of {partSize} bytes starts at byte {index * partSize}, not at {offset}.");
        long expected = (total / partSize) + (total % partSize == 0 ? 0 : 1);
        if (count != expected)
            throw new UploadException(UploadErrors.ChunkCountMismatch,
                $"A file of {total} bytes in parts of {partSize} bytes has {expected} parts, not {count}.");
        long length = last ? total - offset : partSize;
        if (size != length)
            throw new UploadException(UploadErrors.ChunkSizeMismatch,
                $"Part {index} of this file is {length} bytes long (the last part is the remainder), but qqchunksize says {size}.");
        return new FilePart((int)index, offset, length, new ChunkGeometry(total, partSize, (int)count));
    }

    private static UploadSpec SpecOf(UploadRequest upload, HttpRequest request) => new()
    {
        Id = upload.Uuid,
        Protocol = Protocol,
        Length = upload.TotalSize,
        FileName = upload.FileName,
        ContentType = request.Headers["X-Mime-Type"].Count == 1 ? request.Headers["X-Mime-Type"][0] : null,
        // The part size and count, as data: GET /uploads/{uuid} reports parts (as chunks 1..n) from them.
        Properties = upload.Part is { } part ? ChunkView.Properties(part.Geometry) : null,
    };

    // A qquuid names one file: the same name, size and part layout every time.
    private static void EnsureSameFile(UploadRecord record, UploadRequest upload)
    {
        var view = ChunkView.Of(record);
        bool same = record.Length == upload.TotalSize && string.Equals(record.FileName, upload.FileName, StringComparison.Ordinal)
            && (upload.Part is null || view is null || view.Geometry == upload.Part.Geometry);
        if (!same)
            throw new UploadException(UploadErrors.SessionMismatch,
                $"Upload '{upload.Uuid}' is '{record.FileName}', {record.Length} bytes{(view is null ? "" : $" in parts of {view.Geometry.ChunkSize} bytes")}; " +
                $"this request says '{upload.FileName}', {upload.TotalSize} bytes{(upload.Part is null ? "" : $" in parts of {upload.Part.Geometry.ChunkSize} bytes")}. " +
                "Send it under a new qquuid, or delete the existing upload first.");
    }

    private static void EnsureProtocol(UploadRecord record)
    {
        if (!string.Equals(record.Protocol, Protocol, StringComparison.Ordinal))
            throw new UploadException(UploadErrors.WrongProtocol,
                $"Upload '{record.Id}' was started with the {record.Protocol} protocol; Fine Uploader cannot use it. Send the file under a new qquuid.");
    }

    private static void EnsureNotFailed(UploadRecord record)
    {
        if (record.State == UploadState.Failed)
            throw new UploadException(UploadErrors.UploadFailed,
                $"Upload '{record.Id}' failed on the server ({record.Failure}). Delete it and send the file again under a new qquuid.");
    }

    private static string MissingParts(UploadSnapshot snapshot, ChunkView? view)
    {
        if (view is null)
        {
            var gaps = snapshot.MissingRanges(MaxListedParts);
            return $"Bytes {string.Join(", ", gaps.Select(g => $"{g.Offset}-{g.End - 1}"))} of upload '{snapshot.Id}' never arrived; send the file again.";
        }

        var (_, missing, count) = view.Count(snapshot, MaxListedParts);
        string listed = string.Join(", ", missing.Select(n => (n - 1).ToString(CultureInfo.InvariantCulture)));
        return $"{(count == 1 ? "Part" : "Parts")} {listed}{(count > missing.Count ? $" and {count - missing.Count} more" : "")} " +
            $"of {view.Geometry.TotalChunks} (counted from 0) never arrived; send the file again from its first part.";
    }

    private static string Gone(string uuid) =>
        $"The server no longer has upload '{uuid}' (it expired, was deleted, or none of it arrived); send the file again from its first part.";

    private static UploadException NotFound(string uuid) =>
        new(UploadErrors.UploadNotFound, $"There is no Fine Uploader upload '{uuid}' (it may have been deleted, expired or never started).");

    private static UploadException FileTooLarge(long size, UploadOptions options) =>
        new(UploadErrors.FileTooLarge, $"The file is {size} bytes; this server accepts files up to {options.MaxFileSize} bytes.");

    // ------------------------------------------------------------------ parameters

    // Fine Uploader makes v4 UUIDs; anything else plain enough to be a URL segment is accepted, nothing path-like.
    private static string Uuid(ParameterBag bag)
    {
        string uuid = Text(bag, "qquuid");
        ValidateUuid(uuid);
        return uuid;
    }

    private static void ValidateUuid(string uuid)
    {
        if (uuid.Length > MaxUuidLength || !uuid.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            throw new UploadException(UploadErrors.InvalidIdentifier,
                $"qquuid must be 1 to {MaxUuidLength} letters, digits, '-' or '_' (Fine Uploader sends a UUID); this one is {uuid.Length} characters with others among them.");
    }

    // The name is qqfilename; a raw request also names the file in the input-name parameter (qqfile=<name>).
    private static string FileName(ParameterBag bag)
    {
        bool hasName = bag.TryGet("qqfilename", out var name) && name.Length > 0;
        bool hasInput = bag.TryGet(FileField, out var input) && input.Length > 0;
        if (hasName && hasInput && !string.Equals(name, input, StringComparison.Ordinal))
            throw new UploadException(UploadErrors.ConflictingParameter, "qqfilename and qqfile name different files.");
        return hasName ? name : hasInput ? input : throw new UploadException(UploadErrors.MissingParameter, "The parameter 'qqfilename' is required.");
    }

    private static string Text(ParameterBag bag, string name) =>
        bag.TryGet(name, out var text) && text.Length > 0 ? text : throw new UploadException(UploadErrors.MissingParameter, $"The parameter '{name}' is required.");

    private static long Number(ParameterBag bag, string name)
    {
        string text = Text(bag, name);
        if (!DecimalNumber.TryParse(text, out long value))
            throw new UploadException(UploadErrors.InvalidParameter,
                $"The parameter '{name}' must be a whole number from 0 to {long.MaxValue} in decimal digits; got '{ParameterBag.Truncate(text)}'.");
        return value;
    }

    private static bool Flag(ParameterBag bag, string name) =>
        !bag.TryGet(name, out var text) ? false
        : text switch
        {
            "true" => true,
            "false" => false,
            _ => throw new UploadException(UploadErrors.InvalidParameter, $"The parameter '{name}' must be true or false; got '{ParameterBag.Truncate(text)}'."),
        };

    // The completion request sends its parameters form-encoded (or as JSON with chunking.success.jsonPayload).
    private static async Task ReadDoneBodyAsync(HttpRequest request, ParameterBag bag, CancellationToken cancellationToken)
    {
        string type = request.ContentType?.Split(';')[0].Trim() ?? "";
        var body = new RequestBodyStream(request.Body, cancellationToken, UploadErrors.IncompleteBody);
        if (type.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase))
        {
            using var reader = new FormReader(body, Encoding.UTF8) { ValueCountLimit = 100, KeyLengthLimit = 1024, ValueLengthLimit = 16 * 1024 };
            Dictionary<string, Microsoft.Extensions.Primitives.StringValues> fields;
            try
            {
                fields = await reader.ReadFormAsync(cancellationToken);
            }
            catch (InvalidDataException ex)
            {
                throw new UploadException(UploadErrors.InvalidParameter, "The form could not be read: " + ex.Message);
            }

            foreach (var (name, values) in fields)
            {
                foreach (var value in values)
                    bag.Add(name, value ?? "");
            }
        }
        else if (type.Equals("application/json", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                using var json = await JsonDocument.ParseAsync(body, new JsonDocumentOptions { MaxDepth = 4 }, cancellationToken);
                if (json.RootElement.ValueKind != JsonValueKind.Object)
                    throw new UploadException(UploadErrors.InvalidParameter, "The JSON body must be an object of parameters.");
                foreach (var property in json.RootElement.EnumerateObject())
                {
                    bag.Add(property.Name, property.Value.ValueKind switch
                    {
                        JsonValueKind.String => property.Value.GetString()!,
                        JsonValueKind.Number => property.Value.GetRawText(),
                        JsonValueKind.True => "true",
                        JsonValueKind.False => "false",
                        _ => throw new UploadException(UploadErrors.InvalidParameter,
                            $"The JSON parameter '{ParameterBag.Truncate(property.Name)}' must be a string, a number or a boolean."),
                    });
                }
            }
            catch (JsonException ex)
            {
                throw new UploadException(UploadErrors.InvalidParameter, "The JSON body could not be read: " + ex.Message);
            }
        }
        else if (request.ContentLength is not (null or 0) || (request.ContentLength is null && request.Headers.TransferEncoding.Count > 0))
        {
            throw new UploadException(UploadErrors.UnsupportedMediaType,
                "Send the completion parameters as application/x-www-form-urlencoded or application/json (or in the query string, with no body).");
        }
    }

    // ------------------------------------------------------------------ answers

    private static FineUploaderResponse Success(UploadSnapshot snapshot) => new()
    {
        Success = true,
        Uuid = snapshot.Id,
        State = snapshot.WireState,
        Sha256 = snapshot.IsComplete ? snapshot.Record.Sha256 : null,
    };

    private static JsonHttpResult<FineUploaderResponse> Reset(HttpContext context, UploadError error, string detail)
    {
        ErrorHandlingMiddleware.LogRejection(context, error, detail);
        return TypedResults.Json(Failure(error, detail, reset: true), statusCode: error.Status);
    }

    private static FineUploaderResponse Failure(UploadError error, string detail, bool reset) => new()
    {
        Success = false,
        Error = detail,
        Code = error.Code,
        // Fine Uploader retries any failure (with retry.enableAuto) unless told not to; only transient ones can pass.
        PreventRetry = !reset && error.Status is >= 400 and < 500 && !error.IsTransient ? true : null,
        Reset = reset ? true : null,
    };

    /// <summary>Every refusal of these endpoints, whatever threw it, in Fine Uploader's JSON shape.</summary>
    private sealed class JsonErrors : IErrorResponder
    {
        public static readonly JsonErrors Instance = new();

        public IResult Reject(HttpContext context, UploadError failure, string detail, int? retryAfterSeconds)
        {
            if (failure.IsTransient)
                context.Response.Headers.RetryAfter = (retryAfterSeconds ?? 5).ToString(CultureInfo.InvariantCulture);
            return TypedResults.Json(Failure(failure, detail, reset: false), statusCode: failure.Status);
        }
    }

    /// <summary>
    /// Fine Uploader's answer: <c>success</c> always; on failure <c>error</c> (the client shows it), a stable <c>code</c>,
    /// and <c>preventRetry</c> (retrying cannot help) or <c>reset</c> (send the file again from part 0).
    /// </summary>
    public sealed record FineUploaderResponse
    {
        public required bool Success { get; init; }

        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public string? Error { get; init; }

        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public string? Code { get; init; }

        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public bool? PreventRetry { get; init; }

        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public bool? Reset { get; init; }

        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public string? Uuid { get; init; }

        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public int? PartIndex { get; init; }

        /// <summary>receiving, assembling (every byte stored, being checked) or complete.</summary>
        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public string? State { get; init; }

        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public string? Sha256 { get; init; }
    }
}
