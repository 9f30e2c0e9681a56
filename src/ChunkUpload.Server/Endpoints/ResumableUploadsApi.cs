using System.Globalization;
using ChunkUpload.Core;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Integrity;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Server.Hosting;
using ChunkUpload.Server.Http;
using ChunkUpload.Server.Protocol;
using ChunkUpload.Server.Security;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace ChunkUpload.Server.Endpoints;

/// <summary>
/// Resumable Uploads for HTTP (draft-ietf-httpbis-resumable-upload; ../shared/PROTOCOLS.md 10.4 and 11) at
/// <c>/rufh</c>, upload resources at <c>/rufh/{id}</c> (the id of /uploads/{id} and /files/{id}).
/// <list type="bullet">
/// <item>Creation: POST (or PUT) <c>/rufh</c> with <c>Upload-Complete: ?1|?0</c>, optional <c>Upload-Length</c> and
/// content. 201 + <c>Location</c> while the upload is incomplete; the request that completes it gets the resource's
/// final answer (the upload's status as JSON, <c>Upload-Complete: ?1</c>) with <c>Location</c> too.</item>
/// <item>Offset retrieval: HEAD (or GET) <c>/rufh/{id}</c>: 204 with <c>Upload-Offset</c>, <c>Upload-Complete</c>,
/// <c>Upload-Length</c> when known, <c>Upload-Limit</c>, <c>Cache-Control: no-store</c>.</item>
/// <item>Append: PATCH <c>/rufh/{id}</c> (<c>application/partial-upload</c>) at <c>Upload-Offset</c>, which must be the
/// stored offset (else 409 with the draft's mismatching-upload-offset problem). A sequential write: a new request for
/// an upload takes it over from an earlier one still open (which keeps what it received and ends), never waits on
/// it. A body that breaks off keeps its durable prefix.</item>
/// <item>Cancellation: DELETE <c>/rufh/{id}</c>, 204.</item>
/// </list>
/// Each request is answered as the interop version it names in <c>Upload-Draft-Interop-Version</c> says (3 to 8,
/// see <see cref="Draft"/>); without one, as the current draft. The server stores the upload once its declared length
/// is all there, whether or not the request said <c>Upload-Complete: ?1</c> (nothing more could be appended), and
/// reports that as complete. Interim 104 (Upload Resumption Supported) responses are never sent: ASP.NET Core 10's
/// Kestrel has no API for a 1xx other than its own 100 Continue (dotnet/aspnetcore#27851), so clients learn the
/// upload URL from the 201 of an empty creation request (tus-js-client's IETF modes create that way).
/// </summary>
public static class ResumableUploadsApi
{
    public const string Protocol = "ietf";
    public const string BasePath = "/rufh";
    public const string PartialUpload = "application/partial-upload";
    public const string InteropHeader = "Upload-Draft-Interop-Version";
    public const string ProblemTypes = "https://iana.org/assignments/http-problem-types#";
    private const string Tag = "Resumable Uploads for HTTP (IETF draft)";
    private const string DraftItem = "rufh.draft";
    private const string ProvidedOffsetItem = "rufh.provided-offset";
    private const string ProcessedItem = "rufh.processed";
    private const string EmptyItem = "rufh.empty";

    // How long an answer waits for the completion its request caused (hashing, publishing the file).
    private static readonly TimeSpan CompletionWait = TimeSpan.FromSeconds(5);

    /// <summary>Headers a browser client must be allowed to send and to read (CORS).</summary>
    public static readonly string[] RequestHeaders = ["Upload-Complete", "Upload-Incomplete", "Upload-Offset", "Upload-Length", InteropHeader, "Content-Digest", "Content-MD5", "Repr-Digest", "Content-Disposition", "Upload-Metadata"];
    public static readonly string[] ResponseHeaders = ["Location", "Upload-Offset", "Upload-Complete", "Upload-Incomplete", "Upload-Length", "Upload-Limit", "Accept-Patch", "Cache-Control"];

