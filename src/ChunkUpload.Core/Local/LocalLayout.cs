namespace ChunkUpload.Core.Local;

/// <summary>
/// Where the local stores keep things under the storage root. No client value is ever part of a path: an upload is
/// named by its key hash (32 hex characters).
/// <code>
/// tmp/{random}                    staged request bodies, not yet committed (removed at start-up)
/// sessions/{hash}/session.json    the upload's record (atomic rewrite)           metadata store
/// sessions/{hash}/ranges.journal  16-byte records (offset, length) of ranges durable in the data
/// parts/{hash}                    the file being assembled, pieces written at their offsets   data store
/// completed/{hash}                finished files
/// outbox/{event}.json             completion events not yet delivered
/// </code>
/// </summary>
public sealed class LocalLayout(string root)
{
    public string Root { get; } = root;

    public string Temp => Path.Combine(Root, "tmp");

    /// <summary>Staging files kept for reuse between pieces (no upload's bytes count from them).</summary>
    public string SpareStaging => Path.Combine(Temp, "spare");

    public string Sessions => Path.Combine(Root, "sessions");

    public string Parts => Path.Combine(Root, "parts");

    public string Completed => Path.Combine(Root, "completed");

    public string Outbox => Path.Combine(Root, "outbox");

    public string SessionDirectory(string hash) => Path.Combine(Sessions, hash);

    public string RecordPath(string hash) => Path.Combine(Sessions, hash, "session.json");

    public string JournalPath(string hash) => Path.Combine(Sessions, hash, "ranges.journal");

    public string PartPath(string hash) => Path.Combine(Parts, hash);

    public string CompletedPath(string hash) => Path.Combine(Completed, hash);

    internal static void TryDelete(string? path)
    {
        if (path is null)
            return;
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    internal static void DeleteDirectory(string path)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                if (Directory.Exists(path))
                    Directory.Delete(path, recursive: true);
                return;
            }
            catch (IOException) when (attempt < 5)
            {
                // A file appeared while the folder was being emptied; go again.
            }
        }
    }
}
