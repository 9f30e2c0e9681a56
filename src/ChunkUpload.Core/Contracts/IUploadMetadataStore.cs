using ChunkUpload.Core.Ranges;
using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Core.Contracts;

/// <summary>
/// Where uploads are recorded: each upload's record, the journal of byte ranges durably stored for it, the
/// completion outbox and the per-client usage the quotas read. The local implementation keeps a folder per upload;
/// a shared one (a database) lets several nodes serve the same uploads.
/// </summary>
/// <remarks>
/// Errors: <see cref="IOException"/> (or a store-specific transient exception wrapped as one) when the store cannot be
/// reached; the engine answers those with a retryable 503 and keeps everything already recorded.
/// </remarks>
public interface IUploadMetadataStore
{
    /// <summary>
    /// True when several nodes share this store (a database): the engine then reads stored ranges and state from the
    /// store at every decision instead of trusting its own memory, and claims completions here.
    /// </summary>
    bool IsShared { get; }

    /// <summary>Opens the store (creating or migrating its layout) and returns every unfinished upload with its journaled ranges.</summary>
    Task<IReadOnlyList<RecoveredUpload>> OpenAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Records a new upload unless one with the same key exists (then returns it: creation is atomic, the race of two
    /// first requests has one winner). Refuses with <c>too_many_uploads</c> when the client already has
    /// <see cref="CreationLimits.MaxActiveUploads"/> unfinished uploads, and with <c>completed_files_quota_exceeded</c>
    /// when it keeps <see cref="CreationLimits.MaxCompletedFiles"/> finished files.
    /// </summary>
    Task<CreateResult> CreateAsync(UploadRecord record, CreationLimits limits, CancellationToken cancellationToken);

    /// <summary>The upload's record, or null when there is none.</summary>
    Task<UploadRecord?> FindAsync(UploadKey key, CancellationToken cancellationToken);

    /// <summary>Replaces the record (declared length, failure, ...) atomically.</summary>
    Task SaveAsync(UploadRecord record, CancellationToken cancellationToken);

    /// <summary>Appends ranges to the upload's journal; durable when the task completes. Only then may they be acknowledged.</summary>
    Task AppendRangesAsync(UploadRecord record, IReadOnlyList<ByteRange> ranges, CancellationToken cancellationToken);

    /// <summary>The journaled ranges (for an upload another node may have written to).</summary>
    Task<IReadOnlyList<ByteRange>> ReadRangesAsync(UploadRecord record, CancellationToken cancellationToken);

    /// <summary>Forgets the journal (the data it described is gone).</summary>
    Task ResetRangesAsync(UploadRecord record, CancellationToken cancellationToken);

    /// <summary>
    /// Marks the upload complete (the record carries the hash) and, when given, records its completion event in the
    /// outbox, as one durable step: a crash after it repeats the event, never loses it.
    /// </summary>
    Task CompleteAsync(UploadRecord record, CompletionEvent? completion, CancellationToken cancellationToken);

    /// <summary>
    /// Claims the completion of an upload for <paramref name="claimant"/> for <paramref name="lease"/>: true for exactly
    /// one claimant at a time while the upload is unfinished, so that the last bytes of one file arriving at two nodes
    /// complete it once; a claim whose holder died expires with its lease.
    /// </summary>
    Task<bool> TryClaimCompletionAsync(UploadKey key, string claimant, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>Removes the record and its journal. False when there was none.</summary>
    Task<bool> DeleteAsync(UploadKey key, CancellationToken cancellationToken);

    /// <summary>
    /// Records matching the filter, newest first: by <see cref="UploadRecord.CreatedAt"/> descending, ties by
    /// <see cref="UploadKey.Hash"/> descending, so that <see cref="UploadFilter.After"/> pages without gaps or repeats
    /// (the sweeper, listings).
    /// </summary>
    IAsyncEnumerable<UploadRecord> ListAsync(UploadFilter filter, CancellationToken cancellationToken);

    /// <summary>The record of the upload with this <see cref="UploadKey.Hash"/>, or null (recovery, orphan detection).</summary>
    Task<UploadRecord?> FindByHashAsync(string keyHash, CancellationToken cancellationToken);

    /// <summary>What a client holds now, for the quotas: its unfinished uploads and their stored bytes, and its finished files and their bytes.</summary>
    Task<ClientUsage> GetUsageAsync(string client, CancellationToken cancellationToken);
}

/// <summary>The completion outbox as its consumer (the webhook) sees it.</summary>
public interface ICompletionOutbox
{
    /// <summary>Completes when an event may be waiting.</summary>
    ValueTask WaitForWorkAsync(CancellationToken cancellationToken);

    /// <summary>Events not yet acknowledged, oldest first.</summary>
    Task<IReadOnlyList<CompletionEvent>> PendingAsync(CancellationToken cancellationToken);

    Task AcknowledgeAsync(string eventId, CancellationToken cancellationToken);

    /// <summary>How many events wait for delivery (the webhook's backlog, for metrics); claims nothing.</summary>
    Task<int> CountPendingAsync(CancellationToken cancellationToken);
}

/// <summary>An unfinished upload found at start-up, with what its journal says is stored.</summary>
public sealed record RecoveredUpload(UploadRecord Record, IReadOnlyList<ByteRange> Ranges, DateTimeOffset LastActivity);

/// <summary>Outcome of <see cref="IUploadMetadataStore.CreateAsync"/>: the new record, or the one that already existed.</summary>
public sealed record CreateResult(UploadRecord Record, bool Created);

public sealed record CreationLimits(int MaxActiveUploads, int MaxCompletedFiles = int.MaxValue);

/// <summary>What a client holds: unfinished uploads and the bytes stored in them, finished files and their bytes.</summary>
public sealed record ClientUsage(int ActiveUploads, long UnfinishedBytes, int CompletedFiles = 0, long CompletedBytes = 0);

public sealed record UploadFilter
{
    public string? Owner { get; init; }

    public UploadState? State { get; init; }

    /// <summary>Only records completed before this moment.</summary>
    public DateTimeOffset? CompletedBefore { get; init; }

    /// <summary>Shared stores: only unfinished uploads whose last stored bytes (or creation) are older than this.</summary>
    public DateTimeOffset? IdleBefore { get; init; }

    /// <summary>Shared stores: only uploads without a single stored byte, created before this.</summary>
    public DateTimeOffset? EmptyCreatedBefore { get; init; }

    /// <summary>Shared stores: only unfinished uploads whose every byte of a known length is stored (a completion to finish).</summary>
    public bool FullyStored { get; init; }

    /// <summary>Only records after this place in newest-first order (the next page of a listing).</summary>
    public UploadCursor? After { get; init; }

    /// <summary>At most this many records.</summary>
    public int? Limit { get; init; }
}

/// <summary>One finished file, as the completion webhook announces it.</summary>
public sealed record CompletionEvent(
    [property: System.Text.Json.Serialization.JsonPropertyName("id")] string Id,
    [property: System.Text.Json.Serialization.JsonPropertyName("identifier")] string Identifier,
    [property: System.Text.Json.Serialization.JsonPropertyName("fileName")] string FileName,
    [property: System.Text.Json.Serialization.JsonPropertyName("size")] long Size,
    [property: System.Text.Json.Serialization.JsonPropertyName("sha256")] string Sha256,
    [property: System.Text.Json.Serialization.JsonPropertyName("owner")] string Owner,
    [property: System.Text.Json.Serialization.JsonPropertyName("completedAt")] DateTimeOffset CompletedAt,
    [property: System.Text.Json.Serialization.JsonPropertyName("protocol")] string? Protocol = null);
