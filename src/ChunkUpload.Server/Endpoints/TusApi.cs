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
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace ChunkUpload.Server.Endpoints;

/// <summary>
/// tus 1.0.0 (https://tus.io/protocols/resumable-upload; ../shared/PROTOCOLS.md section 10) at <c>/tus</c>, upload
/// URLs <c>/tus/{id}</c>, with every extension: creation (+with-upload, +defer-length), termination, checksum (and
/// its trailer form), expiration, concatenation (+unfinished). A POST creates, HEAD reports the durable offset, a
/// PATCH appends at that offset (a sequential write: a new PATCH, or the HEAD of a resuming client, takes the upload
/// over from an earlier PATCH that is still open, which keeps what it received). tus has no error body of its own: refusals are problem+json with the
/// statuses tus clients act on (409 and 423 are retried by tus-js-client and Uppy, other 4xx end the upload).
/// </summary>
public static class TusApi
{
    public const string Protocol = "tus";
    public const string Version = "1.0.0";
    public const string BasePath = "/tus";
    public const string Extensions = "creation,creation-with-upload,creation-defer-length,termination,checksum,checksum-trailer,expiration,concatenation,concatenation-unfinished";
    public const string OffsetOctetStream = "application/offset+octet-stream";
    private const string MetadataProperty = "tus.metadata";

    /// <summary>Headers a browser client must be allowed to send and to read (CORS).</summary>
    public static readonly string[] RequestHeaders = ["Tus-Resumable", "Upload-Length", "Upload-Offset", "Upload-Metadata", "Upload-Defer-Length", "Upload-Concat", "Upload-Checksum", "X-HTTP-Method-Override"];
    public static readonly string[] ResponseHeaders = ["Location", "Upload-Offset", "Upload-Length", "Tus-Version", "Tus-Resumable", "Tus-Max-Size", "Tus-Extension", "Tus-Checksum-Algorithm", "Upload-Metadata", "Upload-Defer-Length", "Upload-Concat", "Upload-Expires"];

    public static IEndpointRouteBuilder MapTusApi(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        // Discovery is open (like a CORS preflight, it carries no credentials).
        app.MapMethods(BasePath, ["OPTIONS"], Options).WithTags("tus 1.0.0").WithName("TusOptions")
            .WithSummary("tus discovery: Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm.");
        app.MapMethods(BasePath + "/{id}", ["OPTIONS"], Options).WithTags("tus 1.0.0").WithName("TusUploadOptions")
            .WithSummary("tus discovery on an upload URL.");

        var tus = app.MapGroup(BasePath).WithTags("tus 1.0.0").RequireUploadCredentials(configuration).AddEndpointFilter(TusFilter);
        tus.MapPost("", Create).WithName("TusCreate").Performs(UploadOperation.Upload)
            .WithSummary("Creates an upload (Upload-Length or Upload-Defer-Length: 1, Upload-Metadata, Upload-Concat: partial | final;<urls>); with an application/offset+octet-stream body it also carries the first bytes. 201 + Location.")
            .Produces(StatusCodes.Status201Created).ProducesProblem(400).ProducesProblem(412).ProducesProblem(413).ProducesProblem(460);
        tus.MapMethods("/{id}", ["HEAD"], Head).WithName("TusHead").Performs(UploadOperation.Status)
            .WithSummary("The durable offset (a PATCH still open on the upload is ended first): Upload-Offset, Upload-Length (or Upload-Defer-Length), Upload-Metadata, Upload-Concat, Upload-Expires; 404 unknown, 410 expired.")
            .Produces(StatusCodes.Status200OK).ProducesProblem(404).ProducesProblem(410);
        tus.MapPatch("/{id}", Patch).WithName("TusPatch").Performs(UploadOperation.Upload)
            .WithSummary("Appends the application/offset+octet-stream body at Upload-Offset (409 when it is not the stored offset, 415 other types, 460 checksum mismatch). 204 with the new Upload-Offset once durable.")
            .Produces(StatusCodes.Status204NoContent).ProducesProblem(400).ProducesProblem(403).ProducesProblem(404).ProducesProblem(409).ProducesProblem(410).ProducesProblem(413).ProducesProblem(415).ProducesProblem(423).ProducesProblem(460);
        tus.MapDelete("/{id}", Terminate).WithName("TusTerminate").Performs(UploadOperation.Delete)
            .WithSummary("Termination: removes the upload. 204; later requests get 404.")
            .Produces(StatusCodes.Status204NoContent).ProducesProblem(404);
        tus.MapPost("/{id}", Override).WithName("TusMethodOverride").Performs(OverriddenOperation)
            .WithSummary("X-HTTP-Method-Override: PATCH, DELETE or HEAD sent as POST.")
            .ProducesProblem(405);
        tus.MapGet("/{id}", Download).WithName("TusDownload").Performs(UploadOperation.Download)
            .WithSummary("The finished file (as GET /files/{id}).");
        return app;
    }

