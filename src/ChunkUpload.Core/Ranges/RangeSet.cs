namespace ChunkUpload.Core.Ranges;

/// <summary>
/// A set of byte positions kept as sorted, merged, half-open ranges: which bytes of an upload are stored, whatever
/// protocol cut them. Not thread-safe: the owner locks. <see cref="Snapshot"/> hands out an immutable copy that is
/// rebuilt only after a change, so reading the ranges on every request costs nothing while they do not move.
/// </summary>
public sealed class RangeSet
{
    private readonly List<ByteRange> _ranges = [];
    private ByteRange[]? _snapshot;

    public RangeSet()
    {
    }

    public RangeSet(IEnumerable<ByteRange> ranges)
    {
        foreach (var range in ranges)
            Add(range.Offset, range.Length);
    }

    public int Count => _ranges.Count;

    /// <summary>Bytes in the set.</summary>
    public long TotalLength { get; private set; }

    /// <summary>End of the range that starts at 0 (0 when byte 0 is missing): the offset of a sequential upload.</summary>
    public long ContiguousEnd => _ranges.Count > 0 && _ranges[0].Offset == 0 ? _ranges[0].End : 0;

    /// <summary>The ranges in order, as an immutable array shared until the set changes.</summary>
    public IReadOnlyList<ByteRange> Snapshot() => _snapshot ??= [.. _ranges];

    public void Clear()
    {
        _ranges.Clear();
        TotalLength = 0;
        _snapshot = null;
    }

    /// <summary>Adds [offset, offset+length), merging with touching or overlapping ranges.</summary>
    public void Add(long offset, long length)
    {
        if (length <= 0)
            return;
        long start = offset, end = offset + length;
        int i = FirstEndingAtOrAfter(start);
        int j = i;
        long merged = 0;
        while (j < _ranges.Count && _ranges[j].Offset <= end)
        {
            start = Math.Min(start, _ranges[j].Offset);
            end = Math.Max(end, _ranges[j].End);
            merged += _ranges[j].Length;
            j++;
        }

        _ranges.RemoveRange(i, j - i);
        _ranges.Insert(i, new ByteRange(start, end - start));
        TotalLength += (end - start) - merged;
        _snapshot = null;
    }

    public void Add(ByteRange range) => Add(range.Offset, range.Length);

    /// <summary>True when every byte of [offset, offset+length) is in the set; an empty range is always contained.</summary>
    public bool Contains(long offset, long length)
    {
        if (length <= 0)
            return true;
        int i = FirstEndingAtOrAfter(offset + 1);
        return i < _ranges.Count && _ranges[i].Offset <= offset && _ranges[i].End >= offset + length;
    }

    public bool Contains(ByteRange range) => Contains(range.Offset, range.Length);

    /// <summary>The parts of [offset, offset+length) that are not in the set, in order.</summary>
    public List<ByteRange> Missing(long offset, long length)
    {
        var gaps = new List<ByteRange>();
        long position = offset, end = offset + length;
        for (int i = FirstEndingAtOrAfter(offset + 1); i < _ranges.Count && position < end; i++)
        {
            var r = _ranges[i];
            if (r.Offset >= end)
                break;
            if (r.Offset > position)
                gaps.Add(ByteRange.FromBounds(position, r.Offset));
            position = Math.Max(position, r.End);
        }

        if (position < end)
            gaps.Add(ByteRange.FromBounds(position, end));
        return gaps;
    }

    // Index of the first range whose end is >= position (binary search; ranges are sorted and disjoint).
    private int FirstEndingAtOrAfter(long position)
    {
        int lo = 0, hi = _ranges.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_ranges[mid].End < position)
                lo = mid + 1;
            else
                hi = mid;
        }

        return lo;
    }
}
