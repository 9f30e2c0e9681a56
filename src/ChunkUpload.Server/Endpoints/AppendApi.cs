using System.Globalization;
using System.Text;
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
/// Plain append, the javascript.info "Resumable file upload" tutorial (../shared/PROTOCOLS.md section 7), at
/// <c>/append</c>. <c>X-File-Id</c> names the upload (the tutorial sends <c>name-size-lastModified</c>; it is the id of
/// /uploads/{id} and /files/{id}; '/' and '\' are refused, a file name never holds them).
/// <list type="bullet">
/// <item><c>GET /append/status</c>: 200 text/plain, the number of bytes stored (the whole size once complete); 0 for an
/// unknown or expired id, as the tutorial's server answers. A POST still open on the file is ended first (its bytes
/// counted), as tus HEAD does.</item>
/// <item><c>POST /append</c> (also <c>/append/upload</c>, where the tutorial's relative <c>upload</c> lands) with
/// <c>X-Start-Byte</c>: appends the raw body at that byte, which must be the stored count (else 409
/// <c>offset_mismatch</c>, the count in <c>Upload-Offset</c>, nothing stored). <c>X-Start-Byte: 0</c> on an unfinished
/// upload starts it over (the tutorial truncates). A body that breaks off keeps its durable prefix, which the next
/// status reports. 200 with the new count as text/plain.</item>
/// <item>Complete: the tutorial sends the rest of the file in one request and no size, so without a stated size the
/// upload is complete when a POST's body arrives whole (its end is the file's size). A client that appends in
/// several requests states the size, <c>X-File-Size</c> or <c>Upload-Length</c>, on any of them (it cannot change
/// later); the upload is complete when that many bytes are stored.</item>
/// </list>
/// Refusals are text/plain, one line <c>code: detail</c> with the catalog's stable code (the tutorial's client only
/// looks at the status); a POST to a finished upload at its end is 200, anywhere else 409.
/// </summary>
public static class AppendApi
{
    public const string Protocol = "append";
    public const string BasePath = "/append";

    /// <summary>Headers a browser client must be allowed to send and to read (CORS).</summary>
    public static readonly string[] RequestHeaders = ["X-File-Id", "X-Start-Byte", "X-File-Size", "Upload-Length"];
    public static readonly string[] ResponseHeaders = ["Upload-Offset"];

    public static IEndpointRouteBuilder MapAppendApi(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        var append = app.MapGroup(BasePath).WithTags("javascript.info append").RequireUploadCredentials(configuration).AddEndpointFilter(AppendFilter);
        append.MapGet("/status", Status).WithName("AppendStatus").Performs(UploadOperation.Status)
            .WithSummary("The number of bytes stored for X-File-Id, as text (0 when unknown).")
            .Produces<string>(StatusCodes.Status200OK, "text/plain").Produces<string>(StatusCodes.Status400BadRequest, "text/plain")
            .Produces<string>(StatusCodes.Status409Conflict, "text/plain");
        append.MapPost("", Append).WithName("AppendBytes").Performs(UploadOperation.Upload)
            .WithSummary("Appends the raw body at X-Start-Byte (the stored count; 0 starts over) to X-File-Id; optional X-File-Size. 200 with the new count; complete when the body arrives whole, or at X-File-Size.")
            .Produces<string>(StatusCodes.Status200OK, "text/plain").Produces<string>(StatusCodes.Status400BadRequest, "text/plain")
            .Produces<string>(StatusCodes.Status409Conflict, "text/plain");
        append.MapPost("/upload", Append).WithName("AppendBytesTutorialPath").Performs(UploadOperation.Upload)
            .WithSummary("The same as POST /append, where the tutorial's relative URL 'upload' lands.");
        return app;
    }