    public static IResult Options(HttpContext context, IOptions<UploadOptions> options)
    {
        var headers = context.Response.Headers;
        headers["Tus-Resumable"] = Version;
        headers["Tus-Version"] = Version;
        headers["Tus-Extension"] = Extensions;
        headers["Tus-Max-Size"] = options.Value.MaxFileSize.ToString(CultureInfo.InvariantCulture);
        headers["Tus-Checksum-Algorithm"] = Digests.TusAlgorithms;
        return TypedResults.NoContent();
    }

    public static async Task<IResult> Create(HttpContext context, UploadEngine engine, TimeProvider time)
    {
        var request = context.Request;
        var caller = Principals.CallerOf(context);
        var token = context.RequestAborted;
        var metadataHeader = Single(request, "Upload-Metadata");
        var metadata = TusMetadata.Parse(metadataHeader ?? "", RequestLimits.For(engine.Options).MaxMetadataLength);
        var spec = new UploadSpec
        {
            Protocol = Protocol,
            FileName = TusMetadata.First(metadata, "filename", "name") ?? "",
            ContentType = TusMetadata.First(metadata, "filetype", "type"),
            RelativePath = RelativePathOf(metadata),
            Properties = string.IsNullOrEmpty(metadataHeader) ? null : new Dictionary<string, string> { [MetadataProperty] = metadataHeader },
            ExpectedSha256 = Digests.ReprSha256(request),
        };

        string? concat = Single(request, "Upload-Concat");
        UploadSnapshot snapshot;
        if (concat is not null && concat.StartsWith("final;", StringComparison.Ordinal))
        {
            if (request.Headers.ContainsKey("Upload-Length") || request.Headers.ContainsKey("Upload-Defer-Length"))
                throw Invalid("A final upload (Upload-Concat: final) takes its length from its parts; send no Upload-Length.");
            snapshot = await engine.ConcatenateAsync(caller, spec, PartIds(concat["final;".Length..], request), token);
        }
        else
        {
            if (concat is not null && concat != "partial")
                throw Invalid("Upload-Concat must be 'partial' or 'final;<upload URLs>'.");
            long? length = Number(request, "Upload-Length");
            string? defer = Single(request, "Upload-Defer-Length");
            if (defer is not null && defer != "1")
                throw Invalid("Upload-Defer-Length must be 1.");
            if (length is not null && defer is not null)
                throw new UploadException(UploadErrors.ConflictingParameter, "Send Upload-Length (the file's size in bytes) or Upload-Defer-Length: 1, not both.");
            if (length is null && defer is null)
                throw new UploadException(UploadErrors.LengthRequired, "Send either Upload-Length (the file's size in bytes) or Upload-Defer-Length: 1.");
            snapshot = await engine.CreateAsync(caller, spec with { Length = length, Partial = concat == "partial" }, token);

            // creation-with-upload: the POST carries the first bytes.
            if (IsOffsetOctetStream(request) && request.ContentLength is not 0)
            {
                context.Response.Headers.Location = LocationOf(request, snapshot.Id);
                snapshot = await AppendAsync(context, engine, caller, snapshot.Id, 0);
                context.Response.Headers["Upload-Offset"] = OffsetOf(snapshot);
            }
        }

        context.Response.Headers.Location = LocationOf(request, snapshot.Id);
        SetExpires(context, snapshot);
        return TypedResults.StatusCode(StatusCodes.Status201Created);
    }

    public static async Task<IResult> Head(string id, HttpContext context, UploadEngine engine, TimeProvider time)
    {
        // A resuming client asks here: a PATCH of this upload still open (its connection may be dead) is ended first,
        // so that the offset includes what it received and the client's next PATCH is not refused (as tusd does).
        var snapshot = await FindAsync(context, engine, time, id, settle: true);
        var headers = context.Response.Headers;
        headers.CacheControl = "no-store";
        bool final = snapshot.Record.Parts is not null;
        // A final upload reports its offset once the concatenation is done and its length once the parts' are known.
        if (!final || snapshot.IsComplete)
            headers["Upload-Offset"] = OffsetOf(snapshot);
        if (snapshot.Length is { } length)
            headers["Upload-Length"] = length.ToString(CultureInfo.InvariantCulture);
        else if (!final)
            headers["Upload-Defer-Length"] = "1";
        if (snapshot.Record.Property(MetadataProperty) is { } metadata)
            headers["Upload-Metadata"] = metadata;
        if (snapshot.Record.Partial)
            headers["Upload-Concat"] = "partial";
        else if (snapshot.Record.Parts is { } parts)
            headers["Upload-Concat"] = "final;" + string.Join(' ', parts.Select(p => LocationOf(context.Request, p)));
        SetExpires(context, snapshot);
        return TypedResults.Ok();
    }

