using System.Globalization;
using System.Text;
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
/// The nginx upload module's resumable protocol (<c>upload_resumable on</c>; ../shared/PROTOCOLS.md sections 5 and 9.10)
/// at <c>/nginx-upload</c>. Each POST carries one segment as a raw body: <c>Session-ID</c> or <c>X-Session-ID</c> names
/// the upload (<c>[0-9A-Za-z_-]</c>; it is the id of /uploads/{id} and /files/{id}), <c>X-Content-Range</c> or
/// <c>Content-Range: bytes first-last/total</c> (inclusive ends) places it, <c>Content-Disposition: attachment;
/// filename="…"</c> names the file (percent-encoded or raw), <c>Content-Type</c> is required and not multipart.
/// Segments may come in any order, in parallel, overlapping or again; each is stored whole or not at all.
/// <list type="bullet">
/// <item>201 while bytes are missing, with every stored range merged, <c>start-end</c> inclusive and comma-separated,
/// then <c>/total</c> (<c>0-5,9-15/24</c>), in <c>Range</c> and as the text/plain body.</item>
/// <item>200 once every byte is stored, with the same list (<c>0-23/24</c>).</item>
/// <item>416 when the range disagrees with the body or the upload: Content-Length not the range's length, a range past
/// the total, a total different from the first segment's.</item>
/// </list>
/// Refusals are text/plain, one line <c>code: detail</c> with the catalog's stable code (the module itself answers
/// bare status pages); 400 for missing or malformed headers, 405 for other methods, 409 for an id another protocol
/// owns, 410 for an expired session, 413 for a total above the server's limit, 415 without Content-Disposition or for
/// a multipart body. More than 1000 separate ranges are listed as the first 999 and the last.
/// </summary>
public static class NginxUploadApi
{
    public const string Protocol = "nginx";
    public const string Path = "/nginx-upload";
    private const int MaxListedRanges = 1000;

    /// <summary>Headers a browser client must be allowed to send and to read (CORS).</summary>
    public static readonly string[] RequestHeaders = ["Session-ID", "X-Session-ID", "Content-Range", "X-Content-Range", "Content-Disposition"];
    public static readonly string[] ResponseHeaders = ["Range"];

    public static IEndpointRouteBuilder MapNginxUploadApi(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        var nginx = app.MapGroup(Path).WithTags("nginx upload module (resumable)").AddEndpointFilter(NginxFilter);
        nginx.MapPost("", Upload).WithName("NginxUploadSegment").RequireUploadCredentials(configuration).Performs(UploadOperation.Upload)
            .WithSummary("Stores one segment (raw body; Session-ID, X-Content-Range: bytes a-b/T, Content-Disposition: attachment; filename=\"…\"): 201 with the merged stored ranges (\"0-5,9-15/24\") in Range and the body, 200 once the file is complete.")
            .Produces<string>(StatusCodes.Status200OK, "text/plain").Produces<string>(StatusCodes.Status201Created, "text/plain")
            .Produces<string>(StatusCodes.Status400BadRequest, "text/plain").Produces<string>(StatusCodes.Status409Conflict, "text/plain")
            .Produces<string>(StatusCodes.Status413PayloadTooLarge, "text/plain").Produces<string>(StatusCodes.Status415UnsupportedMediaType, "text/plain")
            .Produces<string>(StatusCodes.Status416RangeNotSatisfiable, "text/plain");
        nginx.MapMethods("", ["GET", "HEAD", "PUT", "PATCH", "DELETE"], NotAllowed).ExcludeFromDescription();
        return app;
    }

