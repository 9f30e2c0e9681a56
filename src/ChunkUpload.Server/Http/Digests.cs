using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Integrity;

namespace ChunkUpload.Server.Http;

/// <summary>
/// Per-request integrity, the same for every protocol: <c>Content-Digest</c> (RFC 9530, a digest of the request
/// content), <c>Content-MD5</c> (RFC 1864) and tus <c>Upload-Checksum</c> are checked over the body before anything
/// of it is kept; <c>Repr-Digest</c> (RFC 9530, a digest of the whole representation: the finished file) is checked
/// at completion. Algorithms the server does not know in an RFC 9530 field are ignored, as the RFC allows; a
/// malformed value is refused.
/// </summary>
public static class Digests
{
    // RFC 9530 names (IANA "Hash Algorithms for HTTP Digest Fields"), and the tus names.
    private static readonly Dictionary<string, DigestAlgorithm> Http = new(StringComparer.OrdinalIgnoreCase)
    {
        ["sha-256"] = DigestAlgorithm.Sha256,
        ["sha-512"] = DigestAlgorithm.Sha512,
        ["md5"] = DigestAlgorithm.Md5,
        ["sha"] = DigestAlgorithm.Sha1,
    };

    private static readonly Dictionary<string, DigestAlgorithm> Tus = new(StringComparer.Ordinal)
    {
        ["sha1"] = DigestAlgorithm.Sha1,
        ["md5"] = DigestAlgorithm.Md5,
        ["sha256"] = DigestAlgorithm.Sha256,
        ["sha512"] = DigestAlgorithm.Sha512,
    };

    /// <summary>The tus names of the algorithms <c>Upload-Checksum</c> accepts (for <c>Tus-Checksum-Algorithm</c>).</summary>
    public static string TusAlgorithms => string.Join(',', Tus.Keys);

    /// <summary>The digests of the request body the client stated in <c>Content-Digest</c> and <c>Content-MD5</c>.</summary>
    public static List<ExpectedDigest> OfContent(HttpRequest request)
    {
        var expected = new List<ExpectedDigest>();
        foreach (var (algorithm, value) in ParseDictionary(request.Headers["Content-Digest"].ToString(), "Content-Digest"))
            expected.Add(new ExpectedDigest(algorithm, value, "Content-Digest"));
        if (request.Headers.TryGetValue("Content-MD5", out var md5) && md5.Count > 0)
            expected.Add(new ExpectedDigest(DigestAlgorithm.Md5, Decode(md5.ToString(), DigestAlgorithm.Md5, "Content-MD5"), "Content-MD5"));
        return expected;
    }

    /// <summary>The SHA-256 (hex) of the whole file the client stated in <c>Repr-Digest</c>, if it named one.</summary>
    public static string? ReprSha256(HttpRequest request)
    {
        foreach (var (algorithm, value) in ParseDictionary(request.Headers["Repr-Digest"].ToString(), "Repr-Digest"))
        {
            if (algorithm == DigestAlgorithm.Sha256)
                return Convert.ToHexStringLower(value);
        }

        return null;
    }

    /// <summary>A tus <c>Upload-Checksum</c> value (<c>sha1 base64</c>); an unknown algorithm is a 400.</summary>
    public static ExpectedDigest OfTusChecksum(string header)
    {
        int space = header.IndexOf(' ', StringComparison.Ordinal);
        if (space <= 0)
            throw new UploadException(UploadErrors.InvalidParameter, "Upload-Checksum must be '<algorithm> <base64 digest>'.");
        string name = header[..space];
        if (!Tus.TryGetValue(name, out var algorithm))
            throw new UploadException(UploadErrors.UnsupportedChecksum,
                $"The checksum algorithm '{ParameterBagTruncate(name)}' is not supported; use one of {TusAlgorithms}.");
        return new ExpectedDigest(algorithm, Decode(header[(space + 1)..].Trim(), algorithm, "Upload-Checksum"), "Upload-Checksum");
    }

    /// <summary>A verifier for the digests, or null when there are none.</summary>
    public static DigestVerifier? Verifier(IReadOnlyList<ExpectedDigest> expected) => expected.Count == 0 ? null : new DigestVerifier(expected);