    public static async Task<IResult> Patch(string id, HttpContext context, UploadEngine engine, TimeProvider time)
    {
        var request = context.Request;
        if (!IsOffsetOctetStream(request))
            throw new UploadException(UploadErrors.UnsupportedMediaType, $"A PATCH body must be {OffsetOctetStream}.");
        long offset = Number(request, "Upload-Offset") ?? throw Invalid("Upload-Offset (the byte offset this body starts at) is required.");
        var caller = Principals.CallerOf(context);
        await FindAsync(context, engine, time, id);
        if (Number(request, "Upload-Length") is { } length)
            await engine.DeclareLengthAsync(caller, id, length, context.RequestAborted); // creation-defer-length

        var snapshot = await AppendAsync(context, engine, caller, id, offset);
        context.Response.Headers["Upload-Offset"] = OffsetOf(snapshot);
        SetExpires(context, snapshot);
        return TypedResults.NoContent();
    }

    public static async Task<IResult> Terminate(string id, HttpContext context, UploadEngine engine, TimeProvider time)
    {
        await FindAsync(context, engine, time, id, allowExpired: true);
        if (!await engine.DeleteAsync(Principals.CallerOf(context), id, context.RequestAborted))
            throw NotFound(id);
        return TypedResults.NoContent();
    }

    // X-HTTP-Method-Override (tus core): for clients and proxies that only send GET and POST.
    public static Task<IResult> Override(string id, HttpContext context, UploadEngine engine, TimeProvider time) =>
        Single(context.Request, "X-HTTP-Method-Override")?.ToUpperInvariant() switch
        {
            "PATCH" => Patch(id, context, engine, time),
            "DELETE" => Terminate(id, context, engine, time),
            "HEAD" => Head(id, context, engine, time),
            var other => throw MethodNotAllowed(other),
        };

    private static UploadOperation OverriddenOperation(HttpRequest request) => Single(request, "X-HTTP-Method-Override")?.ToUpperInvariant() switch
    {
        "DELETE" => UploadOperation.Delete,
        "HEAD" => UploadOperation.Status,
        _ => UploadOperation.Upload, // PATCH, or a method the handler refuses
    };

    public static Task<IResult> Download(string id, HttpContext context, UploadEngine engine) => UploadsApi.Download(id, context, engine);

    // Sequential append of the request body: the durable prefix of a body that breaks off is kept and reported.
    private static async Task<UploadSnapshot> AppendAsync(HttpContext context, UploadEngine engine, Caller caller, string id, long offset)
    {
        var request = context.Request;
        var options = engine.Options;
        ChunkBody.LimitBody(context, options.MaxFileSize, options);
        using var verifier = VerifierOf(request);
        var snapshot = await engine.WriteAsync(caller, id, offset,
            new RequestBodyStream(request.Body, context.RequestAborted, UploadErrors.IncompleteBody),
            new WriteOptions
            {
                Protocol = Protocol,
                Append = true,
                KeepPartial = true,
                ExpectedLength = request.ContentLength,
                Verifier = verifier,
            },
            context.RequestAborted);
        if (snapshot.AllStored && !snapshot.IsComplete)
            snapshot = await engine.WaitForCompletionAsync(caller, id, TimeSpan.FromSeconds(5), context.RequestAborted) ?? snapshot;
        return snapshot;
    }

    private static IBodyVerifierDisposable? VerifierOf(HttpRequest request)
    {
        if (Single(request, "Upload-Checksum") is { } checksum)
            return new HeaderVerifier(new DigestVerifier([Digests.OfTusChecksum(checksum)]));
        if (request.Headers.Trailer.Any(t => t?.Contains("Upload-Checksum", StringComparison.OrdinalIgnoreCase) == true))
            return new TrailerVerifier(request); // checksum-trailer
        var content = Digests.OfContent(request);
        return content.Count == 0 ? null : new HeaderVerifier(new DigestVerifier(content));
    }