    public static async Task<IResult> Upload(HttpContext context, UploadEngine engine, TimeProvider time)
    {
        var request = context.Request;
        string id = SessionIdOf(request, engine.Options.MaxIdentifierLength);
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = id;
        if (string.IsNullOrWhiteSpace(request.ContentType))
            throw new UploadException(UploadErrors.MissingParameter, "Content-Type is required: the file's type, or application/octet-stream when unknown.");
        if (ChunkBody.IsMultipart(request))
            throw new UploadException(UploadErrors.UnsupportedMediaType, "Send the segment as the raw body, not multipart/form-data.");
        string fileName = FileNameOf(request);
        string rangeText = HeaderValues.Either(request, "X-Content-Range", "Content-Range")
            ?? throw new UploadException(UploadErrors.MissingParameter, "X-Content-Range (or Content-Range): bytes <first>-<last>/<total> is required.");
        var range = ContentRange.Parse(rangeText, "X-Content-Range");
        if (range is not { First: { } first, Last: not null, Total: { } total, Length: { } length })
            throw new UploadException(UploadErrors.InvalidParameter,
                $"X-Content-Range must name the segment's bytes and the file's size, as in 'bytes 0-51199/511920'; got '{ParameterBag.Truncate(rangeText)}'.");
        if (request.ContentLength is { } sent && sent != length)
            throw new UploadException(UploadErrors.ChunkLengthMismatch,
                $"The range names {length} bytes, but Content-Length is {sent}; nothing was stored.");

        var options = engine.Options;
        ChunkBody.LimitBody(context, Math.Min(length, options.MaxFileSize), options);
        var caller = Principals.CallerOf(context);
        var token = context.RequestAborted;
        var (snapshot, created) = await engine.GetOrCreateAsync(caller, new UploadSpec
        {
            Id = id,
            Protocol = Protocol,
            Length = total,
            FileName = fileName,
            ContentType = request.ContentType,
            ExpectedSha256 = Digests.ReprSha256(request),
        }, token);
        if (!created && snapshot.ExpiresAt < time.GetUtcNow())
            throw new UploadException(UploadErrors.UploadExpired,
                $"Session '{ParameterBag.Truncate(id)}' expired at {snapshot.ExpiresAt:R}; upload the file again under a new Session-ID.");
        if (snapshot.Length != total)
            throw new UploadException(UploadErrors.LengthConflict,
                $"Session '{ParameterBag.Truncate(id)}' is a {snapshot.Length}-byte file; this segment says {total}.");

        using var digest = BodyDigest.Of(request);
        var raw = new RequestBodyStream(request.Body, token, UploadErrors.IncompleteBody);
        snapshot = await engine.WriteAsync(caller, id, first, digest?.Observe(raw) ?? raw,
            new WriteOptions { Protocol = Protocol, ExpectedLength = length, Verifier = digest?.Verifier },
            token);
        if (snapshot.AllStored && !snapshot.IsComplete)
            snapshot = await engine.WaitForCompletionAsync(caller, id, TimeSpan.FromSeconds(5), token) ?? snapshot;
        if (snapshot.Record.State == UploadState.Failed)
            throw new UploadException(UploadErrors.UploadFailed,
                $"Session '{ParameterBag.Truncate(id)}' failed on the server ({snapshot.Record.Failure}); upload the file again under a new Session-ID.");

        string list = RangeList(snapshot);
        context.Response.Headers["Range"] = list;
        return TypedResults.Text(list, "text/plain", Encoding.UTF8,
            snapshot.IsComplete || snapshot.AllStored ? StatusCodes.Status200OK : StatusCodes.Status201Created);
    }

    public static IResult NotAllowed(HttpContext context)
    {
        context.Response.Headers.Allow = "POST";
        throw new UploadException(UploadErrors.MethodNotAllowed, $"{context.Request.Method} is not part of the resumable protocol; POST each segment.");
    }

