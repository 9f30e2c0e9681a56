using System.Buffers;
using System.Globalization;
using System.Text.Json;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Server.Hosting;
using ChunkUpload.Server.Http;
using ChunkUpload.Server.Protocol;
using ChunkUpload.Server.Security;
using Microsoft.AspNetCore.Http.HttpResults;

namespace ChunkUpload.Server.Endpoints;

/// <summary>
/// Google-style resumable uploads (YouTube/Drive/GCS and their imitators; ../shared/PROTOCOLS.md sections 6, 9.11 and
/// 11) at <c>/upload/{name}</c>. The name in the path is the upload's id (as in /uploads/{id} and /files/{id}).
/// <list type="bullet">
/// <item>Optional initiation: <c>POST /upload/{name}?uploadType=resumable</c> with an optional JSON body
/// (<c>name</c>: the file name, <c>contentType</c> or <c>mimeType</c>; at most 16 KiB), <c>X-Upload-Content-Type</c> and
/// <c>X-Upload-Content-Length</c>: 200 with the session URL (the absolute URL of <c>/upload/{name}</c>) in
/// <c>Location</c>. An unfinished upload of that name is kept (the client asks where it stands; uploadx-style clients
/// initiate again after a reload), a finished one is 409 <c>upload_complete</c>, a failed or expired one is replaced.</item>
/// <item><c>PUT /upload/{name}</c> sends bytes and starts the upload when there is none. Without Content-Range the
/// body is the whole file (its length the Content-Length, or where the body ends); <c>bytes a-b/T</c> and
/// <c>bytes a-b/*</c> are chunks; <c>bytes a-*/T</c> and <c>bytes a-*/*</c> (@google-cloud/storage's single-request
/// form) the rest of the file from <c>a</c>. A total, once stated, cannot change. Writes are sequential: a chunk that
/// starts past the stored end is answered 308 with the stored Range and nothing of it is kept; one that starts before
/// it has the already-stored prefix skipped (a re-send).</item>
/// <item><c>PUT</c> with an empty body and <c>Content-Range: bytes */*</c> or <c>bytes */T</c> asks for the status;
/// <c>*/T</c> also states the total, which finishes an upload whose bytes all came with <c>/*</c>. A PUT still open on
/// the upload is ended first (its bytes kept and reported), as tus HEAD does.</item>
/// <item>Unfinished: 308 with <c>Range: bytes=0-N</c> (N the last durable byte), no Range header while nothing is stored,
/// never a Location. Finished (every byte stored): 200 with the upload's status as JSON, the body of GET /uploads/{id}.</item>
/// </list>
/// A body that breaks off keeps its durable prefix, which the next 308 reports. Refusals use Google's JSON error shape,
/// <c>{"error":{"code":409,"message":"…","errors":[{"domain":"chunkupload","reason":"wrong_protocol","message":"…"}]}}</c>,
/// with the stable code in <c>reason</c>; an unknown or removed session is 404 or 410 (the client starts again).
/// No <c>x-goog-hash</c> is sent (@google-cloud/storage clients set <c>validation: false</c>).
/// </summary>
public static class GoogleApi
{
    public const string Protocol = "google";
    public const string BasePath = "/upload";
    public const int ResumeIncomplete = 308;
    public const int MaxMetadataBytes = 16 * 1024;

    /// <summary>Headers a browser client must be allowed to send and to read (CORS).</summary>
    public static readonly string[] RequestHeaders = ["Content-Range", "X-Upload-Content-Type", "X-Upload-Content-Length"];
    public static readonly string[] ResponseHeaders = ["Range", "Location"];

