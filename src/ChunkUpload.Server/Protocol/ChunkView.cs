using System.Globalization;
using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Server.Protocol;

/// <summary>
/// Chunk numbers as a view over byte ranges, for the protocols that count chunks (resumable.js, flow.js): the engine
/// stores ranges; which chunks they make up is computed here from the geometry the protocol kept in the upload's
/// properties. Walks the gaps, not the chunks, so a million-chunk upload costs what its gaps cost.
/// </summary>
public sealed record ChunkView(ChunkGeometry Geometry)
{
    public const string ChunkSizeProperty = "chunkSize";
    public const string TotalChunksProperty = "totalChunks";

    /// <summary>The view of an upload a chunk protocol made; null for other uploads.</summary>
    public static ChunkView? Of(UploadRecord record) =>
        record.Length is { } length
        && DecimalNumber.TryParse(record.Property(ChunkSizeProperty), out long chunkSize) && chunkSize > 0
        && DecimalNumber.TryParse(record.Property(TotalChunksProperty), out long totalChunks) && totalChunks is > 0 and <= int.MaxValue
            ? new ChunkView(new ChunkGeometry(length, chunkSize, (int)totalChunks))
            : null;

    public static Dictionary<string, string> Properties(ChunkGeometry geometry) => new(StringComparer.Ordinal)
    {
        [ChunkSizeProperty] = geometry.ChunkSize.ToString(CultureInfo.InvariantCulture),
        [TotalChunksProperty] = geometry.TotalChunks.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>Chunks stored in full, and the first <paramref name="max"/> missing chunk numbers with their count.</summary>
    public (int Received, IReadOnlyList<int> Missing, int MissingCount) Count(UploadSnapshot snapshot, int max)
    {
        if (snapshot.IsComplete)
            return (Geometry.TotalChunks, [], 0);
        var missing = new List<int>();
        int count = 0, last = 0;
        foreach (var gap in snapshot.MissingRanges())
        {
            int first = Math.Max(ChunkOf(gap.Offset), last + 1);
            int through = ChunkOf(gap.End - 1);
            for (int n = first; n <= through; n++)
            {
                if (missing.Count < max)
                    missing.Add(n);
            }

            if (through >= first)
            {
                count += through - first + 1;
                last = through;
            }
        }

        return (Geometry.TotalChunks - count, missing, count);
    }

    private int ChunkOf(long position) => (int)Math.Min((position / Geometry.ChunkSize) + 1, Geometry.TotalChunks);
}
