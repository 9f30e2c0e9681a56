using ChunkUpload.Core.Geometry;

namespace ChunkUpload.Core.Storage;

/// <summary>
/// A set of byte positions kept as sorted, merged, half-open ranges. Used for "which bytes are stored" and "which
/// bytes are in the assembled file", whatever protocol cut them. Not thread-safe: the owner locks.
/// </summary>
internal sealed class RangeSet
{
    private readonly List<ByteRange> _ranges = [];

    public int Count => _ranges.Count;

    public IReadOnlyList<ByteRange> Ranges => _ranges;

    public void Clear() => _ranges.Clear();

    /// <summary>Adds [offset, offset+length), merging with touching or overlapping ranges.</summary>
    public void Add(long offset, long length)
    {
        if (length <= 0)
            return;
        long start = offset, end = offset + length;
        int i = FirstEndingAtOrAfter(start);
        int j = i;
        while (j < _ranges.Count && _ranges[j].Offset <= end)
        {
            start = Math.Min(start, _ranges[j].Offset);
            end = Math.Max(end, _ranges[j].End);
            j++;
        }

        _ranges.RemoveRange(i, j - i);
        _ranges.Insert(i, new ByteRange(start, end - start));
    }

    /// <summary>True when every byte of [offset, offset+length) is in the set; an empty range is always contained.</summary>
    public bool Contains(long offset, long length)
    {
        if (length <= 0)
            return true;
        int i = FirstEndingAtOrAfter(offset + 1);
        return i < _ranges.Count && _ranges[i].Offset <= offset && _ranges[i].End >= offset + length;
    }

    /// <summary>End of the range that starts at 0 (0 when byte 0 is missing).</summary>
    public long ContiguousEnd => _ranges.Count > 0 && _ranges[0].Offset == 0 ? _ranges[0].End : 0;

    public long TotalLength
    {
        get
        {
            long sum = 0;
            foreach (var r in _ranges)
                sum += r.Length;
            return sum;
        }
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