    public static IEndpointRouteBuilder MapGoogleApi(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        // "/upload" itself belongs to resumable.js (ResumableApi): its literal route outranks this catch-all.
        var google = app.MapGroup(BasePath).WithTags("Google-style resumable").RequireUploadCredentials(configuration).AddEndpointFilter(GoogleFilter);
        google.MapPost("/{**name}", Initiate).WithName("GoogleInitiate").Performs(UploadOperation.Upload)
            .WithSummary("Starts a resumable upload (?uploadType=resumable; JSON {name, contentType}, X-Upload-Content-Type, X-Upload-Content-Length): 200 with the session URL in Location.")
            .Produces(StatusCodes.Status200OK)
            .Produces<GoogleErrorBody>(StatusCodes.Status400BadRequest).Produces<GoogleErrorBody>(StatusCodes.Status409Conflict);
        google.MapPut("/{**name}", Put).WithName("GoogleUpload").Performs(UploadOperation.Upload)
            .WithSummary("Sends the file or a chunk (Content-Range: bytes a-b/T, a-b/*, a-*/T), or asks for the status (empty body, bytes */* or */T): 308 with Range: bytes=0-N while unfinished, 200 with the status JSON once every byte is stored.")
            .Produces<UploadsApi.UploadStatus>(StatusCodes.Status200OK).Produces(ResumeIncomplete)
            .Produces<GoogleErrorBody>(StatusCodes.Status400BadRequest).Produces<GoogleErrorBody>(StatusCodes.Status404NotFound)
            .Produces<GoogleErrorBody>(StatusCodes.Status409Conflict).Produces<GoogleErrorBody>(StatusCodes.Status410Gone);
        return app;
    }

    public static async Task<IResult> Initiate(string? name, HttpContext context, UploadEngine engine, TimeProvider time)
    {
        var request = context.Request;
        string id = IdOf(name, context);
        if (request.Query["uploadType"] is not ["resumable"])
            throw new UploadException(UploadErrors.InvalidParameter,
                "A POST starts a resumable upload and needs ?uploadType=resumable; to send a file in one request, PUT it to this URL.");
        var caller = Principals.CallerOf(context);
        var token = context.RequestAborted;
        var (fileName, metadataType) = await ReadMetadataAsync(context, engine);
        long? length = HeaderValues.Number(request, "X-Upload-Content-Length");
        var spec = new UploadSpec
        {
            Id = id,
            Protocol = Protocol,
            Length = length,
            FileName = fileName ?? FileNameOf(id),
            ContentType = HeaderValues.Get(request, "X-Upload-Content-Type") ?? metadataType,
        };
        engine.Validate(spec, caller);

        var existing = await engine.FindAsync(caller, id, token);
        if (existing is not null)
        {
            CheckProtocol(existing);
            if (existing.IsComplete)
                throw new UploadException(UploadErrors.UploadComplete,
                    $"'{ParameterBag.Truncate(id)}' is uploaded already; DELETE /uploads/{{id}} first to upload it again.");
            if (existing.Record.State == UploadState.Failed || existing.ExpiresAt < time.GetUtcNow())
            {
                await engine.DeleteAsync(caller, id, token); // a new session replaces what cannot be resumed
                existing = null;
            }
            else if (length is { } declared && existing.Length != declared)
            {
                if (existing.Length is { } known)
                    throw LengthConflict(known, declared);
                await engine.DeclareLengthAsync(caller, id, declared, token);
            }
        }

        if (existing is null)
            await engine.GetOrCreateAsync(caller, spec, token);
        context.Response.Headers.Location = SessionUrl(request, id);
        return TypedResults.Ok();
    }

    public static async Task<IResult> Put(string? name, HttpContext context, UploadEngine engine, TimeProvider time)
    {
        string id = IdOf(name, context);
        var range = HeaderValues.Get(context.Request, "Content-Range") is { } header ? ContentRange.Parse(header) : (ContentRange?)null;
        return range is { IsQuery: true } query
            ? await StatusAsync(id, query.Total, context, engine, time)
            : await WriteAsync(id, range, context, engine, time);
    }

    private static async Task<IResult> StatusAsync(string id, long? total, HttpContext context, UploadEngine engine, TimeProvider time)
    {
        await EnsureNoBodyAsync(context.Request);
        // A client asks after its request failed: one still open on the upload (a connection gone quiet) is ended first,
        // so the Range includes every byte it delivered and the client's next PUT starts where the server is.
        var snapshot = await FindAsync(context, engine, time, id, settled: true) ?? throw NotFound(id);
        if (total is { } length && snapshot.Length != length)
        {
            if (snapshot.Length is { } declared)
                throw LengthConflict(declared, length);
            snapshot = await engine.DeclareLengthAsync(Principals.CallerOf(context), id, length, context.RequestAborted);
        }

        return await AnswerAsync(context, engine, snapshot);
    }