    private static async Task<UploadSnapshot> FindAsync(HttpContext context, UploadEngine engine, TimeProvider time, string id, bool allowExpired = false, bool settle = false)
    {
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = id;
        var caller = Principals.CallerOf(context);
        var snapshot = settle
            ? await engine.FindSettledAsync(caller, id, context.RequestAborted)
            : await engine.FindAsync(caller, id, context.RequestAborted);
        if (snapshot is null || snapshot.Record.Protocol != Protocol)
            throw NotFound(id);
        if (!allowExpired && snapshot.ExpiresAt < time.GetUtcNow())
            throw new UploadException(UploadErrors.UploadExpired, $"Upload '{ParameterBag.Truncate(id)}' expired at {snapshot.ExpiresAt:R}; start it again.");
        return snapshot;
    }

    // Every request but OPTIONS names the protocol version; every answer carries it. Catalog errors get tus statuses.
    private static async ValueTask<object?> TusFilter(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        context.Response.Headers["Tus-Resumable"] = Version;
        try
        {
            if (!HttpMethods.IsGet(context.Request.Method) && Single(context.Request, "Tus-Resumable") != Version)
            {
                context.Response.Headers["Tus-Version"] = Version;
                throw new UploadException(UploadErrors.UnsupportedVersion,
                    $"This server speaks tus {Version}; send Tus-Resumable: {Version}.");
            }

            return await next(invocation);
        }
        catch (UploadException ex) when (!context.Response.HasStarted)
        {
            var error = ex.Error with { Status = StatusOf(ex.Error) };
            if (ex.Offset is { } offset)
                context.Response.Headers["Upload-Offset"] = offset.ToString(CultureInfo.InvariantCulture);
            ErrorHandlingMiddleware.LogRejection(context, error, ex.Message);
            if (HttpMethods.IsHead(context.Request.Method))
            {
                // A HEAD answer has no body: keep the status-code pages from writing a problem into it.
                if (context.Features.Get<IStatusCodePagesFeature>() is { } pages)
                    pages.Enabled = false;
                if (error.IsTransient)
                    context.Response.Headers.RetryAfter = (ex.RetryAfterSeconds ?? 5).ToString(CultureInfo.InvariantCulture);
                return TypedResults.StatusCode(error.Status);
            }

            return Problems.From(error, ex.Message, ex.RetryAfterSeconds);
        }
    }

    /// <summary>The status a tus client expects for a catalog error.</summary>
    public static int StatusOf(UploadError error) => error.Code switch
    {
        "checksum_mismatch" => 460, // tus checksum extension
        "file_too_large" or "beyond_length" => StatusCodes.Status413PayloadTooLarge,
        "upload_not_writable" => StatusCodes.Status403Forbidden,
        "request_superseded" => StatusCodes.Status409Conflict,
        _ => error.Status,
    };

    private static List<string> PartIds(string list, HttpRequest request)
    {
        var ids = new List<string>();
        foreach (var url in list.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            // tus-js-client names the parts with absolute URLs (its upload URLs resolved against the endpoint): they
            // must be this server's. (On Unix a path such as /tus/x also parses as an absolute file: URI.)
            string path = url;
            if (Uri.TryCreate(url, UriKind.Absolute, out var absolute) && absolute.Scheme is "http" or "https")
            {
                if (!IsThisHost(absolute, request))
                    throw new UploadException(UploadErrors.InvalidConcatenation,
                        $"'{ParameterBag.Truncate(url)}' names another server ({ParameterBag.Truncate(absolute.Authority)}); a final upload joins uploads of this server only.");
                path = absolute.AbsolutePath;
            }

            string prefix = request.PathBase + BasePath + "/";
            if (!path.StartsWith(prefix, StringComparison.Ordinal) || path.Length == prefix.Length || path.IndexOf('/', prefix.Length) >= 0)
                throw new UploadException(UploadErrors.InvalidConcatenation, $"'{ParameterBag.Truncate(url)}' is not an upload URL of this server ({prefix}<id>).");
            ids.Add(Uri.UnescapeDataString(path[prefix.Length..]));
        }

        return ids;
    }

    // Uppy sends every meta field as String(value): a file not picked from a folder has the relativePath "null".
    private static string? RelativePathOf(Dictionary<string, string?> metadata) =>
        TusMetadata.First(metadata, "relativePath") is { } path && path != "null" ? path : null;

    // The host the request was sent to; without a port in Host, the URL's scheme's default (a TLS proxy in front).
    private static bool IsThisHost(Uri url, HttpRequest request) =>
        string.Equals(url.Host, request.Host.Host, StringComparison.OrdinalIgnoreCase)
        && (request.Host.Port is { } port ? url.Port == port : url.IsDefaultPort);

