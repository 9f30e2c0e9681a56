using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Core.Local;

/// <summary>
/// Each owner's uploads in listing order (newest first), in memory, so that listing one owner's uploads reads only
/// the records of the page asked for instead of every record on the disk. Built when the store opens, kept up to date
/// by creation and deletion.
/// </summary>
internal sealed class OwnerIndex
{
    private static readonly Comparer<Entry> NewestFirst = Comparer<Entry>.Create(static (a, b) =>
    {
        int byTime = b.CreatedAt.CompareTo(a.CreatedAt);
        return byTime != 0 ? byTime : string.CompareOrdinal(b.Hash, a.Hash);
    });

    private readonly Lock _lock = new();
    private readonly Dictionary<string, SortedSet<Entry>> _byOwner = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Owner, Entry Entry)> _byHash = new(StringComparer.Ordinal);

    public readonly record struct Entry(DateTimeOffset CreatedAt, string Hash);

    public void Add(UploadRecord record)
    {
        var entry = new Entry(record.CreatedAt, record.Key.Hash);
        lock (_lock)
        {
            Remove(entry.Hash);
            if (!_byOwner.TryGetValue(record.Owner, out var set))
                _byOwner[record.Owner] = set = new SortedSet<Entry>(NewestFirst);
            set.Add(entry);
            _byHash[entry.Hash] = (record.Owner, entry);
        }
    }

    public void Remove(UploadKey key)
    {
        lock (_lock)
            Remove(key.Hash);
    }

    /// <summary>Up to <paramref name="count"/> of the owner's uploads that come after <paramref name="after"/> (from the newest when null).</summary>
    public List<Entry> Next(string owner, Entry? after, int count)
    {
        var found = new List<Entry>(Math.Min(count, 256));
        lock (_lock)
        {
            if (!_byOwner.TryGetValue(owner, out var set) || set.Count == 0)
                return found;
            IEnumerable<Entry> view = set;
            if (after is { } start)
            {
                if (NewestFirst.Compare(start, set.Max) >= 0)
                    return found;
                view = set.GetViewBetween(start, set.Max);
            }

            foreach (var entry in view)
            {
                if (after is { } skip && NewestFirst.Compare(entry, skip) == 0)
                    continue;
                found.Add(entry);
                if (found.Count == count)
                    break;
            }
        }

        return found;
    }

    private void Remove(string hash)
    {
        if (!_byHash.Remove(hash, out var known))
            return;
        if (_byOwner.TryGetValue(known.Owner, out var set) && set.Remove(known.Entry) && set.Count == 0)
            _byOwner.Remove(known.Owner);
    }
}