    private static async Task<IResult> WriteAsync(string id, ContentRange? range, HttpContext context, UploadEngine engine, TimeProvider time)
    {
        var request = context.Request;
        var caller = Principals.CallerOf(context);
        var token = context.RequestAborted;
        long? sent = request.ContentLength;
        long first = range?.First ?? 0;
        long? total = range is { } r ? r.Total : sent;
        long? length = range?.Length ?? sent;
        if (range?.Length is { } named && sent is { } actual && actual != named)
            throw new UploadException(UploadErrors.ChunkLengthMismatch,
                $"Content-Range names {named} bytes, but Content-Length is {actual}.");
        if (range is { Last: null, Total: { } size } && sent is { } rest && rest != size - first)
            throw new UploadException(UploadErrors.ChunkLengthMismatch,
                $"Content-Range says the body runs from byte {first} to the end of a {size}-byte file ({size - first} bytes), but Content-Length is {rest}.");
        // "bytes a-*/*", or neither Content-Range nor Content-Length: the file ends where this body ends.
        bool completes = range?.Last is null && total is null;

        ChunkBody.LimitBody(context, engine.Options.MaxFileSize, engine.Options);
        var snapshot = await FindAsync(context, engine, time, id);
        if (snapshot is null)
        {
            if (first != 0)
                throw NotFound(id);
            (snapshot, _) = await engine.GetOrCreateAsync(caller, new UploadSpec
            {
                Id = id,
                Protocol = Protocol,
                Length = total,
                FileName = FileNameOf(id),
                ContentType = request.ContentType,
                ExpectedSha256 = Digests.ReprSha256(request),
            }, token);
        }
        else if (snapshot.IsComplete)
        {
            if (total is { } stated && stated != snapshot.Length)
                throw LengthConflict(snapshot.Length!.Value, stated);
            return await AnswerAsync(context, engine, snapshot); // a re-send after the end: nothing more to store
        }

        long stored = snapshot.Offset;
        if (first > stored)
            return Incomplete(stored); // a gap: tell the client where to resume, keep nothing

        if (total is { } declared && snapshot.Length != declared)
        {
            if (snapshot.Length is { } known)
                throw LengthConflict(known, declared);
            snapshot = await engine.DeclareLengthAsync(caller, id, declared, token);
        }

        long skip = stored - first;
        if (length is { } carried && skip > carried)
        {
            if (completes)
                throw new UploadException(UploadErrors.LengthConflict,
                    $"The server has {stored} bytes of this upload; the file cannot end at byte {first + carried}.");
            return await AnswerAsync(context, engine, snapshot); // every byte of this body is stored already
        }

        // A Content-Digest covers the whole body, including bytes skipped because they are stored already.
        using var digest = BodyDigest.Of(request);
        Stream raw = new RequestBodyStream(request.Body, token, UploadErrors.IncompleteBody);
        Stream body = digest?.Observe(raw) ?? raw;
        if (skip > 0)
            body = new SkipStream(body, skip, completes);
        try
        {
            snapshot = await engine.WriteAsync(caller, id, stored, body, new WriteOptions
            {
                Protocol = Protocol,
                Append = true,
                KeepPartial = true,
                ExpectedLength = length - skip,
                CompletesUpload = completes,
                Verifier = digest?.Verifier,
            }, token);
        }
        catch (UploadException ex) when (ex.Error == UploadErrors.OffsetMismatch)
        {
            // Another request moved the stored end meanwhile: answer with where this client stands now.
            snapshot = await FindAsync(context, engine, time, id) ?? throw NotFound(id);
        }

        return await AnswerAsync(context, engine, snapshot);
    }

    private static async Task<IResult> AnswerAsync(HttpContext context, UploadEngine engine, UploadSnapshot snapshot)
    {
        if (snapshot.AllStored && !snapshot.IsComplete)
            snapshot = await engine.WaitForCompletionAsync(Principals.CallerOf(context), snapshot.Id, TimeSpan.FromSeconds(5), context.RequestAborted) ?? snapshot;
        if (snapshot.Record.State == UploadState.Failed)
            throw new UploadException(UploadErrors.UploadFailed,
                $"Upload '{ParameterBag.Truncate(snapshot.Id)}' failed on the server ({snapshot.Record.Failure}); DELETE /uploads/{{id}} and upload the file again.");
        return snapshot.IsComplete || snapshot.AllStored ? TypedResults.Ok(UploadsApi.UploadStatus.Of(snapshot)) : Incomplete(snapshot.Offset);
    }

