using ChunkUpload.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Hosting;

/// <summary>
/// Every size limit on what a request carries besides its body, derived in one place from the upload options, so
/// the longest values the options allow always fit through (a folder upload of a deep tree is not refused by the
/// HTTP server before the application sees it) and nothing much larger is ever read:
/// <list type="bullet">
/// <item>The request line holds resumable.js's query string (identifier, file name, relative path and type, each
/// URL-encoded) or an identifier in the path. A character takes at most 3 UTF-8 bytes and each byte at most 3
/// characters percent-encoded: 9 characters on the wire per character of value.</item>
/// <item>The headers hold tus/IETF <c>Upload-Metadata</c> (base64 of UTF-8: 4 characters per character of value;
/// Uppy sends the name twice, as <c>name</c> and <c>filename</c>, and the relative path), or a
/// <c>Content-Disposition</c> with the file name raw and percent-encoded, beside what any browser sends.</item>
/// <item>Multipart fields before and after the file part: only so many, and so many bytes in all.</item>
/// </list>
/// A request over Kestrel's limits is answered by Kestrel itself, 414 or 431 without a body, before any application
/// code runs (Kestrel has no hook for those answers: aspnet/KestrelHttpServer#2947). Those limits sit above what the
/// longest legal values need, so a value somewhat over an option's limit still reaches the application and gets its
/// 400 problem naming the limit; only requests far beyond any legal one get Kestrel's bare answer.
/// </summary>
public sealed record RequestLimits
{
    /// <summary>Wire characters per character of a URL-encoded value: 3 UTF-8 bytes, each as %XX.</summary>
    public const int EncodedPerChar = 9;

    /// <summary>UTF-8 bytes per UTF-16 character, at most (a surrogate pair is 4 bytes for 2 characters).</summary>
    public const int Utf8PerChar = 3;

    /// <summary>The longest content type kept (longer ones are dropped as untrusted, see the engine's policy).</summary>
    public const int MaxContentTypeLength = 255;

    /// <summary>What else a browser puts in the headers (cookies, user agent, credentials): Kestrel's default total.</summary>
    public const int OrdinaryHeaders = 32 * 1024;

    /// <summary>Parameter names, numbers, separators, method and path around the values; and room for a client's own entries.</summary>
    private const int RequestLineOverhead = 2 * 1024;
    private const int CustomEntries = 8 * 1024;

    /// <summary>Most request headers a request may have; browsers and upload clients send fewer than 30.</summary>
    public int MaxRequestHeaderCount { get; init; } = 100;

    /// <summary>Longest request line (method, target with its query string, version).</summary>
    public required int MaxRequestLineSize { get; init; }

    /// <summary>Longest single header value the protocols carry (Upload-Metadata, Content-Disposition).</summary>
    public required int MaxHeaderValueSize { get; init; }

    /// <summary>All headers together. Includes the request line, which HTTP/2 and HTTP/3 send as the :path header.</summary>
    public required int MaxRequestHeadersTotalSize { get; init; }

    /// <summary>Longest tus/IETF <c>Upload-Metadata</c>, in characters.</summary>
    public required int MaxMetadataLength { get; init; }

    /// <summary>Most multipart fields in one request (the protocol's parameters and a client's own additions).</summary>
    public int MaxFields { get; init; } = 32;

    /// <summary>Longest single multipart field value, in bytes.</summary>
    public required int MaxFieldLength { get; init; }

    /// <summary>All multipart field values of one request together, in bytes.</summary>
    public required int MaxFieldBytes { get; init; }

    public static RequestLimits For(UploadOptions options)
    {
        long values = (long)options.MaxIdentifierLength + options.MaxFileNameLength + options.MaxRelativePathLength + MaxContentTypeLength;
        long requestLine = (EncodedPerChar * values) + RequestLineOverhead + CustomEntries;

        // Upload-Metadata: base64 (4 characters per 3 bytes) of UTF-8; the name twice, two types, the relative path.
        long metadata = (4L * ((2L * options.MaxFileNameLength) + options.MaxRelativePathLength + (2 * MaxContentTypeLength))) + CustomEntries;
        // Content-Disposition: attachment; filename="raw UTF-8"; filename*=UTF-8''percent-encoded.
        long disposition = ((long)(Utf8PerChar + EncodedPerChar) * options.MaxFileNameLength) + 128;
        long headerValue = Math.Max(metadata, Math.Max(disposition, (long)Utf8PerChar * options.MaxIdentifierLength));

        long fieldLength = Math.Max(4096L, (long)Utf8PerChar * Math.Max(options.MaxIdentifierLength, Math.Max(options.MaxFileNameLength, options.MaxRelativePathLength)));
        long fieldBytes = (Utf8PerChar * values) + CustomEntries;
        return new RequestLimits
        {
            MaxRequestLineSize = Clamp(requestLine),
            MaxHeaderValueSize = Clamp(headerValue),
            MaxRequestHeadersTotalSize = Clamp(requestLine + headerValue + OrdinaryHeaders),
            MaxMetadataLength = Clamp(metadata),
            MaxFieldLength = Clamp(fieldLength),
            MaxFieldBytes = Clamp(fieldBytes),
        };
    }

    private static int Clamp(long value) => (int)Math.Min(value, int.MaxValue / 2);

    /// <summary>Applies the request-line and header limits to Kestrel (HTTP/1.1, and HTTP/2 and HTTP/3 where they run).</summary>
    public void ApplyTo(KestrelServerLimits limits)
    {
        limits.MaxRequestLineSize = MaxRequestLineSize;
        limits.MaxRequestHeadersTotalSize = MaxRequestHeadersTotalSize;
        limits.MaxRequestHeaderCount = MaxRequestHeaderCount;
        // HTTP/2 and HTTP/3 limit each header field too, and the path is one (:path).
        int field = Math.Max(MaxRequestLineSize, MaxHeaderValueSize) + 256;
        limits.Http2.MaxRequestHeaderFieldSize = Math.Max(limits.Http2.MaxRequestHeaderFieldSize, field);
        limits.Http3.MaxRequestHeaderFieldSize = Math.Max(limits.Http3.MaxRequestHeaderFieldSize, field);
    }
}

public static class RequestLimitsExtensions
{
    /// <summary>
    /// Sizes Kestrel's request-line and header limits from the upload options (see <see cref="RequestLimits"/>), and
    /// its receive buffers for large bodies (<see cref="ReceiveBufferPool"/>).
    /// </summary>
    public static WebApplicationBuilder AddChunkUploadRequestLimits(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<KestrelServerOptions>()
            .Configure<IOptions<UploadOptions>>((kestrel, options) => RequestLimits.For(options.Value).ApplyTo(kestrel.Limits));
        ReceiveBufferPool.Use(builder.Services);
        return builder;
    }
}
