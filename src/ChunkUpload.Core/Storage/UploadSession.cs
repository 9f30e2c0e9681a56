using System.Security.Cryptography;
using ChunkUpload.Core.Geometry;

namespace ChunkUpload.Core.Storage;

/// <summary>
/// A chunk whose bytes are complete in a file of the chunks folder, waiting for the assembler to write it into the
/// data file and journal it. <see cref="Stored"/> completes then (or fails), and only then is the chunk acknowledged.
/// </summary>
internal sealed class StoredPiece(ByteRange range, string path)
{
    public ByteRange Range { get; } = range;

    public string Path { get; } = path;

    public TaskCompletionSource Stored { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// In-memory state of one upload. Everything durable here can be rebuilt from the session folder at start-up:
/// <see cref="Received"/> is exactly what the journal says is in the data file.
/// <see cref="Sync"/> guards the mutable fields; <see cref="AssemblyGate"/> is held by whoever touches the data
/// file (the assembler, a delete).
/// </summary>
internal sealed class UploadSession
{
    public UploadSession(string key, string directory, string completedPath, SessionMetadata metadata)
    {
        Key = key;
        Directory = directory;
        CompletedPath = completedPath;
        Metadata = metadata;
        Geometry = new ChunkGeometry(metadata.TotalSize, metadata.ChunkSize, metadata.TotalChunks);
        State = metadata.State;
    }

    public string Key { get; }
    public string Directory { get; }
    public string CompletedPath { get; }
    public SessionMetadata Metadata { get; }
    public ChunkGeometry Geometry { get; }

    public string MetadataPath => Path.Combine(Directory, "session.json");
    public string ChunksDirectory => Path.Combine(Directory, "chunks");
    public string DataPath => Path.Combine(Directory, "data.part");
    public string JournalPath => Path.Combine(Directory, "assembled.journal");

    public object Sync { get; } = new();
    public SemaphoreSlim AssemblyGate { get; } = new(1, 1);

    // Guarded by Sync.
    public SessionState State { get; set; }
    public bool Deleted { get; set; }
    /// <summary>Byte ranges durable in the data file (journaled): what the chunk test reports as stored.</summary>
    public RangeSet Received { get; } = new();

    /// <summary>Chunks received in full and waiting for the assembler; not yet acknowledged.</summary>
    public List<StoredPiece> Pending { get; } = [];

    // Owned by the holder of AssemblyGate.
    public IncrementalHash Hash { get; set; } = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    public long HashedUpTo { get; set; }

    /// <summary>Consecutive transient assembly failures, for back-off.</summary>
    public int AssemblyFailures { get; set; }

    /// <summary>1 once the session no longer counts against its client's quota.</summary>
    public int Finished;

    /// <summary>1 while the session sits in the assembly queue (so it is queued once however many chunks arrive).</summary>
    public int Queued;

    public bool AllReceived => Received.Contains(0, Geometry.TotalSize);

    public string WireState => State switch
    {
        SessionState.Complete => UploadStates.Complete,
        SessionState.Failed => UploadStates.Failed,
        _ => AllReceived ? UploadStates.Assembling : UploadStates.Receiving,
    };

    public bool IsChunkStored(int number)
    {
        var range = Geometry.RangeOf(number);
        return State == SessionState.Complete || Received.Contains(range.Offset, range.Length);
    }

    /// <summary>Chunks stored in full, kept up to date by whoever changes <see cref="Received"/> (under Sync).</summary>
    public int ReceivedChunkCount { get; set; }

    /// <summary>Last time a chunk arrived (or the session was loaded), for expiry.</summary>
    public DateTimeOffset LastActivity { get; set; }

    public int CountReceivedChunks() => State == SessionState.Complete ? Geometry.TotalChunks : ReceivedChunkCount;

    /// <summary>Recomputes <see cref="ReceivedChunkCount"/> from <see cref="Received"/>; O(chunks), for load and repair.</summary>
    public void RecountReceivedChunks()
    {
        int count = 0;
        for (int n = 1; n <= Geometry.TotalChunks; n++)
        {
            if (Received.Contains(Geometry.OffsetOf(n), Geometry.LengthOf(n)))
                count++;
        }

        ReceivedChunkCount = count;
    }
}