    // 308 "Resume Incomplete": Range names the durable prefix; none at all while nothing is stored (PROTOCOLS.md 9.11).
    private static ResumeIncompleteResult Incomplete(long stored) => new(stored);

    private sealed class ResumeIncompleteResult(long stored) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = ResumeIncomplete;
            if (stored > 0)
                httpContext.Response.Headers["Range"] = "bytes=0-" + (stored - 1).ToString(CultureInfo.InvariantCulture);
            return Task.CompletedTask;
        }
    }

    private static async Task<UploadSnapshot?> FindAsync(HttpContext context, UploadEngine engine, TimeProvider time, string id, bool settled = false)
    {
        var caller = Principals.CallerOf(context);
        var snapshot = settled
            ? await engine.FindSettledAsync(caller, id, context.RequestAborted)
            : await engine.FindAsync(caller, id, context.RequestAborted);
        if (snapshot is null)
            return null;
        CheckProtocol(snapshot);
        if (snapshot.ExpiresAt < time.GetUtcNow())
            throw new UploadException(UploadErrors.UploadExpired,
                $"Upload '{ParameterBag.Truncate(id)}' expired at {snapshot.ExpiresAt:R}; start it again.");
        return snapshot;
    }

    // A status query has no body; reading one byte is enough to tell when no Content-Length says so.
    private static async Task EnsureNoBodyAsync(HttpRequest request)
    {
        if (request.ContentLength is 0)
            return;
        if (request.ContentLength is null)
        {
            var probe = new byte[1];
            if (await new RequestBodyStream(request.Body, request.HttpContext.RequestAborted, UploadErrors.IncompleteBody).ReadAsync(probe) == 0)
                return;
        }

        throw new UploadException(UploadErrors.InvalidParameter,
            "Content-Range: bytes */… asks for the status and carries no body; send bytes with Content-Range: bytes <first>-<last>/<total>.");
    }

    private static async Task<(string? Name, string? ContentType)> ReadMetadataAsync(HttpContext context, UploadEngine engine)
    {
        var request = context.Request;
        if (request.ContentLength is 0)
            return (null, null);
        if (request.ContentLength > MaxMetadataBytes)
            throw TooMuchMetadata();
        ChunkBody.LimitBody(context, MaxMetadataBytes, engine.Options);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(MaxMetadataBytes + 1);
        try
        {
            var body = new RequestBodyStream(request.Body, context.RequestAborted, UploadErrors.IncompleteBody);
            int filled = 0, read;
            while (filled <= MaxMetadataBytes && (read = await body.ReadAsync(buffer.AsMemory(filled, MaxMetadataBytes + 1 - filled), context.RequestAborted)) > 0)
                filled += read;
            if (filled > MaxMetadataBytes)
                throw TooMuchMetadata();
            if (buffer.AsSpan(0, filled).Trim(" \t\r\n"u8).IsEmpty)
                return (null, null);
            using var document = JsonDocument.Parse(buffer.AsMemory(0, filled), new JsonDocumentOptions { MaxDepth = 16 });
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new UploadException(UploadErrors.InvalidParameter, "The initiation body must be a JSON object such as {\"name\": \"video.mp4\", \"contentType\": \"video/mp4\"}.");
            return (Text(root, "name"), Text(root, "contentType") ?? Text(root, "mimeType"));
        }
        catch (JsonException ex)
        {
            throw new UploadException(UploadErrors.InvalidParameter, "The initiation body is not valid JSON: " + ex.Message);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        static string? Text(JsonElement root, string property) =>
            !root.TryGetProperty(property, out var value) || value.ValueKind == JsonValueKind.Null ? null
            : value.ValueKind == JsonValueKind.String ? value.GetString()
            : throw new UploadException(UploadErrors.InvalidParameter, $"\"{property}\" in the initiation body must be a string.");
    }

    // Names may contain '/': the route takes the rest of the path, and an encoded slash (%2F, which Kestrel leaves
    // encoded) is decoded here, as GET /uploads/{id} does.
    private static string IdOf(string? name, HttpContext context)
    {
        string id = (name ?? "").Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
        if (id.Length == 0)
            throw new UploadException(UploadErrors.MissingParameter, "Name the file in the URL: /upload/<name>.");
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = id;
        return id;
    }

    // Absolute: Node and Python clients PUT to the Location as given. The whole id is one escaped segment.
    private static string SessionUrl(HttpRequest request, string id) =>
        $"{request.Scheme}://{request.Host}{request.PathBase}{BasePath}/{Uri.EscapeDataString(id)}";

    private static string FileNameOf(string id) => id[(id.LastIndexOf('/') + 1)..] is { Length: > 0 } last ? last : id;

    private static void CheckProtocol(UploadSnapshot snapshot)
    {
        if (snapshot.Record.Protocol != Protocol)
            throw new UploadException(UploadErrors.WrongProtocol,
                $"Upload '{ParameterBag.Truncate(snapshot.Id)}' was started with the {snapshot.Record.Protocol} protocol; it cannot be written with {Protocol}. Use another name.");
    }

    private static UploadException NotFound(string id) =>
        new(UploadErrors.UploadNotFound, $"There is no upload session '{ParameterBag.Truncate(id)}' (it may have been deleted, expired or never started); start it again from byte 0.");

    private static UploadException LengthConflict(long declared, long stated) =>
        new(UploadErrors.LengthConflict, $"The upload's total is {declared} bytes; it cannot become {stated}.");

    private static UploadException TooMuchMetadata() =>
        new(UploadErrors.InvalidParameter, $"The initiation body is larger than {MaxMetadataBytes} bytes; send only the file's metadata.");

    // Catalog errors in Google's error shape; statuses are the catalog's, but 423 becomes 503 (what Google clients retry).
    private static async ValueTask<object?> GoogleFilter(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        try
        {
            return await next(invocation);
        }
        catch (UploadException ex) when (!context.Response.HasStarted)
        {
            return Reject(context, ex.Error, ex.Message, ex.RetryAfterSeconds);
        }
        catch (BadHttpRequestException ex) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            return ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? Reject(context, HttpErrors.RequestTooLarge, "The request body is larger than this server accepts for one file.", null)
                : Reject(context, HttpErrors.BadRequest, "The request could not be read: " + ex.Message, null);
        }
    }

    private static JsonHttpResult<GoogleErrorBody> Reject(HttpContext context, UploadError error, string detail, int? retryAfter)
    {
        if (error.Status == StatusCodes.Status423Locked)
            error = error with { Status = StatusCodes.Status503ServiceUnavailable };
        ErrorHandlingMiddleware.LogRejection(context, error, detail);
        context.Response.Headers.Remove("Range");
        context.Response.Headers.Remove("Location");
        if (error.IsTransient)
            context.Response.Headers.RetryAfter = (retryAfter ?? 5).ToString(CultureInfo.InvariantCulture);
        return TypedResults.Json(new GoogleErrorBody(new GoogleError(error.Status, detail, [new GoogleErrorItem("chunkupload", error.Code, detail)])),
            statusCode: error.Status);
    }

    /// <summary>Google's error body: <c>{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}</c>.</summary>
    public sealed record GoogleErrorBody(GoogleError Error);

    public sealed record GoogleError(int Code, string Message, IReadOnlyList<GoogleErrorItem> Errors);

    /// <summary>One error; <c>reason</c> is the stable code of the error catalog.</summary>
    public sealed record GoogleErrorItem(string Domain, string Reason, string Message);

    /// <summary>A request body whose first bytes are already stored: they are read and dropped.</summary>
    private sealed class SkipStream(Stream inner, long skip, bool endMatters) : ForwardReadStream
    {
        private long _skip = skip;


        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (_skip > 0)
            {
                int read = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, _skip)], cancellationToken);
                if (read == 0)
                {
                    // The body ended inside bytes the server has: when it claims to end the file, it contradicts them.
                    if (endMatters)
                        throw new UploadException(UploadErrors.LengthConflict,
                            $"The body ended {_skip} bytes before the end of what the server already has; the file cannot end there.");
                    return 0;
                }

                _skip -= read;
            }

            return await inner.ReadAsync(buffer, cancellationToken);
        }






    }
}
