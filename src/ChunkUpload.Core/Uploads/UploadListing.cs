using System.Globalization;

namespace ChunkUpload.Core.Uploads;

/// <summary>
/// A place in a newest-first listing: the last upload of a page (its creation time, then its key hash, break ties).
/// Its text form (<see cref="ToString"/>, read back by <see cref="TryParse"/>) is what clients pass to get the next
/// page; it names no upload id.
/// </summary>
public sealed record UploadCursor(DateTimeOffset CreatedAt, string KeyHash)
{
    /// <summary>True when the upload created at <paramref name="createdAt"/> with <paramref name="keyHash"/> comes after this place in newest-first order.</summary>
    public bool IsFollowedBy(DateTimeOffset createdAt, string keyHash) =>
        createdAt < CreatedAt || (createdAt == CreatedAt && string.CompareOrdinal(keyHash, KeyHash) < 0);

    public override string ToString() => CreatedAt.UtcTicks.ToString(CultureInfo.InvariantCulture) + "-" + KeyHash;

    /// <summary>Reads a cursor a client sent back; false for anything this server did not make.</summary>
    public static bool TryParse(string? text, out UploadCursor? cursor)
    {
        cursor = null;
        if (string.IsNullOrEmpty(text) || text.Length > 64)
            return false;
        int dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0
            || !long.TryParse(text.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out long ticks)
            || ticks > DateTimeOffset.MaxValue.UtcTicks
            || !UploadKey.IsHash(text.AsSpan(dash + 1)))
            return false;
        cursor = new UploadCursor(new DateTimeOffset(ticks, TimeSpan.Zero), text[(dash + 1)..]);
        return true;
    }
}

/// <summary>One page of a listing, and where the next one starts (null on the last page).</summary>
public sealed record UploadPage(IReadOnlyList<UploadSnapshot> Uploads, UploadCursor? Next);

/// <summary>How many uploads of one protocol are in one wire state (receiving, assembling) in the engine's registry.</summary>
public sealed record ActiveUploadCount(string Protocol, string State, int Count);
