using System.Buffers;
using System.Text;
using ChunkUpload.Core;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Integrity;
using ChunkUpload.Server.Hosting;
using ChunkUpload.Server.Http;
using MinDataRate = Microsoft.AspNetCore.Server.Kestrel.Core.MinDataRate;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace ChunkUpload.Server.Protocol;

/// <summary>
/// Reads a chunk request without buffering it: for multipart/form-data, a streaming reader collects the fields
/// (which every client sends before the file part) and hands over the file part's stream; anything else is a raw
/// (octet) body. No IFormFile, no form binding: the bytes go from the socket to the store's temp file.
/// <para>
/// Fields are bounded in number and in bytes (<see cref="RequestLimits"/>) and refused with <c>too_many_fields</c>
/// before more is read. Only the protocol's own parameter names are kept; other fields (the <c>query</c> entries
/// resumable.js and flow.js add, Fine Uploader's <c>request.params</c>, such as a CSRF token) are read within the same
/// bounds and dropped. The rest of the body, after the file part, is read before anything of the chunk is kept: a
/// second file part, or a parameter there that contradicts (or was missing from) what the chunk was stored under, is
/// <c>conflicting_parameter</c>, and nothing is stored.
/// </para>
/// </summary>
public static class ChunkBody
{
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
    /// Walks a multipart body: adds every field named in <paramref name="parameters"/> to <paramref name="bag"/> and calls
    /// <paramref name="onFile"/> with the first part named <paramref name="fileField"/>, and the verifier to hand to the
    /// engine (<c>WriteOptions.Verifier</c>). The engine calls it once the file part has arrived and before anything is
    /// kept: it reads the rest of the body (fields after the file part, the closing boundary) and, when
    /// <paramref name="digest"/> is given (a Content-Digest of the request content, which observes every byte of the
    /// body), checks the digest. When the engine stores nothing (bytes already stored), the rest is checked after
    /// <paramref name="onFile"/> returns, so the answer does not depend on what was stored before.
    /// </summary>
    public static async Task<T> ReadMultipartAsync<T>(HttpRequest request, ParameterBag bag, string fileField, IReadOnlySet<string> parameters,
        UploadOptions options, Func<Stream, IBodyVerifier, Task<T>> onFile, BodyDigest? digest, CancellationToken cancellationToken)
    {
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var mediaType)
            || HeaderUtilities.RemoveQuotes(mediaType.Boundary).Value is not { Length: > 0 and <= 200 } boundary)
            throw new UploadException(UploadErrors.MalformedMultipart, "The multipart Content-Type has no valid boundary.");

        var aborted = request.HttpContext.RequestAborted;
        var requestBody = new RequestBodyStream(request.Body, aborted);
        Stream body = digest?.Observe(requestBody) ?? requestBody;
        var reader = new MultipartReader(boundary, body, MultipartBufferSize)
        {
            HeadersCountLimit = 16,
            HeadersLengthLimit = 16 * 1024,
        };
        var walk = new Walk(reader, requestBody, bag, fileField, parameters, RequestLimits.For(options), aborted);
        while (await walk.NextAsync(cancellationToken) is { } section)
        {
            var (name, isFile) = Walk.Describe(section);
            if (name == fileField)
            {
                var file = new FilePartStream(new RequestBodyStream(section.Body, aborted));
                var rest = new RestOfBody(walk, digest?.Verifier);
                T result = await onFile(file, rest);
                if (file.Ended)
                    await rest.VerifyAsync(cancellationToken); // once: a no-op when the engine verified already
                return result;
            }

            if (isFile)
                throw new UploadException(UploadErrors.MalformedMultipart,
                    $"Unexpected file part '{ParameterBag.Truncate(name)}'; the chunk must be in the part named '{fileField}'.");
            await walk.ReadFieldAsync(section, name, afterFile: false, cancellationToken);
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

    /// <summary>The multipart reader and what has been read of the fields so far, before and after the file part.</summary>
    private sealed class Walk(MultipartReader reader, RequestBodyStream body, ParameterBag bag, string fileField,
        IReadOnlySet<string> parameters, RequestLimits limits, CancellationToken aborted)
    {
        private int _fields;
        private int _bytes;

        public string FileField => fileField;

        public Task<MultipartSection?> NextAsync(CancellationToken cancellationToken) => NextSectionAsync(reader, body, cancellationToken);

        public static (string Name, bool IsFile) Describe(MultipartSection section)
        {
            if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
                || !disposition.DispositionType.Equals("form-data", StringComparison.OrdinalIgnoreCase))
                throw new UploadException(UploadErrors.MalformedMultipart, "A multipart part has no form-data Content-Disposition.");
            return (HeaderUtilities.RemoveQuotes(disposition.Name).Value ?? "", disposition.FileName.HasValue || disposition.FileNameStar.HasValue);
        }

        /// <summary>Reads one field within the limits; keeps it when it is one of the protocol's parameters.</summary>
        public async Task ReadFieldAsync(MultipartSection section, string name, bool afterFile, CancellationToken cancellationToken)
        {
            if (++_fields > limits.MaxFields)
                throw new UploadException(UploadErrors.TooManyFields,
                    $"The multipart body has more than {limits.MaxFields} fields; this server reads at most {limits.MaxFields} (the upload's parameters and a few of your own).");
            int remaining = limits.MaxFieldBytes - _bytes;
            int cap = Math.Min(limits.MaxFieldLength, remaining);
            byte[] buffer = ArrayPool<byte>.Shared.Rent(cap + 1);
            try
            {
                var field = new RequestBodyStream(section.Body, aborted);
                int total = 0, read;
                while (total <= cap && (read = await field.ReadAsync(buffer.AsMemory(total, cap + 1 - total), cancellationToken)) > 0)
                    total += read;
                if (total > cap)
                {
                    throw cap < limits.MaxFieldLength
                        ? new UploadException(UploadErrors.TooManyFields,
                            $"The multipart fields carry more than {limits.MaxFieldBytes} bytes in all; this server reads at most that much besides the file part.")
                        : new UploadException(UploadErrors.InvalidParameter,
                            $"The field '{ParameterBag.Truncate(name)}' is longer than {limits.MaxFieldLength} bytes.");
                }

                _bytes += total;
                if (!parameters.Contains(name))
                    return; // not one of the protocol's parameters: read within the limits, not kept

                string value = Decode(buffer.AsSpan(0, total), name);
                if (!afterFile)
                {
                    bag.Add(name, value);
                }
                else if (!bag.TryGet(name, out var before))
                {
                    throw new UploadException(UploadErrors.ConflictingParameter,
                        $"The parameter '{ParameterBag.Truncate(name)}' comes after the part '{fileField}', where it cannot describe the chunk any more; send every parameter before the file part.");
                }
                else if (!string.Equals(before, value, StringComparison.Ordinal))
                {
                    throw new UploadException(UploadErrors.ConflictingParameter,
                        $"The parameter '{ParameterBag.Truncate(name)}' was sent more than once with different values (once after the part '{fileField}').");
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        private static string Decode(ReadOnlySpan<byte> bytes, string name)
        {
            try
            {
                return StrictUtf8.GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                throw new UploadException(UploadErrors.InvalidParameter, $"The field '{ParameterBag.Truncate(name)}' is not valid UTF-8.");
            }
        }
    }

    /// <summary>
    /// The verifier the engine runs after the file part and before it keeps anything: the rest of the multipart body
    /// (bounded by the field limits; a second file part is refused at its headers, unread), then the content digest.
    /// </summary>
    private sealed class RestOfBody(Walk walk, IBodyVerifier? digest) : IBodyVerifier
    {
        private bool _verified;

        public void Observe(ReadOnlySpan<byte> bytes)
        {
        }

        public async ValueTask VerifyAsync(CancellationToken cancellationToken)
        {
            if (_verified)
                return;
            _verified = true;
            while (await walk.NextAsync(cancellationToken) is { } section)
            {
                var (name, isFile) = Walk.Describe(section);
                if (name == walk.FileField)
                    throw new UploadException(UploadErrors.ConflictingParameter,
                        $"The multipart body has more than one part named '{walk.FileField}'; send one chunk per request. Nothing of it was stored.");
                if (isFile)
                    throw new UploadException(UploadErrors.MalformedMultipart,
                        $"Unexpected file part '{ParameterBag.Truncate(name)}' after the part '{walk.FileField}'; send one chunk per request.");
                await walk.ReadFieldAsync(section, name, afterFile: true, cancellationToken);
            }

            if (digest is not null)
                await digest.VerifyAsync(cancellationToken);
        }
    }

    /// <summary>The file part, noting whether it was read to its end (the engine read it, or drained a re-send).</summary>
    private sealed class FilePartStream(Stream inner) : ForwardReadStream
    {
        public bool Ended { get; private set; }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int read = await inner.ReadAsync(buffer, cancellationToken);
            if (read == 0 && !buffer.IsEmpty)
                Ended = true;
            return read;
        }
    }
}