    public static async Task<IResult> Status(HttpContext context, UploadEngine engine, TimeProvider time)
    {
        string id = FileIdOf(context);
        // The client asks before it resumes: a POST still open on the file (a connection gone quiet) is ended first, so
        // the count includes every byte it delivered and the next POST from that count is accepted, not 409.
        var snapshot = await engine.FindSettledAsync(Principals.CallerOf(context), id, context.RequestAborted);
        context.Response.Headers.CacheControl = "no-store";
        if (snapshot is not null)
            CheckProtocol(snapshot);
        return Count(snapshot is null || IsExpired(snapshot, time) ? 0 : StoredOf(snapshot));
    }

    public static async Task<IResult> Append(HttpContext context, UploadEngine engine, TimeProvider time)
    {
        var request = context.Request;
        string id = FileIdOf(context);
        long start = HeaderValues.Number(request, "X-Start-Byte")
            ?? throw new UploadException(UploadErrors.MissingParameter, "X-Start-Byte is required: the number of bytes the server has (GET /append/status), 0 for a new file.");
        long? size = HeaderValues.Number(request, "X-File-Size", "Upload-Length");
        if (size is { } limit && request.ContentLength is { } sent && (start > limit || sent > limit - start))
            throw new UploadException(UploadErrors.BeyondLength, $"The file has {limit} bytes; {sent} bytes from byte {start} go past its end.");
        var caller = Principals.CallerOf(context);
        var token = context.RequestAborted;
        var options = engine.Options;
        ChunkBody.LimitBody(context, options.MaxFileSize, options);

        var snapshot = await engine.FindAsync(caller, id, token);
        if (snapshot is not null)
        {
            CheckProtocol(snapshot);
            if (snapshot.IsComplete)
            {
                long length = snapshot.Length!.Value;
                if (size is { } stated && stated != length)
                    throw LengthConflict(length, stated);
                if (start != length)
                    throw OffsetMismatch(length, start);
                if (request.ContentLength is > 0)
                    throw new UploadException(UploadErrors.BeyondLength, $"The file is complete with {length} bytes; there is nothing more to append.");
                return Count(length);
            }

            bool expired = IsExpired(snapshot, time);
            if (start == 0 && (expired || snapshot.StoredBytes > 0 || snapshot.Record.State == UploadState.Failed))
            {
                await engine.DeleteAsync(caller, id, token); // X-Start-Byte: 0 starts the file over
                snapshot = null;
            }
            else if (expired && start != 0)
            {
                throw OffsetMismatch(0, start); // what status reports for it
            }
        }

        if (snapshot is null)
        {
            if (start != 0)
                throw OffsetMismatch(0, start);
            (snapshot, _) = await engine.GetOrCreateAsync(caller, new UploadSpec
            {
                Id = id,
                Protocol = Protocol,
                Length = size,
                FileName = FileNameOf(id),
                ContentType = request.ContentType,
                ExpectedSha256 = Digests.ReprSha256(request),
            }, token);
        }

        if (start != snapshot.Offset)
            throw OffsetMismatch(snapshot.Offset, start);
        if (size is { } total && snapshot.Length != total)
        {
            if (snapshot.Length is { } declared)
                throw LengthConflict(declared, total);
            snapshot = await engine.DeclareLengthAsync(caller, id, total, token);
        }

        using var digest = BodyDigest.Of(request);
        var raw = new RequestBodyStream(request.Body, token, UploadErrors.IncompleteBody);
        snapshot = await engine.WriteAsync(caller, id, start, digest?.Observe(raw) ?? raw,
            new WriteOptions
            {
                Protocol = Protocol,
                Append = true,
                KeepPartial = true,
                ExpectedLength = request.ContentLength,
                CompletesUpload = snapshot.Length is null,
                Verifier = digest?.Verifier,
            },
            token);
        if (snapshot.AllStored && !snapshot.IsComplete)
            snapshot = await engine.WaitForCompletionAsync(caller, id, TimeSpan.FromSeconds(5), token) ?? snapshot;
        if (snapshot.Record.State == UploadState.Failed)
            throw new UploadException(UploadErrors.UploadFailed,
                $"Upload '{ParameterBag.Truncate(id)}' failed on the server ({snapshot.Record.Failure}); send it again from X-Start-Byte: 0.");
        return Count(StoredOf(snapshot));
    }

