using System.Security.Cryptography;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Integrity;
using ChunkUpload.Core.Ranges;
using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Core.Engine;

/// <summary>
/// A staged piece handed to the assembler: its bytes are complete in the staging area, and <see cref="Stored"/>
/// completes once they are durable in the upload's data and journaled (or fails). Only then is it acknowledged.
/// </summary>
internal sealed class PendingPiece(IStagedPiece piece)
{
    public IStagedPiece Piece { get; } = piece;

    /// <summary>Backlog segments still holding the staged piece (it is disposed when the last lets go).</summary>
    public int HashHolds;

    public ByteRange Range { get; } = new(piece.Offset, piece.Length);

    public TaskCompletionSource Stored { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>Committed bytes of a staged piece waiting for the upload's hash to reach them.</summary>
internal sealed record HashSegment(PendingPiece Piece, ByteRange Range);

/// <summary>
/// The in-memory state of one upload in progress (completed uploads are not kept in memory: the metadata store finds
/// them). Everything durable here can be rebuilt from the stores: <see cref="Stored"/> is exactly what the journal
/// lists. <see cref="Sync"/> guards the mutable fields; <see cref="Gate"/> is held by whoever works on the upload's
/// data (the assembler, a delete).
/// </summary>
internal sealed class ActiveUpload
{
    public ActiveUpload(UploadRecord record, IEnumerable<ByteRange> stored, DateTimeOffset lastActivity)
    {
        Key = record.Key;
        Record = record;
        Stored = new RangeSet(stored);
        LastActivity = lastActivity;
    }

    public UploadKey Key { get; }

    public object Sync { get; } = new();

    public SemaphoreSlim Gate { get; } = new(1, 1);

    // Guarded by Sync. The record is replaced (copy on write) when it changes, so a reader may keep the reference.
    public UploadRecord Record { get; set; }

    public RangeSet Stored { get; }

    public List<PendingPiece> Pending { get; } = [];

    public bool Deleted { get; set; }

    /// <summary>
    /// Set with <see cref="Deleted"/> when another node deleted this upload and started a new one under the same id:
    /// this entry's ranges are the old upload's and must not answer for the new one.
    /// </summary>
    public bool Replaced { get; set; }

    public DateTimeOffset LastActivity { get; set; }

    /// <summary>Completes when the upload is complete, failed or deleted (for requests that answer at the end).</summary>
    public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Owned by the holder of Gate, or of HashGate for a hash shared through a checkpoint: ChainHash replaces Hash where
    // the hash is shared between nodes (its state can be exported); HashPublished is how far this node knows the shared
    // checkpoint to be.
    public IncrementalHash Hash { get; set; } = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public ResumableSha256? ChainHash { get; set; }

    public long HashedUpTo { get; set; }

    public long HashPublished { get; set; }

    /// <summary>
    /// Held while the hash shared through a checkpoint advances: by the assembler after a batch, and by the hash pump
    /// when another node announces progress (which does not wait for this upload's next batch).
    /// </summary>
    public SemaphoreSlim HashGate { get; } = new(1, 1);

    /// <summary>1 while a hash pump for this upload is scheduled.</summary>
    public int HashPumpQueued;

    /// <summary>Completed (and replaced) when another node announces that it advanced this upload's hash checkpoint.</summary>
    public TaskCompletionSource HashAnnounced = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>When the assembler first found every byte stored (a <see cref="System.Diagnostics.Stopwatch"/> timestamp; 0 before).</summary>
    public long AllStoredAt { get; set; }

    // Object stores (no read-back before publication): committed segments past HashedUpTo, by offset, whose staged
    // pieces are kept until the hash reaches them; guarded by Sync. HashAbandoned: the hash is read back at the end.
    public SortedDictionary<long, HashSegment> HashBacklog { get; } = [];

    public long HashBacklogBytes { get; set; }

    public bool HashAbandoned { get; set; }

    /// <summary>Consecutive transient assembly failures, for back-off.</summary>
    public int AssemblyFailures { get; set; }

    /// <summary>1 while the upload sits in the assembly queue (so it is queued once however many pieces arrive).</summary>
    public int Queued;

    /// <summary>Requests writing to the upload right now (an upload being written to does not expire).</summary>
    public int Writers;

    /// <summary>Every byte of a declared length is stored (under Sync).</summary>
    public bool AllStored => Record.Length is { } length && Stored.Contains(0, length);

    public UploadSnapshot Snapshot(Func<UploadRecord, DateTimeOffset, long, DateTimeOffset?> expiry)
    {
        lock (Sync)
            return new UploadSnapshot(Record, Stored.Snapshot(), LastActivity, expiry(Record, LastActivity, Stored.TotalLength));
    }
}
