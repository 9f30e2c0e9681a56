using System.Security.Cryptography;
using ChunkUpload.Core.Errors;

namespace ChunkUpload.Core.Integrity;

/// <summary>Checks the bytes of a request body before anything of it is kept.</summary>
public interface IBodyVerifier
{
    /// <summary>Sees every byte of the body, in order.</summary>
    void Observe(ReadOnlySpan<byte> bytes);

    /// <summary>After the last byte: throws <c>checksum_mismatch</c> when the body is not what the client said.</summary>
    ValueTask VerifyAsync(CancellationToken cancellationToken);
}

/// <summary>A digest algorithm a client may name (tus <c>Upload-Checksum</c>, RFC 9530 <c>Content-Digest</c>, <c>Content-MD5</c>).</summary>
public sealed record DigestAlgorithm(string Name, HashAlgorithmName Hash, int Size)
{
    public static readonly DigestAlgorithm Md5 = new("md5", HashAlgorithmName.MD5, 16);
    public static readonly DigestAlgorithm Sha1 = new("sha1", HashAlgorithmName.SHA1, 20);
    public static readonly DigestAlgorithm Sha256 = new("sha256", HashAlgorithmName.SHA256, 32);
    public static readonly DigestAlgorithm Sha512 = new("sha512", HashAlgorithmName.SHA512, 64);

    public static IReadOnlyList<DigestAlgorithm> All { get; } = [Sha1, Md5, Sha256, Sha512];
}

/// <summary>One expected digest of the body.</summary>
public sealed record ExpectedDigest(DigestAlgorithm Algorithm, byte[] Value, string Source);

/// <summary>Hashes the body as it streams and compares every expected digest at the end.</summary>
public sealed class DigestVerifier : IBodyVerifier, IDisposable
{
    private readonly List<(ExpectedDigest Expected, IncrementalHash Hash)> _checks;

    public DigestVerifier(IEnumerable<ExpectedDigest> expected)
    {
        _checks = [.. expected.Select(e => (e, IncrementalHash.CreateHash(e.Algorithm.Hash)))];
    }

    public void Observe(ReadOnlySpan<byte> bytes)
    {
        foreach (var (_, hash) in _checks)
            hash.AppendData(bytes);
    }

    public ValueTask VerifyAsync(CancellationToken cancellationToken)
    {
        foreach (var (expected, hash) in _checks)
        {
            var actual = hash.GetHashAndReset();
            if (!CryptographicOperations.FixedTimeEquals(actual, expected.Value))
                throw new UploadException(UploadErrors.ChecksumMismatch,
                    $"The body's {expected.Algorithm.Name} is {Convert.ToBase64String(actual)}, but {expected.Source} says {Convert.ToBase64String(expected.Value)}; nothing of it was kept. Send it again.");
        }

        return ValueTask.CompletedTask;
    }

    public void Dispose()
    {
        foreach (var (_, hash) in _checks)
            hash.Dispose();
    }
}