    private static ContentHttpResult Count(long bytes)
    {
        string text = bytes.ToString(CultureInfo.InvariantCulture);
        return TypedResults.Text(text, "text/plain", Encoding.UTF8);
    }

    private static long StoredOf(UploadSnapshot snapshot) => snapshot.IsComplete ? snapshot.Length!.Value : snapshot.Offset;

    private static bool IsExpired(UploadSnapshot snapshot, TimeProvider time) =>
        !snapshot.IsComplete && snapshot.ExpiresAt < time.GetUtcNow();

    private static string FileIdOf(HttpContext context)
    {
        string id = HeaderValues.Get(context.Request, "X-File-Id")
            ?? throw new UploadException(UploadErrors.MissingParameter, "X-File-Id is required: the file's id, such as name-size-lastModified.");
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = id;
        if (id.Length == 0 || id.Contains('/', StringComparison.Ordinal) || id.Contains('\\', StringComparison.Ordinal))
            throw new UploadException(UploadErrors.InvalidIdentifier,
                $"X-File-Id must be a non-empty name without '/' or '\\' (such as name-size-lastModified); got '{ParameterBag.Truncate(id)}'.");
        return id; // the engine refuses control characters and over-long ids
    }

    // "photo.jpg-2459177-1700000000000" names the file photo.jpg; another id is its own file name.
    private static string FileNameOf(string id)
    {
        int last = id.LastIndexOf('-');
        int size = last > 0 ? id.LastIndexOf('-', last - 1) : -1;
        return size > 0 && IsDigits(id.AsSpan(last + 1)) && IsDigits(id.AsSpan(size + 1, last - size - 1)) ? id[..size] : id;

        static bool IsDigits(ReadOnlySpan<char> text) => !text.IsEmpty && !text.ContainsAnyExceptInRange('0', '9');
    }

    private static void CheckProtocol(UploadSnapshot snapshot)
    {
        if (snapshot.Record.Protocol != Protocol)
            throw new UploadException(UploadErrors.WrongProtocol,
                $"Upload '{ParameterBag.Truncate(snapshot.Id)}' was started with the {snapshot.Record.Protocol} protocol; it cannot be used with {Protocol}. Use another X-File-Id.");
    }

    private static UploadException OffsetMismatch(long stored, long start) =>
        new(UploadErrors.OffsetMismatch, $"X-Start-Byte is {start}, but the server has {stored} bytes of this file; send X-Start-Byte: {stored} with the bytes from there.") { Offset = stored };

    private static UploadException LengthConflict(long declared, long stated) =>
        new(UploadErrors.LengthConflict, $"The file's size is {declared} bytes; it cannot become {stated}.");

    private static async ValueTask<object?> AppendFilter(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        try
        {
            return await next(invocation);
        }
        catch (UploadException ex) when (!context.Response.HasStarted)
        {
            if (ex.Offset is { } offset)
                context.Response.Headers["Upload-Offset"] = offset.ToString(CultureInfo.InvariantCulture);
            return Reject(context, ex.Error, ex.Message, ex.RetryAfterSeconds);
        }
        catch (BadHttpRequestException ex) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            return ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? Reject(context, HttpErrors.RequestTooLarge, "The body is larger than this server accepts for one file.", null)
                : Reject(context, HttpErrors.BadRequest, "The request could not be read: " + ex.Message, null);
        }
    }

    private static ContentHttpResult Reject(HttpContext context, UploadError error, string detail, int? retryAfter)
    {
        ErrorHandlingMiddleware.LogRejection(context, error, detail);
        if (error.IsTransient)
            context.Response.Headers.RetryAfter = (retryAfter ?? 5).ToString(CultureInfo.InvariantCulture);
        return TypedResults.Text($"{error.Code}: {detail}\n", "text/plain", Encoding.UTF8, error.Status);
    }
}
