using System.Security.Cryptography;
using System.Text;

namespace ChunkUpload.Core.Uploads;

/// <summary>
/// Who owns an upload and what they call it. Two principals may use the same id without sharing anything. Neither
/// part is ever a path: stores name an upload by <see cref="Hash"/>, a hash of both.
/// </summary>
public readonly struct UploadKey : IEquatable<UploadKey>
{
    public UploadKey(string owner, string id)
    {
        Owner = owner;
        Id = id;
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(owner + "\0" + id), hash);
        Hash = Convert.ToHexStringLower(hash[..16]);
    }

    public string Owner { get; }

    public string Id { get; }

    /// <summary>32 lowercase hex characters; the name stores give the upload's files, rows and objects.</summary>
    public string Hash { get; }

    public bool Equals(UploadKey other) => Hash == other.Hash;

    public override bool Equals(object? obj) => obj is UploadKey other && Equals(other);

    public override int GetHashCode() => Hash.GetHashCode(StringComparison.Ordinal);

    public static bool operator ==(UploadKey left, UploadKey right) => left.Equals(right);

    public static bool operator !=(UploadKey left, UploadKey right) => !left.Equals(right);

    /// <summary>True when <paramref name="text"/> has the shape of a <see cref="Hash"/> (safe as a file name).</summary>
    public static bool IsHash(ReadOnlySpan<char> text)
    {
        if (text.Length != 32)
            return false;
        foreach (char c in text)
        {
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c))
                return false;
        }

        return true;
    }
}

/// <summary>The caller of an operation: who owns what it creates, and who its quotas charge.</summary>
/// <param name="Owner">The authenticated principal, or "" when access control is off.</param>
/// <param name="Client">Who quotas and rate limits count against (the principal, or an anonymous caller's address).</param>
/// <param name="MaxFileSize">The largest file the caller's credentials allow, when they say.</param>
public sealed record Caller(string Owner, string Client, long? MaxFileSize = null)
{
    public static Caller Anonymous { get; } = new("", "");

    /// <summary>
    /// The one upload the caller's credentials are for (an upload-scoped token), or null for any upload of
    /// <see cref="Owner"/>. The engine refuses every operation that names another id (<c>token_scope</c>, 403) and every
    /// listing, and gives this id to an upload it creates without a client-chosen one (tus and IETF creation).
    /// </summary>
    public string? OnlyUpload { get; init; }

    /// <summary>
    /// Set for credentials accepted in a grace period after they expired (at this instant): they may only go on with an
    /// upload that exists and was created before it (write to it, query it, let it complete). Creating, deleting,
    /// downloading and listing are refused (<c>unauthenticated</c>, 401), as are uploads created after it.
    /// </summary>
    public DateTimeOffset? ExpiredAt { get; init; }

    public UploadKey KeyOf(string id) => new(Owner, id);
}
