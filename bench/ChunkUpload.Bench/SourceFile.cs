using System.Security.Cryptography;

namespace ChunkUpload.Bench;

/// <summary>
/// The random bytes every target receives. One file is written; uploads of a smaller size send its prefix,
/// so the SHA-256 of each prefix that will be uploaded is recorded while writing.
/// </summary>
internal sealed class SourceFile
{
    private readonly Dictionary<long, string> _prefixSha256 = [];

    private SourceFile(string path, long length)
    {
        Path = path;
        Length = length;
    }

    public string Path { get; }

    public long Length { get; }

    /// <summary>Lower-case hex SHA-256 of the first <paramref name="length"/> bytes (one of the sizes given at creation).</summary>
    public string Sha256OfPrefix(long length) => _prefixSha256[length];

    public static SourceFile Create(string path, long length, IEnumerable<long> prefixLengths)
    {
        var source = new SourceFile(path, length);
        var stops = new SortedSet<long>(prefixLengths.Where(p => p > 0 && p <= length)) { length };
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1024 * 1024];
        using var output = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 0);
        long written = 0;
        foreach (var stop in stops)
        {
            while (written < stop)
            {
                var n = (int)Math.Min(buffer.Length, stop - written);
                RandomNumberGenerator.Fill(buffer.AsSpan(0, n));
                output.Write(buffer, 0, n);
                hash.AppendData(buffer, 0, n);
                written += n;
            }

            source._prefixSha256[stop] = Convert.ToHexStringLower(hash.GetCurrentHash());
        }

        return source;
    }

    /// <summary>Lower-case hex SHA-256 of a file (used to check what a peer stored, outside the timed part).</summary>
    public static string HashFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1024 * 1024);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>True when a server-reported hash (hex in any case, or base64) equals <paramref name="expectedHex"/>.</summary>
    public static bool SameSha256(string reported, string expectedHex)
    {
        if (string.Equals(reported, expectedHex, StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var bytes = new byte[32];
        return Convert.TryFromBase64String(reported, bytes, out var n) && n == 32 && Convert.ToHexStringLower(bytes) == expectedHex;
    }
}