    // RFC 8941 dictionary of byte sequences: "sha-256=:base64:, sha-512=:base64:" (parameters ignored).
    private static IEnumerable<(DigestAlgorithm Algorithm, byte[] Value)> ParseDictionary(string header, string field)
    {
        if (string.IsNullOrWhiteSpace(header))
            yield break;
        if (header.Length > 4096)
            throw new UploadException(UploadErrors.InvalidParameter, $"{field} is longer than 4096 characters.");
        foreach (var member in header.Split(','))
        {
            string item = member.Trim();
            int equals = item.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
                throw Malformed(field);
            string name = item[..equals].Trim();
            string value = item[(equals + 1)..].Trim();
            int parameters = value.IndexOf(';', StringComparison.Ordinal);
            if (parameters >= 0)
                value = value[..parameters];
            if (value.Length < 2 || value[0] != ':' || value[^1] != ':')
                throw Malformed(field);
            if (!Http.TryGetValue(name, out var algorithm))
                continue; // an algorithm this server does not know: ignored (RFC 9530 section 2)
            yield return (algorithm, Decode(value[1..^1], algorithm, field));
        }
    }

    private static byte[] Decode(string base64, DigestAlgorithm algorithm, string field)
    {
        byte[] value;
        try
        {
            value = Convert.FromBase64String(base64);
        }
        catch (FormatException)
        {
            throw new UploadException(UploadErrors.InvalidParameter, $"The {algorithm.Name} digest in {field} is not valid base64.");
        }

        if (value.Length != algorithm.Size)
            throw new UploadException(UploadErrors.InvalidParameter,
                $"The {algorithm.Name} digest in {field} is {value.Length} bytes; it must be {algorithm.Size}.");
        return value;
    }

    private static UploadException Malformed(string field) =>
        new(UploadErrors.InvalidParameter, $"{field} must be a list of 'algorithm=:base64:' (RFC 9530).");

    private static string ParameterBagTruncate(string value) => Protocol.ParameterBag.Truncate(value);
}

/// <summary>
/// The digest of a request's content (<c>Content-Digest</c>, <c>Content-MD5</c>), computed over every byte of the body
/// as it is read, whatever reads it (a multipart reader, a stream that skips bytes already stored): wrap the body with
/// <see cref="Observe"/> and hand <see cref="Verifier"/> to the engine, which calls it once the data it wants has
/// arrived and before anything is kept; it reads what is left of the body (a closing multipart boundary) and compares.
/// </summary>
public sealed class BodyDigest : IDisposable
{
    private const long MaxRest = 1024 * 1024;
    private readonly DigestVerifier _verifier;
    private Stream? _observed;

    private BodyDigest(DigestVerifier verifier) => _verifier = verifier;

    /// <summary>The request's content digest, or null when it states none.</summary>
    public static BodyDigest? Of(HttpRequest request) => Digests.Verifier(Digests.OfContent(request)) is { } verifier ? new BodyDigest(verifier) : null;

    /// <summary>The body, passing every byte through the digest.</summary>
    public Stream Observe(Stream body) => _observed = new ObservedStream(body, _verifier);

    /// <summary>For <c>WriteOptions.Verifier</c>: the bytes are already observed at the body; it verifies at the end.</summary>
    public IBodyVerifier Verifier => new RestOfBody(this);

    public void Dispose() => _verifier.Dispose();

    private sealed class RestOfBody(BodyDigest digest) : IBodyVerifier
    {
        public void Observe(ReadOnlySpan<byte> bytes)
        {
        }

        public async ValueTask VerifyAsync(CancellationToken cancellationToken)
        {
            if (digest._observed is { } body)
            {
                byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(16 * 1024);
                try
                {
                    long rest = 0;
                    int read;
                    while ((read = await body.ReadAsync(buffer, cancellationToken)) > 0)
                    {
                        rest += read;
                        if (rest > MaxRest)
                            throw new UploadException(UploadErrors.MalformedMultipart, "The request body goes on long after the data it carries.");
                    }
                }
                finally
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                }
            }

            await digest._verifier.VerifyAsync(cancellationToken);
        }
    }

    private sealed class ObservedStream(Stream inner, IBodyVerifier verifier) : Protocol.ForwardReadStream
    {

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int read = await inner.ReadAsync(buffer, cancellationToken);
            verifier.Observe(buffer.Span[..read]);
            return read;
        }






    }
}