    public static IEndpointRouteBuilder MapResumableUploadsApi(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        // Discovery is open (like a CORS preflight, it carries no credentials).
        app.MapMethods(BasePath, ["OPTIONS"], Options).WithTags(Tag).WithName("RufhOptions")
            .WithSummary("Discovery: Upload-Limit (max-size) and Accept-Patch: application/partial-upload.")
            .Produces(StatusCodes.Status204NoContent);

        var rufh = app.MapGroup(BasePath).WithTags(Tag).RequireUploadCredentials(configuration)
            .AddEndpointFilter(DraftFilter).WithMetadata(ProblemResponder.Instance);
        rufh.MapMethods("", ["POST", "PUT"], Create).WithName("RufhCreate").Performs(UploadOperation.Upload)
            .WithSummary("Creates an upload (Upload-Complete: ?1 or ?0, optional Upload-Length, Content-Disposition filename, Repr-Digest) and stores its content. 201 + Location while incomplete; the request that completes it gets the upload's status as JSON with Upload-Complete: ?1.")
            .Produces(StatusCodes.Status201Created).Produces<UploadsApi.UploadStatus>(StatusCodes.Status200OK)
            .ProducesProblem(400).ProducesProblem(403).ProducesProblem(413);
        rufh.MapMethods("/{id}", ["HEAD", "GET"], Head).WithName("RufhOffset").Performs(UploadOperation.Status)
            .WithSummary("Offset retrieval: 204 with Upload-Offset, Upload-Complete, Upload-Length (when known), Upload-Limit; Cache-Control: no-store. 404 unknown, 410 expired.")
            .Produces(StatusCodes.Status204NoContent).ProducesProblem(400).ProducesProblem(404).ProducesProblem(410);
        rufh.MapPatch("/{id}", Append).WithName("RufhAppend").Performs(UploadOperation.Upload)
            .WithSummary("Appends the application/partial-upload body at Upload-Offset (409 with the mismatching-upload-offset problem when it is not the stored offset); Upload-Complete: ?1 ends the upload. 204 (201 for interop 3 to 6) with the new Upload-Offset; the completing request gets the upload's status as JSON.")
            .Produces(StatusCodes.Status204NoContent).Produces<UploadsApi.UploadStatus>(StatusCodes.Status200OK)
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409).ProducesProblem(410).ProducesProblem(413).ProducesProblem(415);
        rufh.MapDelete("/{id}", Cancel).WithName("RufhCancel").Performs(UploadOperation.Delete)
            .WithSummary("Cancellation: removes the upload. 204; later requests get 404.")
            .Produces(StatusCodes.Status204NoContent).ProducesProblem(404).ProducesProblem(409);
        return app;
    }

    public static IResult Options(HttpContext context, IOptions<UploadOptions> options)
    {
        context.Response.Headers["Upload-Limit"] = "max-size=" + options.Value.MaxFileSize.ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["Accept-Patch"] = PartialUpload;
        return TypedResults.NoContent();
    }

    public static async Task<IResult> Create(HttpContext context, UploadEngine engine, TimeProvider time)
    {
        var request = context.Request;
        var draft = DraftOf(context);
        bool complete = CompleteOf(request, draft)
            ?? throw new UploadException(UploadErrors.MissingParameter,
                $"A request that starts a resumable upload carries {draft.CompleteHeader}: {draft.Flag(true)} when its content is the whole file, {draft.Flag(false)} when more follows.");
        if (request.Headers.ContainsKey("Upload-Offset"))
            throw Invalid("A request that creates an upload carries no Upload-Offset; it starts at 0.");
        long? length = StructuredInteger(request, "Upload-Length");
        if (complete && request.ContentLength is { } contentLength)
        {
            // Upload-Complete: ?1 with a Content-Length states the length too; both must agree.
            if (length is { } stated && stated != contentLength)
                throw Inconsistent($"Upload-Length says {stated} bytes, but the request completes the upload with {contentLength} bytes of content.");
            length = contentLength;
        }

        var metadata = TusMetadata.Parse(HeaderValues.Get(request, "Upload-Metadata") ?? "", RequestLimits.For(engine.Options).MaxMetadataLength);
        var spec = new UploadSpec
        {
            Protocol = Protocol,
            Length = length,
            FileName = FileNameOf(request, metadata),
            ContentType = ContentTypeOf(request, metadata),
            ExpectedSha256 = Digests.ReprSha256(request),
        };
        using var verifier = Digests.Verifier(Digests.OfContent(request));
        var caller = Principals.CallerOf(context);
        var snapshot = await engine.CreateAsync(caller, spec, context.RequestAborted);
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = snapshot.Id;
        context.Response.Headers.Location = LocationOf(request, snapshot.Id);
        if (complete || request.ContentLength is not 0)
        {
            try
            {
                snapshot = await WriteAsync(context, engine, caller, snapshot.Id, 0, complete, verifier);
            }
            catch (UploadException ex) when (IsRefusal(ex.Error))
            {
                // A creation the server refuses leaves nothing behind: its answer gives the client no URL to go on with.
                await engine.DeleteAsync(caller, snapshot.Id, CancellationToken.None);
                context.Response.Headers.Remove(HeaderNames.Location);
                throw;
            }
        }

        return Answer(context, draft, engine, time, caller, snapshot, creation: true);
    }

    public static async Task<IResult> Head(string id, HttpContext context, UploadEngine engine, TimeProvider time)
    {
        var draft = DraftOf(context);
        if (draft.RefusesUploadStateInQueries)
            RefuseUploadState(context.Request, draft, "An offset retrieval");

        // A client asks where to resume right after its request broke off: the answer must include what that request
        // delivered, so a request still open on the upload is made to let go first (the draft's recommendation).
        var snapshot = await FindAsync(context, engine, time, id, write: false, settled: true);
        var headers = context.Response.Headers;
        headers.CacheControl = "no-store";
        headers["Upload-Offset"] = OffsetOf(snapshot);
        draft.SetComplete(headers, IsFinished(snapshot));
        if (snapshot.Length is { } length)
            headers["Upload-Length"] = length.ToString(CultureInfo.InvariantCulture);
        SetLimit(context, draft, Principals.CallerOf(context), engine.Options, LifetimeOf(snapshot, time));
        return TypedResults.NoContent();
    }

    public static async Task<IResult> Append(string id, HttpContext context, UploadEngine engine, TimeProvider time)
    {
        var request = context.Request;
        var draft = DraftOf(context);
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = id;
        if (draft.RequiresPartialUploadType && !IsPartialUpload(request))
            throw new UploadException(UploadErrors.UnsupportedMediaType,
                $"An append is a PATCH with Content-Type: {PartialUpload}; got '{ParameterBag.Truncate(request.ContentType ?? "none")}'.");
        long offset = StructuredInteger(request, "Upload-Offset")
            ?? throw new UploadException(UploadErrors.MissingParameter, "Upload-Offset (the byte offset this content starts at; HEAD the upload to learn it) is required.");
        context.Items[ProvidedOffsetItem] = offset;
        bool complete = CompleteOf(request, draft)
            ?? (draft.RequiresCompleteOnAppend
                ? throw new UploadException(UploadErrors.MissingParameter, $"An append carries {draft.CompleteHeader}: {draft.Flag(true)} when its content ends the file, else {draft.Flag(false)}.")
                : draft.AbsentMeansComplete);
        long? stated = StructuredInteger(request, "Upload-Length");
        var caller = Principals.CallerOf(context);
        var token = context.RequestAborted;
        using var verifier = Digests.Verifier(Digests.OfContent(request));
        var snapshot = await FindAsync(context, engine, time, id, write: true);

        if (snapshot.IsComplete)
        {
            // The answer to the request that completed it may have been lost: an empty append at its end is that
            // request again and gets the same answer; anything else would change a finished upload.
            long total = snapshot.Length!.Value;
            bool empty = await IsEmptyAsync(request, token);
            context.Items[EmptyItem] = empty;
            if (empty && offset == total && (stated ?? total) == total)
                return Answer(context, draft, engine, time, caller, snapshot, creation: false);

            throw new UploadException(UploadErrors.UploadComplete,
                $"Upload '{ParameterBag.Truncate(id)}' is complete with {total} bytes; nothing can be appended to it.") { Offset = total };
        }

        if (stated is { } length)
        {
            if (snapshot.Length is { } known && known != length)
                throw Inconsistent($"The upload's length is {known} bytes; Upload-Length cannot make it {length}.");
            if (complete && request.ContentLength is { } sent && offset + sent != length)
                throw Inconsistent($"Upload-Length says {length} bytes, but this request completes the upload at {offset} + {sent} bytes.");
        }

        if (complete && request.ContentLength is { } rest && snapshot.Length is { } declared && offset == snapshot.Offset && offset + rest != declared)
            throw Inconsistent($"The upload's length is {declared} bytes, but this request completes it at {offset} + {rest} bytes.");
        if (stated is { } newLength && snapshot.Length is null)
            await engine.DeclareLengthAsync(caller, id, newLength, token);

        snapshot = await WriteAsync(context, engine, caller, id, offset, complete, verifier);
        return Answer(context, draft, engine, time, caller, snapshot, creation: false);
    }

    public static async Task<IResult> Cancel(string id, HttpContext context, UploadEngine engine, TimeProvider time)
    {
        var draft = DraftOf(context);
        if (draft.RefusesUploadStateInQueries)
            RefuseUploadState(context.Request, draft, "A cancellation");
        await FindAsync(context, engine, time, id, write: true, allowExpired: true);
        if (!await engine.DeleteAsync(Principals.CallerOf(context), id, context.RequestAborted))
            throw NotFound(id);
        return TypedResults.NoContent();
    }

    // Sequential append of the request body: the durable prefix of a body that breaks off is kept.
    private static async Task<UploadSnapshot> WriteAsync(HttpContext context, UploadEngine engine, Caller caller, string id, long offset, bool complete, IBodyVerifier? verifier)
    {
        var request = context.Request;
        var options = engine.Options;
        ChunkBody.LimitBody(context, options.MaxFileSize, options);
        var snapshot = await engine.WriteAsync(caller, id, offset,
            new RequestBodyStream(request.Body, context.RequestAborted, UploadErrors.IncompleteBody),
            new WriteOptions
            {
                Protocol = Protocol,
                Append = true,
                KeepPartial = true,
                ExpectedLength = request.ContentLength,
                Verifier = verifier,
                CompletesUpload = complete,
            },
            context.RequestAborted);
        if (snapshot.AllStored && !snapshot.IsComplete)
            snapshot = await engine.WaitForCompletionAsync(caller, id, CompletionWait, context.RequestAborted) ?? snapshot;
        return snapshot;
    }

    // The final answer to a creation or append: an acknowledgement while the upload is incomplete, else the resource's
    // answer to the whole representation (the upload's status), marked Upload-Complete: ?1.
    private static IResult Answer(HttpContext context, Draft draft, UploadEngine engine, TimeProvider time, Caller caller, UploadSnapshot snapshot, bool creation)
    {
        var headers = context.Response.Headers;
        headers["Upload-Offset"] = OffsetOf(snapshot);
        if (snapshot.Record.State == UploadState.Failed)
        {
            context.Items[ProcessedItem] = true; // the representation arrived whole; processing it failed
            throw new UploadException(UploadErrors.UploadFailed,
                $"Upload '{ParameterBag.Truncate(snapshot.Id)}' arrived whole but could not be accepted ({snapshot.Record.Failure}); upload the file again.");
        }

        bool finished = IsFinished(snapshot);
        draft.SetComplete(headers, finished);
        if (creation)
            SetLimit(context, draft, caller, engine.Options, LifetimeOf(snapshot, time));
        if (finished)
        {
            headers.Location = LocationOf(context.Request, snapshot.Id);
            return TypedResults.Json(UploadsApi.UploadStatus.Of(snapshot), statusCode: draft.CreatedForEverySuccess ? StatusCodes.Status201Created : StatusCodes.Status200OK);
        }

        return TypedResults.StatusCode(creation || draft.CreatedForEverySuccess ? StatusCodes.Status201Created : StatusCodes.Status204NoContent);
    }

    private static async Task<UploadSnapshot> FindAsync(HttpContext context, UploadEngine engine, TimeProvider time, string id, bool write, bool settled = false, bool allowExpired = false)
    {
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = id;
        var caller = Principals.CallerOf(context);
        var snapshot = await engine.FindAsync(caller, id, context.RequestAborted) ?? throw NotFound(id);
        if (snapshot.Record.Protocol != Protocol)
        {
            if (!write)
                throw NotFound(id);
            throw new UploadException(UploadErrors.WrongProtocol,
                $"Upload '{ParameterBag.Truncate(id)}' was started with the {snapshot.Record.Protocol} protocol; it cannot be changed through {BasePath}.");
        }

        // Settled only once it is known to be ours: another protocol's writer is never disturbed from here.
        if (settled)
            snapshot = await engine.FindSettledAsync(caller, id, context.RequestAborted) ?? throw NotFound(id);

        if (!allowExpired && !snapshot.IsComplete && snapshot.ExpiresAt < time.GetUtcNow())
            throw new UploadException(UploadErrors.UploadExpired, $"Upload '{ParameterBag.Truncate(id)}' expired at {snapshot.ExpiresAt:R}; start it again.");
        return snapshot;
    }

    // Complete as far as the client is concerned: no byte can be appended any more (the server may still be hashing).
    private static bool IsFinished(UploadSnapshot snapshot) =>
        snapshot.IsComplete || snapshot.AllStored || snapshot.Record.State == UploadState.Failed;

    // Upload-Limit: the largest file this caller may send, and the seconds an unfinished upload has left.
    private static void SetLimit(HttpContext context, Draft draft, Caller caller, UploadOptions options, long? lifetime)
    {
        if (!draft.SendsLimits)
            return;
        long max = caller.MaxFileSize is { } mine ? Math.Min(mine, options.MaxFileSize) : options.MaxFileSize;
        string limit = "max-size=" + max.ToString(CultureInfo.InvariantCulture);
        if (lifetime is { } seconds)
            limit += ", " + draft.LifetimeKey + "=" + seconds.ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["Upload-Limit"] = limit;
    }

    private static long? LifetimeOf(UploadSnapshot snapshot, TimeProvider time) =>
        snapshot is { IsComplete: false, ExpiresAt: { } expires } ? Math.Max(0, (long)(expires - time.GetUtcNow()).TotalSeconds) : null;

    // Interop 3 to 6: an offset retrieval or cancellation that carries upload state is a 400.
    private static void RefuseUploadState(HttpRequest request, Draft draft, string what)
    {
        foreach (string name in new[] { "Upload-Offset", draft.CompleteHeader, "Upload-Length" })
        {
            if (request.Headers.ContainsKey(name) && (name != "Upload-Length" || draft.Version >= 6))
                throw Invalid($"{what} carries no {name} (interop version {draft.Version}).");
        }
    }

    private static bool? CompleteOf(HttpRequest request, Draft draft) =>
        StructuredBoolean(request, draft.CompleteHeader) is { } flag ? flag != draft.InvertedFlag : null;

    private static async Task<bool> IsEmptyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentLength is { } length)
            return length == 0;
        byte[] one = new byte[1];
        return await request.Body.ReadAsync(one, cancellationToken) == 0; // chunked: empty when it ends at once
    }

    // Whether the upload made by a refused creation is removed: client errors, not a takeover or a busy upload.
    private static bool IsRefusal(UploadError error) =>
        error.Status is >= 400 and < 500 && !error.IsTransient && error.Code is not ("request_superseded" or "offset_mismatch");

    private static string FileNameOf(HttpRequest request, Dictionary<string, string?> metadata)
    {
        if (HeaderValues.Get(request, HeaderNames.ContentDisposition) is { } header)
        {
            if (!ContentDispositionHeaderValue.TryParse(header, out var disposition))
                throw Invalid($"Content-Disposition must be like 'inline; filename=\"<name>\"'; got '{ParameterBag.Truncate(header)}'.");
            string? name = disposition.FileNameStar.HasValue ? disposition.FileNameStar.Value : HeaderUtilities.RemoveQuotes(disposition.FileName).Value;
            if (!string.IsNullOrEmpty(name))
                return name;
        }

        // tus-js-client's IETF modes name the file in tus Upload-Metadata.
        return TusMetadata.First(metadata, "filename", "name") ?? "";
    }

    private static string? ContentTypeOf(HttpRequest request, Dictionary<string, string?> metadata)
    {
        string? type = request.ContentType?.Split(';')[0].Trim();
        bool transfer = type is null || type.Equals(PartialUpload, StringComparison.OrdinalIgnoreCase)
            || type.Equals(TusApi.OffsetOctetStream, StringComparison.OrdinalIgnoreCase);
        return transfer ? TusMetadata.First(metadata, "filetype", "type") : request.ContentType;
    }

    private static bool IsPartialUpload(HttpRequest request) =>
        request.ContentType is { } type && type.Split(';')[0].Trim().Equals(PartialUpload, StringComparison.OrdinalIgnoreCase);

    private static string LocationOf(HttpRequest request, string id) => request.PathBase + BasePath + "/" + Uri.EscapeDataString(id);

    private static string OffsetOf(UploadSnapshot snapshot) =>
        (snapshot.IsComplete ? snapshot.Length!.Value : snapshot.Offset).ToString(CultureInfo.InvariantCulture);

    // ------------------------------------------------------------------ structured fields (RFC 9651)

    /// <summary>
    /// An Item header whose value is an Integer: at most 15 digits, here also not negative. The draft says a malformed
    /// value makes the field ignored; it is refused instead, so a client's mistake shows rather than passing silently.
    /// </summary>
    private static long? StructuredInteger(HttpRequest request, string name)
    {
        if (BareItem(request, name) is not { } text)
            return null;
        var digits = text.StartsWith('-') ? text.AsSpan(1) : text.AsSpan();
        if (digits.IsEmpty || digits.Length > 15 || digits.ContainsAnyExceptInRange('0', '9'))
            throw Invalid($"{name} must be a structured-field integer (up to 15 decimal digits); got '{ParameterBag.Truncate(text)}'.");
        if (text.StartsWith('-'))
            throw Invalid($"{name} must not be negative; got {text}.");
        return DecimalNumber.TryParse(digits, out long value) ? value : throw Invalid($"{name} is not a number: '{ParameterBag.Truncate(text)}'.");
    }

    /// <summary>An Item header whose value is a Boolean: exactly <c>?1</c> or <c>?0</c>.</summary>
    private static bool? StructuredBoolean(HttpRequest request, string name) =>
        BareItem(request, name) switch
        {
            null => null,
            "?1" => true,
            "?0" => false,
            var other => throw Invalid($"{name} must be a structured-field boolean, ?1 (true) or ?0 (false); got '{ParameterBag.Truncate(other)}'."),
        };

    // The bare item of an Item field, without its parameters (";key=value", allowed and ignored).
    private static string? BareItem(HttpRequest request, string name)
    {
        if (HeaderValues.Get(request, name) is not { } value)
            return null;
        int semicolon = value.IndexOf(';', StringComparison.Ordinal);
        if (semicolon < 0)
            return value;
        foreach (string parameter in value[(semicolon + 1)..].Split(';'))
        {
            string key = parameter.Split('=', 2)[0].Trim();
            if (key.Length == 0 || !(char.IsAsciiLetterLower(key[0]) || key[0] == '*')
                || key.Any(c => !(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-' or '.' or '*')))
                throw Invalid($"{name} has a malformed parameter: '{ParameterBag.Truncate(value)}'.");
        }

        return value[..semicolon].TrimEnd();
    }

    // ------------------------------------------------------------------ interop versions and refusals

    private static Draft DraftOf(HttpContext context)
    {
        if (context.Items[DraftItem] is Draft known)
            return known;
        context.Items[DraftItem] = Draft.Current; // the shape of the refusal should the header itself be wrong
        var draft = StructuredInteger(context.Request, InteropHeader) is { } version
            ? version is >= Draft.Oldest and <= Draft.Newest
                ? new Draft((int)version)
                : throw new UploadException(UploadErrors.UnsupportedVersion,
                    $"{InteropHeader}: {version} is not a version this server speaks ({Draft.Oldest} to {Draft.Newest}); send one of them, or none for the current draft.")
            : Draft.Current;
        context.Items[DraftItem] = draft;
        return draft;
    }

    private static async ValueTask<object?> DraftFilter(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        try
        {
            DraftOf(context);
            return await next(invocation);
        }
        catch (UploadException ex) when (!context.Response.HasStarted)
        {
            return Reject(context, ex.Error, ex.Message, ex.RetryAfterSeconds, ex.Offset, log: true);
        }
        catch (BadHttpRequestException ex) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            return ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? Reject(context, HttpErrors.RequestTooLarge, "The content is larger than this server accepts for one file (see Upload-Limit).", null, null, log: true)
                : Reject(context, HttpErrors.BadRequest, "The request could not be read: " + ex.Message, null, null, log: true);
        }
    }

    /// <summary>
    /// A refusal as the draft shapes it: problem+json (the draft's problem types where it defines one, with the stable
    /// <c>code</c> always), <c>Upload-Complete: ?0</c> (?1 when the upload arrived whole and processing it failed),
    /// <c>Upload-Offset</c> when the upload's offset is known, <c>Upload-Limit</c> with a 413.
    /// </summary>
    private static IResult Reject(HttpContext context, UploadError error, string detail, int? retryAfterSeconds, long? offset, bool log)
    {
        var draft = context.Items[DraftItem] as Draft ?? Draft.Current;
        var headers = context.Response.Headers;
        var refusal = draft.Refusal(error, context.Items[EmptyItem] as bool? ?? context.Request.ContentLength is 0);
        error = error with { Status = refusal.Status };
        if (log)
            ErrorHandlingMiddleware.LogRejection(context, error, detail);
        if (offset is { } known)
            headers["Upload-Offset"] = known.ToString(CultureInfo.InvariantCulture);
        draft.SetComplete(headers, context.Items.ContainsKey(ProcessedItem));
        if (error.Status == StatusCodes.Status413PayloadTooLarge)
        {
            var engine = context.RequestServices.GetRequiredService<UploadEngine>();
            SetLimit(context, draft, Principals.CallerOf(context), engine.Options, null);
        }

        if (error.IsTransient)
            headers.RetryAfter = (retryAfterSeconds ?? 5).ToString(CultureInfo.InvariantCulture);
        if (HttpMethods.IsHead(context.Request.Method))
            return TypedResults.StatusCode(error.Status);

        var extensions = new Dictionary<string, object?> { ["code"] = error.Code };
        if (refusal.Type == "mismatching-upload-offset")
        {
            extensions["expected-offset"] = offset;
            extensions["provided-offset"] = context.Items[ProvidedOffsetItem] as long?;
        }

        return TypedResults.Problem(detail, statusCode: error.Status, title: refusal.Title ?? error.Title,
            type: refusal.Type is { } type ? ProblemTypes + type : "urn:chunkupload:error:" + error.Code, extensions: extensions);
    }

    private static UploadException Invalid(string detail) => new(UploadErrors.InvalidParameter, detail);

    private static UploadException Inconsistent(string detail) => new(UploadErrors.LengthConflict, detail);

    private static UploadException NotFound(string id) =>
        new(UploadErrors.UploadNotFound, $"There is no upload '{ParameterBag.Truncate(id)}' at {BasePath} (it may have been cancelled, expired or never created).");

    /// <summary>Refusals from outside the handlers (body limits, authentication, storage faults) in the same shape.</summary>
    private sealed class ProblemResponder : IErrorResponder
    {
        public static readonly ProblemResponder Instance = new();

        public IResult Reject(HttpContext context, UploadError failure, string detail, int? retryAfterSeconds) =>
            ResumableUploadsApi.Reject(context, failure, detail, retryAfterSeconds, null, log: false);
    }

    /// <summary>How a refusal looks on the wire: its status, and the draft's problem type (name and title) if any.</summary>
    private readonly record struct Refusal(int Status, string? Type = null, string? Title = null);

    /// <summary>
    /// What one interop version puts on the wire. 3 is draft -01 (Upload-Incomplete, the inverse flag; omitted on an
    /// append means complete), 4 and 5 are drafts -02 and -03 (tus-js-client 'ietf-draft-03'), 6 is drafts -04 and -05
    /// (tus-js-client 'ietf-draft-05'), 7 is drafts -06 to -08 and 8 is draft -09 to the current text. Up to 6 every
    /// success is 201 and a HEAD or DELETE with upload state is a 400; from 6 appends need application/partial-upload
    /// and answers carry Upload-Limit (lifetime "expires" in 6, "max-age" after), with the problem types for a
    /// mismatching offset and a completed upload; from 7 the one for inconsistent lengths, Upload-Complete is required
    /// on appends, and an append that completes nothing is 204.
    /// </summary>
    private sealed record Draft(int Version)
    {
        public const int Oldest = 3;
        public const int Newest = 8;

        /// <summary>Requests without Upload-Draft-Interop-Version: the current text (and no 104, which is never sent).</summary>
        public static readonly Draft Current = new(Newest);

        public string CompleteHeader => Version == 3 ? "Upload-Incomplete" : "Upload-Complete";

        public bool InvertedFlag => Version == 3;

        public bool AbsentMeansComplete => Version == 3;

        public bool RequiresPartialUploadType => Version >= 6;

        public bool RequiresCompleteOnAppend => Version >= 7;

        public bool RefusesUploadStateInQueries => Version <= 6;

        public bool CreatedForEverySuccess => Version <= 6;

        public bool SendsLimits => Version >= 6;

        public string LifetimeKey => Version == 6 ? "expires" : "max-age";

        public string Flag(bool complete) => complete != InvertedFlag ? "?1" : "?0";

        public void SetComplete(IHeaderDictionary headers, bool complete) => headers[CompleteHeader] = Flag(complete);

        public Refusal Refusal(UploadError error, bool emptyRequest) => error.Code switch
        {
            "offset_mismatch" when Version >= 6 => new(409, "mismatching-upload-offset", "offset from request does not match offset of resource"),
            "length_conflict" or "beyond_length" when Version >= 7 => new(400, "inconsistent-upload-length", "inconsistent length values for upload"),
            "upload_complete" => Version switch
            {
                <= 5 => new(400),
                <= 7 => new(400, "completed-upload", "upload is already completed"),
                // Draft -11: content for a completed upload is an inconsistent length; an empty append is told it is gone.
                _ when emptyRequest => new(410, "completed-upload", "upload is already completed"),
                _ => new(400, "inconsistent-upload-length", "inconsistent length values for upload"),
            },
            "file_too_large" or "request_too_large" => new(StatusCodes.Status413PayloadTooLarge),
            "unsupported_version" => new(400),
            // A busy upload is worth a retry (5xx: clients resume from HEAD); 423 is no status the draft's clients retry.
            "upload_locked" => new(StatusCodes.Status503ServiceUnavailable),
            _ => new(error.Status),
        };
    }
}
