using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Core.Contracts;

/// <summary>
/// An optional capability of a shared <see cref="IUploadMetadataStore"/>: how far the nodes have hashed an upload's
/// bytes in order, with the SHA-256 state at that offset (<see cref="Integrity.ResumableSha256"/>), so that the node
/// holding the next bytes (still staged where they arrived) goes on from there. Object stores cannot read parts back
/// before the object exists; without this, an upload whose pieces went to several nodes is read back whole at
/// completion to be hashed. The checkpoint is an optimisation only: a missing or stalled one means a read-back.
/// </summary>
/// <remarks>
/// A checkpoint belongs to one upload's life: keyed by its key and <see cref="UploadRecord.CreatedAt"/>, so an upload
/// deleted and started again under the same id starts without one. Errors as <see cref="IUploadMetadataStore"/>'s.
/// </remarks>
public interface IHashCheckpointStore
{
    /// <summary>The upload's checkpoint, or null when nothing is hashed yet (or the upload is gone or replaced).</summary>
    Task<HashCheckpoint?> ReadHashCheckpointAsync(UploadRecord record, CancellationToken cancellationToken);

    /// <summary>
    /// Moves the checkpoint to <paramref name="hashedTo"/> with its state when it is behind that offset (a compare and
    /// set: the bytes of an upload never change once stored, so the state at an offset is the same whoever computed
    /// it, and only progress matters), and tells every node listening (see <see cref="ListenForHashCheckpointsAsync"/>).
    /// False when the checkpoint was already there or further, or the upload is not receiving any more.
    /// </summary>
    Task<bool> TryAdvanceHashCheckpointAsync(UploadRecord record, long hashedTo, byte[] state, CancellationToken cancellationToken);

    /// <summary>
    /// Starts calling <paramref name="announced"/> with the <see cref="UploadKey.Hash"/> of each upload whose checkpoint
    /// another node (another store instance) advanced, or that it completed (then with true: nodes let go of what they
    /// staged for it, and requests waiting there for the end are answered); returns once listening. One listener per
    /// store (the engine's). These are hints: one may be lost while the store reconnects; nothing may depend on them.
    /// </summary>
    Task ListenForHashCheckpointsAsync(Action<string, bool> announced, CancellationToken cancellationToken);
}

/// <summary>The bytes [0, <paramref name="HashedTo"/>) of an upload were hashed in order; <paramref name="State"/> goes on from there.</summary>
public sealed record HashCheckpoint(long HashedTo, byte[] State);
