using ChunkUpload.Core.Ranges;

namespace ChunkUpload.Core.Uploads;

/// <summary>What the server knows about one upload at one moment: its record and the bytes durably stored.</summary>
/// <param name="Record">A copy of the upload's record.</param>
/// <param name="StoredRanges">Byte ranges durably stored (journaled), in order; the whole file once complete.</param>
/// <param name="LastActivity">When bytes last arrived (or the upload was created), for expiry.</param>
/// <param name="ExpiresAt">When the upload is removed: if nothing more arrives while receiving; once complete, at the end of the completed retention (null when there is none).</param>
public sealed record UploadSnapshot(UploadRecord Record, IReadOnlyList<ByteRange> StoredRanges, DateTimeOffset LastActivity, DateTimeOffset? ExpiresAt)
{
    public string Id => Record.Id;

    public long? Length => Record.Length;

    /// <summary>End of the stored prefix: the offset a sequential protocol (tus, append) reports.</summary>
    public long Offset => StoredRanges.Count > 0 && StoredRanges[0].Offset == 0 ? StoredRanges[0].End : 0;

    public long StoredBytes => StoredRanges.Sum(r => r.Length);

    public bool IsComplete => Record.State == UploadState.Complete;

    /// <summary>Every byte of a declared length is stored.</summary>
    public bool AllStored => Record.Length is { } length && (length == 0 || Offset >= length);

    public string WireState => Record.State switch
    {
        UploadState.Complete => UploadStates.Complete,
        UploadState.Failed => UploadStates.Failed,
        _ => AllStored ? UploadStates.Assembling : UploadStates.Receiving,
    };

    /// <summary>True when every byte of the range is stored.</summary>
    public bool Contains(long offset, long length)
    {
        if (IsComplete || length <= 0)
            return true;
        // Binary search over the sorted, disjoint ranges.
        int lo = 0, hi = StoredRanges.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var r = StoredRanges[mid];
            if (r.End <= offset)
                lo = mid + 1;
            else if (r.Offset > offset)
                hi = mid - 1;
            else
                return r.End >= offset + length;
        }

        return false;
    }

    /// <summary>How many gaps a declared length has (see <see cref="MissingRanges"/>).</summary>
    public int MissingRangeCount
    {
        get
        {
            if (IsComplete || Record.Length is not { } length || length == 0)
                return 0;
            int ranges = StoredRanges.Count;
            if (ranges == 0)
                return 1;
            return (StoredRanges[0].Offset > 0 ? 1 : 0) + (ranges - 1) + (StoredRanges[^1].End < length ? 1 : 0);
        }
    }

    /// <summary>The gaps of a declared length (up to <paramref name="max"/> of them), in order.</summary>
    public IReadOnlyList<ByteRange> MissingRanges(int max = int.MaxValue)
    {
        var gaps = new List<ByteRange>();
        if (IsComplete || Record.Length is not { } length)
            return gaps;
        long position = 0;
        foreach (var r in StoredRanges)
        {
            if (gaps.Count >= max)
                return gaps;
            if (r.Offset > position)
                gaps.Add(ByteRange.FromBounds(position, r.Offset));
            position = r.End;
        }

        if (position < length && gaps.Count < max)
            gaps.Add(ByteRange.FromBounds(position, length));
        return gaps;
    }
}

/// <summary>What a protocol asks for when it starts an upload. Every field is client input, checked by the engine.</summary>
public sealed record UploadSpec
{
    /// <summary>The id; null lets the engine make one (tus, the IETF draft).</summary>
    public string? Id { get; init; }

    public required string Protocol { get; init; }

    public long? Length { get; init; }

    public string FileName { get; init; } = "";

    public string? RelativePath { get; init; }

    public string? ContentType { get; init; }

    public IReadOnlyDictionary<string, string>? Properties { get; init; }

    public bool Partial { get; init; }

    /// <summary>SHA-256 (hex) the whole file must have (a Repr-Digest sent with the first request).</summary>
    public string? ExpectedSha256 { get; init; }

    /// <summary>For a concatenation: its parts, set by <c>UploadEngine.ConcatenateAsync</c>.</summary>
    internal IReadOnlyList<string>? Parts { get; init; }
}
