using System.Buffers;
using System.Text;
using ChunkUpload.Core;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Integrity;
using ChunkUpload.Server.Http;
using MinDataRate = Microsoft.AspNetCore.Server.Kestrel.Core.MinDataRate;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace ChunkUpload.Server.Protocol;

/// <summary>
/// Reads a chunk request without buffering it: for multipart/form-data, a streaming reader collects the fields
/// (which both clients send before the file part) and hands over the file part's stream; anything else is a raw
/// (octet) body. No IFormFile, no form binding: the bytes go from the socket to the store's temp file.
/// </summary>
public static class ChunkBody
{
    private const int MaxFieldLength = 16 * 1024;
    private const int MultipartBufferSize = 64 * 1024; // below the large-object threshold: the reader drops its buffer to the GC
    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    /// <summary>Multipart framing and fields allowed on top of the largest chunk.</summary>
    public const long MultipartOverhead = 1024 * 1024;

    /// <summary>
    /// Sets this request's body limits from the options: the largest body (the global Kestrel limit stays as it is)
    /// and the slowest acceptable data rate, below which Kestrel cuts the sender off.
    /// </summary>
    public static void LimitBody(HttpContext context, long maxBytes, UploadOptions options)
    {
        var size = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (size is { IsReadOnly: false })
            size.MaxRequestBodySize = maxBytes;
        var rate = context.Features.Get<IHttpMinRequestBodyDataRateFeature>();
        if (rate is not null)
            rate.MinDataRate = options.MinBodyBytesPerSecond > 0 ? new MinDataRate(options.MinBodyBytesPerSecond, options.MinBodyRateGracePeriod) : null;
    }

    public static bool IsMultipart(HttpRequest request) =>
        request.ContentType is { } type && type.StartsWith("multipart/form-data", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Walks a multipart body: adds every field to <paramref name="bag"/> and calls <paramref name="onFile"/> with
    /// the first part named <paramref name="fileField"/>. The rest of the body is left unread.
    /// </summary>
    public static Task<T> ReadMultipartAsync<T>(HttpRequest request, ParameterBag bag, string fileField,
        Func<Stream, Task<T>> onFile, CancellationToken cancellationToken) =>
        ReadMultipartAsync(request, bag, fileField, (file, _) => onFile(file), null, cancellationToken);

    /// <summary>
    /// As above; when <paramref name="digest"/> is given (a Content-Digest of the request content), every byte of the
    /// request body is observed, and <paramref name="onFile"/> receives the verifier to hand to the engine: it reads the
    /// rest of the body (the closing boundary) and checks the digest before anything of the file part is kept.
    /// </summary>
    public static async Task<T> ReadMultipartAsync<T>(HttpRequest request, ParameterBag bag, string fileField,
        Func<Stream, IBodyVerifier?, Task<T>> onFile, BodyDigest? digest, CancellationToken cancellationToken)
    {
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var mediaType)
            || HeaderUtilities.RemoveQuotes(mediaType.Boundary).Value is not { Length: > 0 and <= 200 } boundary)
            throw new UploadException(UploadErrors.MalformedMultipart, "The multipart Content-Type has no valid boundary.");

        var requestBody = new RequestBodyStream(request.Body, request.HttpContext.RequestAborted);
        Stream body = digest?.Observe(requestBody) ?? requestBody;
        var reader = new MultipartReader(boundary, body, MultipartBufferSize)
        {
            HeadersCountLimit = 16,
            HeadersLengthLimit = 16 * 1024,
        };
        while (await NextSectionAsync(reader, requestBody, cancellationToken) is { } section)
        {
            if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
                || !disposition.DispositionType.Equals("form-data", StringComparison.OrdinalIgnoreCase))
                throw new UploadException(UploadErrors.MalformedMultipart, "A multipart part has no form-data Content-Disposition.");
            string name = HeaderUtilities.RemoveQuotes(disposition.Name).Value ?? "";
            if (name == fileField)
                return await onFile(new RequestBodyStream(section.Body, request.HttpContext.RequestAborted), digest?.Verifier);
            if (disposition.FileName.HasValue || disposition.FileNameStar.HasValue)
                throw new UploadException(UploadErrors.MalformedMultipart,
                    $"Unexpected file part '{ParameterBag.Truncate(name)}'; the chunk must be in the part named '{fileField}'.");
            bag.Add(name, await ReadFieldAsync(new RequestBodyStream(section.Body, request.HttpContext.RequestAborted), name, cancellationToken));
        }

        throw new UploadException(UploadErrors.MissingFilePart, $"The multipart body has no part named '{fileField}' holding the chunk.");
    }

    // The reader itself throws IOException for framing that ends early; that is the client's fault, not the disk's.
    private static async Task<MultipartSection?> NextSectionAsync(MultipartReader reader, RequestBodyStream body, CancellationToken cancellationToken)
    {
        try
        {
            return await reader.ReadNextSectionAsync(cancellationToken);
        }
        catch (IOException ex) when (ex is not BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge })
        {
            throw body.Translate(ex);
        }
    }

    private static async Task<string> ReadFieldAsync(Stream body, string name, CancellationToken cancellationToken)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(MaxFieldLength + 1);
        try
        {
            int total = 0, read;
            while (total <= MaxFieldLength && (read = await body.ReadAsync(buffer.AsMemory(total, MaxFieldLength + 1 - total), cancellationToken)) > 0)
                total += read;
            if (total > MaxFieldLength)
                throw new UploadException(UploadErrors.InvalidParameter,
                    $"The field '{ParameterBag.Truncate(name)}' is longer than {MaxFieldLength} bytes.");
            return StrictUtf8.GetString(buffer, 0, total);
        }
        catch (DecoderFallbackException)
        {
            throw new UploadException(UploadErrors.InvalidParameter, $"The field '{ParameterBag.Truncate(name)}' is not valid UTF-8.");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