    private static string LocationOf(HttpRequest request, string id) => request.PathBase + BasePath + "/" + Uri.EscapeDataString(id);

    private static string OffsetOf(UploadSnapshot snapshot) =>
        (snapshot.IsComplete ? snapshot.Length!.Value : snapshot.Offset).ToString(CultureInfo.InvariantCulture);

    // tus: Upload-Expires is when an unfinished upload expires; a finished file's retention is not the client's concern.
    private static void SetExpires(HttpContext context, UploadSnapshot snapshot)
    {
        if (!snapshot.IsComplete && snapshot.ExpiresAt is { } expires)
            context.Response.Headers["Upload-Expires"] = expires.ToString("R", CultureInfo.InvariantCulture);
    }

    private static bool IsOffsetOctetStream(HttpRequest request) =>
        request.ContentType is { } type && type.Split(';')[0].Trim().Equals(OffsetOctetStream, StringComparison.OrdinalIgnoreCase);

    // A header that must appear at most once; a repeated one with different values is refused.
    private static string? Single(HttpRequest request, string name)
    {
        if (!request.Headers.TryGetValue(name, out StringValues values) || values.Count == 0)
            return null;
        if (values.Count > 1 && values.Distinct(StringComparer.Ordinal).Count() > 1)
            throw new UploadException(UploadErrors.ConflictingParameter, $"{name} was sent more than once with different values.");
        return values[0]?.Trim();
    }

    private static long? Number(HttpRequest request, string name)
    {
        if (Single(request, name) is not { } text)
            return null;
        if (!DecimalNumber.TryParse(text, out long value))
            throw Invalid($"{name} must be a whole number of bytes from 0 to {long.MaxValue}; got '{ParameterBag.Truncate(text)}'.");
        return value;
    }

    private static UploadException Invalid(string detail) => new(UploadErrors.InvalidParameter, detail);

    private static UploadException NotFound(string id) =>
        new(UploadErrors.UploadNotFound, $"There is no tus upload '{ParameterBag.Truncate(id)}' (it may have been terminated, expired or never created).");

    private static UploadException MethodNotAllowed(string? method) =>
        new(UploadErrors.MethodNotAllowed, method is null
            ? "POST to an upload URL needs X-HTTP-Method-Override: PATCH, DELETE or HEAD."
            : $"X-HTTP-Method-Override: {ParameterBag.Truncate(method)} is not allowed here; use PATCH, DELETE or HEAD.");

    private interface IBodyVerifierDisposable : IBodyVerifier, IDisposable;

    private sealed class HeaderVerifier(DigestVerifier inner) : IBodyVerifierDisposable
    {
        public void Observe(ReadOnlySpan<byte> bytes) => inner.Observe(bytes);

        public ValueTask VerifyAsync(CancellationToken cancellationToken) => inner.VerifyAsync(cancellationToken);

        public void Dispose() => inner.Dispose();
    }

    /// <summary>checksum-trailer: the algorithm and digest arrive after the body, so every supported algorithm runs.</summary>
    private sealed class TrailerVerifier(HttpRequest request) : IBodyVerifierDisposable
    {
        private readonly Dictionary<DigestAlgorithm, System.Security.Cryptography.IncrementalHash> _hashes =
            DigestAlgorithm.All.ToDictionary(a => a, a => System.Security.Cryptography.IncrementalHash.CreateHash(a.Hash));

        public void Observe(ReadOnlySpan<byte> bytes)
        {
            foreach (var hash in _hashes.Values)
                hash.AppendData(bytes);
        }

        public ValueTask VerifyAsync(CancellationToken cancellationToken)
        {
            string? trailer = request.CheckTrailersAvailable() ? request.GetTrailer("Upload-Checksum").ToString() : null;
            if (string.IsNullOrWhiteSpace(trailer))
                throw new UploadException(UploadErrors.InvalidParameter, "The request announced an Upload-Checksum trailer but did not send one.");
            var expected = Digests.OfTusChecksum(trailer.Trim());
            var actual = _hashes[expected.Algorithm].GetHashAndReset();
            if (!System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(actual, expected.Value))
                throw new UploadException(UploadErrors.ChecksumMismatch,
                    $"The body's {expected.Algorithm.Name} does not match the Upload-Checksum trailer; nothing of it was kept. Send it again.");
            return ValueTask.CompletedTask;
        }

        public void Dispose()
        {
            foreach (var hash in _hashes.Values)
                hash.Dispose();
        }
    }
}