    /// <summary>Every stored range merged, inclusive ends, then the total: <c>0-5,9-15/24</c>.</summary>
    public static string RangeList(UploadSnapshot snapshot)
    {
        IReadOnlyList<ByteRange> ranges = snapshot.StoredRanges;
        if (ranges.Count > MaxListedRanges)
            ranges = [.. ranges.Take(MaxListedRanges - 1), ranges[^1]];
        var text = new StringBuilder();
        foreach (var range in ranges)
        {
            if (text.Length > 0)
                text.Append(',');
            text.Append(CultureInfo.InvariantCulture, $"{range.Offset}-{range.End - 1}");
        }

        return text.Append(CultureInfo.InvariantCulture, $"/{snapshot.Length}").ToString();
    }

    // The module allows [0-9A-Za-z_-]: anything else (a path, spaces, control characters) is refused, never mapped.
    private static string SessionIdOf(HttpRequest request, int max)
    {
        string id = HeaderValues.Either(request, "Session-ID", "X-Session-ID")
            ?? throw new UploadException(UploadErrors.MissingParameter, "Session-ID (or X-Session-ID) is required: the same value for every segment of one file.");
        if (id.Length == 0 || id.Length > max || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
            throw new UploadException(UploadErrors.InvalidIdentifier,
                $"Session-ID must be 1 to {max} characters from 0-9, A-Z, a-z, '_' and '-'; got '{ParameterBag.Truncate(Printable(id))}'.");
        return id;
    }

    private static string FileNameOf(HttpRequest request)
    {
        string header = HeaderValues.Get(request, HeaderNames.ContentDisposition)
            ?? throw new UploadException(UploadErrors.UnsupportedMediaType,
                "A raw segment needs Content-Disposition: attachment; filename=\"<name>\".");
        if (!ContentDispositionHeaderValue.TryParse(header, out var disposition)
            || !disposition.DispositionType.Equals("attachment", StringComparison.OrdinalIgnoreCase))
            throw new UploadException(UploadErrors.InvalidParameter,
                $"Content-Disposition must be 'attachment; filename=\"<name>\"'; got '{ParameterBag.Truncate(Printable(header))}'.");
        string? name = disposition.FileNameStar.HasValue ? disposition.FileNameStar.Value : HeaderUtilities.RemoveQuotes(disposition.FileName).Value;
        if (string.IsNullOrEmpty(name))
            throw new UploadException(UploadErrors.InvalidFileName, "Content-Disposition names no filename.");
        // Clients percent-encode the name (ngx-uploadx) or send it raw; a '%' that starts no escape is kept as it is.
        return name.Contains('%', StringComparison.Ordinal) ? Uri.UnescapeDataString(name) : name;
    }

    private static string Printable(string value) => new([.. value.Select(c => char.IsControl(c) ? '?' : c)]);

    // Refusals as text lines the module's clients can show; 416 for ranges and lengths that disagree, 413 for a
    // file over the server's limit (as the module answers).
    private static async ValueTask<object?> NginxFilter(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
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
            // The body limit is the segment's length: a larger body does not match its range.
            return ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? Reject(context, UploadErrors.ChunkLengthMismatch, "The body is longer than its range; nothing was stored.", null)
                : Reject(context, HttpErrors.BadRequest, "The request could not be read: " + ex.Message, null);
        }
    }

    /// <summary>The status the module answers for a catalog error.</summary>
    public static int StatusOf(UploadError error) => error.Code switch
    {
        "chunk_length_mismatch" or "length_conflict" or "beyond_length" => StatusCodes.Status416RangeNotSatisfiable,
        "file_too_large" => StatusCodes.Status413PayloadTooLarge,
        _ => error.Status,
    };

    private static ContentHttpResult Reject(HttpContext context, UploadError error, string detail, int? retryAfter)
    {
        error = error with { Status = StatusOf(error) };
        ErrorHandlingMiddleware.LogRejection(context, error, detail);
        context.Response.Headers.Remove("Range");
        if (error.IsTransient)
            context.Response.Headers.RetryAfter = (retryAfter ?? 5).ToString(CultureInfo.InvariantCulture);
        return TypedResults.Text($"{error.Code}: {detail}\n", "text/plain", Encoding.UTF8, error.Status);
    }
}
