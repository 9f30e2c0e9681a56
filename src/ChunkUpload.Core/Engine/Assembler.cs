using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Hooks;
using ChunkUpload.Core.Integrity;
using ChunkUpload.Core.Ranges;
using ChunkUpload.Core.Uploads;
using Microsoft.Extensions.Logging;

namespace ChunkUpload.Core.Engine;

/// <summary>
/// The background half of the engine. It writes staged pieces into each upload's data at their offsets in batches (a
/// group commit: every piece waiting for an upload is committed, the data flushed once, the new ranges journaled,
/// and only then are the pieces acknowledged to their requests), copies finished partial uploads into a
/// concatenation, advances the whole-file SHA-256 with the stored prefix, and completes an upload exactly once when
/// every byte is in: authorization, the record marked complete with its outbox event, the file published.
/// </summary>
internal sealed class Assembler(
    ActiveUploads uploads,
    IUploadMetadataStore metadata,
    IUploadDataStore data,
    IUploadHooks hooks,
    UploadOptions options,
    TimeProvider time,
    ILogger logger,
    string claimant)
{
    private const int HashBufferSize = 1024 * 1024;

    // Object stores: the most committed bytes of one upload kept in staging for the hash while an earlier piece is
    // missing (pieces in flight come out of order); past it the finished object is read back instead.
    private const long HashBacklogLimit = 64L * 1024 * 1024;

    // How long a completion waits for the shared hash checkpoint to move (other nodes hashing what they staged) before
    // it reads the object back instead, and how often it looks when no announcement comes.
    private static readonly TimeSpan HashChainPatience = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan HashChainPoll = TimeSpan.FromMilliseconds(250);

    // The shared hash checkpoint: with a shared metadata store that offers one, object storage, and a SHA-256 whose
    // state this machine can move.
    private readonly IHashCheckpointStore? _checkpoints =
        metadata.IsShared && !data.ReadsBeforePublish && ResumableSha256.IsAvailable ? metadata as IHashCheckpointStore : null;
    private readonly Channel<ActiveUpload> _queue = Channel.CreateUnbounded<ActiveUpload>();

    /// <summary>The shared hash checkpoint this assembler follows, or null (see <see cref="IHashCheckpointStore"/>).</summary>
    public IHashCheckpointStore? HashCheckpoints => _checkpoints;

    /// <summary>Queues the upload for the next batch (once, however many pieces arrive meanwhile).</summary>
    public void Enqueue(ActiveUpload upload)
    {
        if (Interlocked.Exchange(ref upload.Queued, 1) == 0)
            _queue.Writer.TryWrite(upload);
    }

    /// <summary>Uploads waiting for a batch.</summary>
    public int QueueLength => _queue.Reader.Count;

    /// <summary>Drains the queue until cancelled; one call per worker.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            ActiveUpload upload;
            try
            {
                upload = await _queue.Reader.ReadAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            Volatile.Write(ref upload.Queued, 0);
            await ProcessWithRetryAsync(upload, cancellationToken);
        }
    }

    private async Task ProcessWithRetryAsync(ActiveUpload upload, CancellationToken cancellationToken)
    {
        try
        {
            await ProcessAsync(upload, cancellationToken);
            upload.AssemblyFailures = 0;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (StorageFaults.IsTransient(ex) || ex is UploadException)
        {
            // Storage trouble or an application that cannot answer now: keep everything and try again later.
            int failures = ++upload.AssemblyFailures;
            var delay = TimeSpan.FromSeconds(Math.Min(60, Math.Pow(2, Math.Min(failures - 1, 6))));
            EngineLog.AssemblyDeferred(logger, ex, upload.Key.Id, delay.TotalSeconds);
            _ = RequeueLaterAsync(upload, delay, cancellationToken);
        }
        catch (Exception ex)
        {
            // A bug must not stop the loop, nor lose acknowledged bytes: log it and try again later.
            EngineLog.AssemblyCrashed(logger, ex, upload.Key.Id);
            _ = RequeueLaterAsync(upload, TimeSpan.FromSeconds(30), cancellationToken);
        }
    }

    private async Task RequeueLaterAsync(ActiveUpload upload, TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, time, cancellationToken);
            Enqueue(upload);
        }
        catch (OperationCanceledException)
        {
        }
    }

    internal async Task ProcessAsync(ActiveUpload upload, CancellationToken cancellationToken)
    {
        using var scope = logger.UploadScope(upload.Key.Id);
        await upload.Gate.WaitAsync(cancellationToken);
        try
        {
            if (metadata.IsShared)
                await RefreshAsync(upload, cancellationToken);
            List<PendingPiece> batch;
            UploadRecord record;
            lock (upload.Sync)
            {
                record = upload.Record;
                // Finished (completed and published, failed or deleted): pieces that still come have nothing to do. A
                // record completed but not yet published (a publication that failed) is finished below.
                if (upload.Deleted || record.State == UploadState.Failed || (record.State == UploadState.Complete && upload.Finished.Task.IsCompleted))
                {
                    SettleFinished(upload);
                    return;
                }

                batch = [.. upload.Pending];
            }

            if (record.State == UploadState.Complete)
            {
                await FinishPublishingAsync(upload, record, cancellationToken);
                return;
            }

            if (batch.Count > 0)
                await CommitAsync(upload, record, batch);
            if (record.Parts is not null)
                await ConcatenateAsync(upload, cancellationToken);
            if (metadata.IsShared && batch.Count > 0)
                await RefreshAsync(upload, cancellationToken); // other nodes' bytes count towards completion too
            if (data.ReadsBeforePublish)
                AdvanceHash(upload);
            else
                await AdvanceStreamHashAsync(upload, cancellationToken);

            bool all;
            lock (upload.Sync)
                all = !upload.Deleted && upload.Record.State == UploadState.Receiving && upload.AllStored;
            if (all)
            {
                if (upload.AllStoredAt == 0)
                    upload.AllStoredAt = Stopwatch.GetTimestamp();
                await CompleteAsync(upload, cancellationToken);
            }
        }
        finally
        {
            upload.Gate.Release();
        }
    }

    /// <summary>
    /// With a shared metadata store, other nodes write to the same uploads: the record and the stored ranges are read
    /// from the store rather than trusted from memory. An upload finished or removed elsewhere leaves this node.
    /// </summary>
    /// <returns>True while the upload is unfinished.</returns>
    internal async Task<bool> RefreshAsync(ActiveUpload upload, CancellationToken cancellationToken)
    {
        var record = await metadata.FindAsync(upload.Key, cancellationToken);
        // Deleted elsewhere and started again under the same id: another upload, whose ranges are not this entry's
        // (merging them would answer "stored" for chunks of the new upload that were never written to it).
        bool replaced = record is not null && record.CreatedAt != upload.Record.CreatedAt;
        var ranges = record is { State: UploadState.Receiving } && !replaced ? await metadata.ReadRangesAsync(record, cancellationToken) : [];
        lock (upload.Sync)
        {
            if (record is null || replaced)
            {
                upload.Deleted = true;
                upload.Replaced = replaced;
            }
            else
            {
                upload.Record = record;
            }
            foreach (var range in ranges)
                upload.Stored.Add(range);
            // The store's time of the last stored bytes, as every node reads it (this node's own clock at its last
            // commit would make its answers differ from the others': expiry times in status and Upload-Expires).
            if (!replaced && record?.LastActivity is { } last)
                upload.LastActivity = last;
            if (record is not { State: UploadState.Receiving } || replaced)
                SettleFinished(upload);
        }

        if (record is { State: UploadState.Receiving } && !replaced)
            return true;
        uploads.Remove(upload);
        upload.Finished.TrySetResult();
        return false;
    }

    // Pieces that arrive after the upload ended: a complete upload already has their bytes; others are refused.
    private static void SettleFinished(ActiveUpload upload)
    {
        var error = upload.Deleted
            ? new UploadException(UploadErrors.SessionMismatch, $"Upload '{upload.Key.Id}' was deleted while this data arrived.")
            : upload.Record.State == UploadState.Failed
                ? new UploadException(UploadErrors.UploadFailed, $"Upload '{upload.Key.Id}' failed on the server ({upload.Record.Failure}). Delete it and upload the file again.")
                : null;
        var pending = upload.Pending.ToList();
        upload.Pending.Clear();
        foreach (var piece in pending)
        {
            if (error is null)
                piece.Stored.TrySetResult();
            else
                piece.Stored.TrySetException(error);
            piece.Piece.Dispose();
        }

        AbandonStreamHash(upload);
    }

    private async Task CommitAsync(ActiveUpload upload, UploadRecord record, List<PendingPiece> batch)
    {
        // Only bytes not stored yet are written: a re-sent or overlapping piece never rewrites (and never changes)
        // bytes that are journaled, hashed or being written by another piece of this batch.
        var commits = new List<PieceCommit>();
        var added = new RangeSet();
        lock (upload.Sync)
        {
            foreach (var piece in batch)
            {
                foreach (var gap in upload.Stored.Missing(piece.Range.Offset, piece.Range.Length))
                {
                    foreach (var free in added.Missing(gap.Offset, gap.Length))
                    {
                        commits.Add(new PieceCommit(piece.Piece, free));
                        added.Add(free);
                    }
                }
            }
        }

        long started = Stopwatch.GetTimestamp();
        var ranges = added.Snapshot();
        try
        {
            await data.CommitAsync(record, commits, CancellationToken.None);
            long committed = Stopwatch.GetTimestamp();
            await metadata.AppendRangesAsync(record, ranges, CancellationToken.None);
            double commitMs = Stopwatch.GetElapsedTime(started, committed).TotalMilliseconds;
            double journalMs = Stopwatch.GetElapsedTime(committed).TotalMilliseconds;
            EngineLog.BatchTimings(logger, record.Id, batch.Count, commitMs, journalMs);
            hooks.Notify(logger, record.Id, (Record: record, Pieces: batch.Count, Bytes: added.TotalLength, Took: Stopwatch.GetElapsedTime(started)),
                static (h, s) => h.BatchStored(s.Record, s.Pieces, s.Bytes, s.Took));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Nothing of this batch is acknowledged: its requests get an error (transient for storage faults: a full
            // disk, a database or object store that does not answer) and the client sends again.
            var error = ex switch
            {
                UploadException refused => refused,
                IOException io when StorageFaults.IsDiskFull(io) =>
                    new UploadException(UploadErrors.InsufficientStorage, "The server's disk is full; the data was not stored. Try again later.", ex) { RetryAfterSeconds = 60 },
                _ => new UploadException(UploadErrors.StorageUnavailable, "The server could not store the data; send it again.", ex) { RetryAfterSeconds = 5 },
            };
            Settle(upload, batch, [], error);
            throw;
        }

        Settle(upload, batch, ranges, null, data.ReadsBeforePublish ? [] : commits);
    }

    private void Settle(ActiveUpload upload, List<PendingPiece> batch, IReadOnlyList<ByteRange> stored, Exception? error,
        IReadOnlyList<PieceCommit>? toHash = null)
    {
        lock (upload.Sync)
        {
            foreach (var range in stored)
                upload.Stored.Add(range);
            foreach (var piece in batch)
                upload.Pending.Remove(piece);
            upload.LastActivity = time.GetUtcNow();
            if (toHash is { Count: > 0 } && !upload.HashAbandoned && !upload.Deleted)
            {
                foreach (var commit in toHash)
                {
                    var piece = batch.First(p => ReferenceEquals(p.Piece, commit.Piece));
                    piece.HashHolds++;
                    upload.HashBacklog[commit.Range.Offset] = new HashSegment(piece, commit.Range);
                    upload.HashBacklogBytes += commit.Range.Length;
                }
            }
        }

        foreach (var piece in batch)
        {
            if (error is null)
                piece.Stored.TrySetResult();
            else
                piece.Stored.TrySetException(error);
            if (Volatile.Read(ref piece.HashHolds) == 0)
                piece.Piece.Dispose();
        }
    }

    /// <summary>
    /// Object stores cannot read parts back before the object exists, so the hash follows the committed pieces while
    /// they are still staged: each segment at the hash's frontier is hashed, then its piece let go. Bytes at the
    /// frontier this node did not commit (another node's, a copied part's, or stored before this process started), a
    /// backlog over its limit or a staged piece that cannot be read end it: the finished object is read back instead.
    /// With a shared hash checkpoint (<see cref="IHashCheckpointStore"/>) the nodes hash in turn instead: each publishes
    /// how far it got, and the node whose staged bytes come next imports that state and goes on; only a piece no node
    /// holds any more (or a backlog over its limit) still ends in a read-back.
    /// </summary>
    private async Task AdvanceStreamHashAsync(ActiveUpload upload, CancellationToken cancellationToken)
    {
        if (!Chained(upload))
        {
            HashHeldSegments(upload, chained: false);
            return;
        }

        await upload.HashGate.WaitAsync(cancellationToken);
        try
        {
            upload.ChainHash ??= ResumableSha256.Create();
            while (HashHeldSegments(upload, chained: true))
            {
                var record = upload.Record;
                if (upload.HashedUpTo > upload.HashPublished)
                {
                    await _checkpoints!.TryAdvanceHashCheckpointAsync(record, upload.HashedUpTo, upload.ChainHash.Export(), cancellationToken);
                    upload.HashPublished = upload.HashedUpTo;
                }

                lock (upload.Sync)
                {
                    if (upload.HashBacklog.Count == 0 || upload.HashAbandoned)
                        return;
                }

                // Bytes wait here past a gap: the other nodes may have hashed across it.
                if (!await ResumeFromCheckpointAsync(upload, record, cancellationToken))
                    return;
            }
        }
        finally
        {
            upload.HashGate.Release();
        }
    }

    /// <summary>
    /// Advances the shared hash as soon as another node announces progress, without waiting for this upload's next
    /// batch (which may be uploading parts to the object store): a chain of nodes handing the hash on at each
    /// announcement keeps up with the upload, where one handing it on only after a batch fell behind until the
    /// pieces waiting for it passed their limit and the object was read back (README, Figures).
    /// </summary>
    private async Task PumpHashAsync(ActiveUpload upload)
    {
        try
        {
            Volatile.Write(ref upload.HashPumpQueued, 0);
            await AdvanceStreamHashAsync(upload, CancellationToken.None);
        }
        catch (Exception ex)
        {
            // The next batch or announcement tries again; the completion reads the object back if nobody does.
            EngineLog.HashPumpFailed(logger, ex, upload.Key.Id);
        }
    }

    /// <summary>Takes the shared checkpoint's state when it is past this node's own hash and the bytes after it are staged here.</summary>
    private async Task<bool> ResumeFromCheckpointAsync(ActiveUpload upload, UploadRecord record, CancellationToken cancellationToken)
    {
        var checkpoint = await _checkpoints!.ReadHashCheckpointAsync(record, cancellationToken);
        if (checkpoint is null || checkpoint.HashedTo <= upload.HashedUpTo)
            return false;
        upload.HashPublished = Math.Max(upload.HashPublished, checkpoint.HashedTo);
        lock (upload.Sync)
        {
            // What the checkpoint covers was hashed elsewhere (bytes committed here and on another node alike).
            while (FirstSegment(upload) is { } behind && behind.Range.End <= checkpoint.HashedTo)
                DropSegment(upload, behind);
            if (FirstSegment(upload) is not { } next || next.Range.Offset > checkpoint.HashedTo)
                return false;
        }

        try
        {
            upload.ChainHash = ResumableSha256.Import(checkpoint.State);
        }
        catch (FormatException ex)
        {
            EngineLog.HashCheckpointUnreadable(logger, ex, upload.Key.Id);
            lock (upload.Sync)
                AbandonStreamHash(upload);
            return false;
        }

        upload.HashedUpTo = checkpoint.HashedTo;
        return true;
    }

    /// <summary>
    /// Hashes the staged segments at the frontier, in order, letting their pieces go. False when the hash following
    /// the staged pieces ended (here, or before).
    /// </summary>
    private bool HashHeldSegments(ActiveUpload upload, bool chained)
    {
        byte[]? buffer = null;
        try
        {
            while (true)
            {
                HashSegment? next;
                lock (upload.Sync)
                {
                    if (upload.HashAbandoned)
                        return false;
                    // Segments wholly behind the frontier were hashed elsewhere (another node's chain went past them).
                    while (FirstSegment(upload) is { } behind && behind.Range.End <= upload.HashedUpTo)
                        DropSegment(upload, behind);
                    next = FirstSegment(upload);
                    if (next is null || next.Range.Offset > upload.HashedUpTo)
                    {
                        // Without a shared checkpoint, bytes at the frontier stored but not staged here are hashed by nobody.
                        if ((!chained && upload.Stored.Contains(upload.HashedUpTo, 1)) || upload.HashBacklogBytes > HashBacklogLimit)
                        {
                            AbandonStreamHash(upload);
                            return false;
                        }

                        return true;
                    }

                    upload.HashBacklog.Remove(next.Range.Offset);
                    upload.HashBacklogBytes -= next.Range.Length;
                }

                buffer ??= ArrayPool<byte>.Shared.Rent(HashBufferSize);
                try
                {
                    // From the frontier: a checkpoint taken from another node may end inside this segment.
                    long position = upload.HashedUpTo - next.Piece.Piece.Offset, end = next.Range.End - next.Piece.Piece.Offset;
                    while (position < end)
                    {
                        int read = next.Piece.Piece.Read(position, buffer.AsSpan(0, (int)Math.Min(buffer.Length, end - position)));
                        if (read == 0)
                            throw new IOException("A staged piece is shorter than its committed range.");
                        if (upload.ChainHash is { } chain)
                            chain.Append(buffer.AsSpan(0, read));
                        else
                            upload.Hash.AppendData(buffer, 0, read);
                        position += read;
                    }
                    upload.HashedUpTo = next.Range.End;
                }
                catch (IOException ex)
                {
                    EngineLog.StreamHashAbandoned(logger, ex, upload.Key.Id);
                    lock (upload.Sync)
                        AbandonStreamHash(upload);
                    return false;
                }
                finally
                {
                    lock (upload.Sync)
                        LetGo(next.Piece);
                }
            }
        }
        finally
        {
            if (buffer is not null)
                ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // Under upload.Sync: the backlog's first segment (lowest offset), or null.
    private static HashSegment? FirstSegment(ActiveUpload upload)
    {
        foreach (var segment in upload.HashBacklog.Values)
            return segment;
        return null;
    }

    // Under upload.Sync.
    private static void DropSegment(ActiveUpload upload, HashSegment segment)
    {
        upload.HashBacklog.Remove(segment.Range.Offset);
        upload.HashBacklogBytes -= segment.Range.Length;
        LetGo(segment.Piece);
    }

    /// <summary>
    /// Another node advanced the shared hash checkpoint of an upload, or completed it: a completion waiting for the
    /// checkpoint looks again, a node with staged bytes of that upload goes on from it, and once it is complete every
    /// node that has it in memory finds that out (letting its staged pieces go, answering requests waiting for the end).
    /// </summary>
    public void HashCheckpointAnnounced(string keyHash, bool completed)
    {
        if (!uploads.TryGet(keyHash, out var upload))
            return;
        Interlocked.Exchange(ref upload.HashAnnounced, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        bool holds;
        lock (upload.Sync)
            holds = upload.HashBacklog.Count > 0 && !upload.HashAbandoned;
        if (completed)
            Enqueue(upload);
        else if (holds && Interlocked.Exchange(ref upload.HashPumpQueued, 1) == 0)
            _ = Task.Run(() => PumpHashAsync(upload));
    }

    // The hash follows the staged pieces through the shared checkpoint (a concatenation's bytes are copied parts).
    private bool Chained(ActiveUpload upload) => _checkpoints is not null && upload.Record.Parts is null;

    /// <summary>Ends the hash that follows staged pieces and lets the pieces go (under upload.Sync).</summary>
    internal static void AbandonStreamHash(ActiveUpload upload)
    {
        upload.HashAbandoned = true;
        foreach (var segment in upload.HashBacklog.Values)
            LetGo(segment.Piece);
        upload.HashBacklog.Clear();
        upload.HashBacklogBytes = 0;
    }

    private static void LetGo(PendingPiece piece)
    {
        if (--piece.HashHolds == 0)
            piece.Piece.Dispose();
    }

    // A concatenation takes its parts' finished files, in order, as they complete (tus concatenation-unfinished).
    private async Task ConcatenateAsync(ActiveUpload upload, CancellationToken cancellationToken)
    {
        var record = upload.Record;
        long offset = 0;
        bool lengthsKnown = true;
        foreach (var partId in record.Parts!)
        {
            var key = new UploadKey(record.Owner, partId);
            var part = uploads.TryGet(key, out var active) ? active.Record : await metadata.FindAsync(key, cancellationToken);
            if (part is null || part.State == UploadState.Failed)
            {
                await FailAsync(upload, $"the partial upload '{partId}' is gone or failed", deleteData: true);
                return;
            }

            if (part.Length is not { } length)
            {
                lengthsKnown = false;
                break;
            }

            bool copied;
            lock (upload.Sync)
                copied = upload.Stored.Contains(offset, length);
            if (!copied && part.State == UploadState.Complete)
            {
                await data.CopyCompletedAsync(part, record, offset, cancellationToken);
                await metadata.AppendRangesAsync(record, [new ByteRange(offset, length)], cancellationToken);
                lock (upload.Sync)
                {
                    upload.Stored.Add(offset, length);
                    upload.LastActivity = time.GetUtcNow();
                }
            }

            offset += length;
        }

        if (lengthsKnown && record.Length is null)
        {
            var updated = record.Clone();
            updated.Length = offset;
            await metadata.SaveAsync(updated, cancellationToken);
            lock (upload.Sync)
                upload.Record = updated;
        }
    }

    private void AdvanceHash(ActiveUpload upload)
    {
        long end;
        lock (upload.Sync)
            end = upload.Stored.ContiguousEnd;
        if (upload.HashedUpTo >= end)
            return;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(HashBufferSize);
        try
        {
            using var reader = data.OpenData(upload.Record);
            while (upload.HashedUpTo < end)
            {
                int want = (int)Math.Min(buffer.Length, end - upload.HashedUpTo);
                int read = reader.Read(upload.HashedUpTo, buffer.AsSpan(0, want));
                if (read == 0)
                    throw new IOException("The data is shorter than its stored ranges.");
                upload.Hash.AppendData(buffer, 0, read);
                upload.HashedUpTo += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task CompleteAsync(ActiveUpload upload, CancellationToken cancellationToken)
    {
        var record = upload.Record;
        long length = record.Length!.Value;

        // Exactly once across nodes: the last bytes of a file arriving at two nodes at the same moment complete it once.
        if (metadata.IsShared && !await metadata.TryClaimCompletionAsync(record.Key, claimant, options.CompletionLease, cancellationToken))
            return;

        string sha256;
        if (data.ReadsBeforePublish)
        {
            if (upload.HashedUpTo != length)
                throw new InvalidOperationException($"Hashed {upload.HashedUpTo} of {length} bytes at completion.");
            sha256 = Convert.ToHexStringLower(upload.Hash.GetCurrentHash());
        }
        else
        {
            // An object store's parts cannot be read before the object exists: publish (idempotent); the hash taken
            // from the staged pieces when this node committed every byte in order, else the published object's.
            await data.PublishAsync(record, cancellationToken);
            sha256 = await StreamedHashAsync(upload, record, length, cancellationToken) ?? await HashPublishedAsync(record, length, cancellationToken);
        }

        if (record.ExpectedSha256 is { } expected && !string.Equals(expected, sha256, StringComparison.OrdinalIgnoreCase))
        {
            await FailAsync(upload, $"{UploadErrors.ChecksumMismatch.Code}: the file's SHA-256 is {sha256}, but the client declared {expected}", deleteData: true);
            return;
        }

        if (!record.Partial)
        {
            try
            {
                await hooks.AuthorizeFinishAsync(record, sha256, cancellationToken);
            }
            catch (UploadException ex) when (!ex.Error.IsTransient)
            {
                await FailAsync(upload, "the application refused the finished file: " + ex.Message, deleteData: true);
                return;
            }
        }

        // A DELETE that came while the file was being checked wins: nothing is announced for a file about to go.
        lock (upload.Sync)
        {
            if (upload.Deleted)
                return;
        }

        var completed = record.Clone();
        completed.State = UploadState.Complete;
        completed.Sha256 = sha256;
        completed.CompletedAt = time.GetUtcNow();
        var completion = !record.Partial && options.RecordCompletionEvents
            ? new CompletionEvent(record.Key.Hash + "-" + sha256[..16], record.Id, record.FileName, length, sha256, record.Owner, completed.CompletedAt.Value, record.Protocol)
            : null;
        await metadata.CompleteAsync(completed, completion, cancellationToken);

        // From here the upload is complete whatever happens next: a failure while publishing (a directory flush, say)
        // is retried by the next pass, which finds the record complete and publishes again (idempotent), instead of
        // leaving the upload "assembling" until a restart.
        lock (upload.Sync)
            upload.Record = completed;
        await FinishPublishingAsync(upload, completed, cancellationToken);
    }

    /// <summary>
    /// The hash that followed the staged pieces, when it reached the end: this node's own, or the shared checkpoint's,
    /// waiting while other nodes still move it; null when the finished object must be read back.
    /// </summary>
    private async Task<string?> StreamedHashAsync(ActiveUpload upload, UploadRecord record, long length, CancellationToken cancellationToken)
    {
        if (!Chained(upload))
        {
            lock (upload.Sync)
                return !upload.HashAbandoned && upload.HashedUpTo == length ? Convert.ToHexStringLower(upload.Hash.GetCurrentHash()) : null;
        }

        long seen = -1, since = time.GetTimestamp();
        while (true)
        {
            var announced = Volatile.Read(ref upload.HashAnnounced).Task;
            await AdvanceStreamHashAsync(upload, cancellationToken);
            await upload.HashGate.WaitAsync(cancellationToken);
            try
            {
                lock (upload.Sync)
                {
                    if (!upload.HashAbandoned && upload.HashedUpTo == length)
                        return Convert.ToHexStringLower(upload.ChainHash!.GetCurrentHash());
                }
            }
            finally
            {
                upload.HashGate.Release();
            }

            var checkpoint = await _checkpoints!.ReadHashCheckpointAsync(record, cancellationToken);
            if (checkpoint?.HashedTo == length)
            {
                try
                {
                    return Convert.ToHexStringLower(ResumableSha256.Import(checkpoint.State).Finish());
                }
                catch (FormatException ex)
                {
                    EngineLog.HashCheckpointUnreadable(logger, ex, upload.Key.Id);
                    return null;
                }
            }

            // Wait while the checkpoint moves: another node hashes what it staged, then announces it.
            long at = checkpoint?.HashedTo ?? 0;
            if (at > seen)
            {
                (seen, since) = (at, time.GetTimestamp());
            }
            else if (time.GetElapsedTime(since) >= HashChainPatience)
            {
                EngineLog.HashChainStalled(logger, upload.Key.Id, at, length, HashChainPatience.TotalSeconds);
                return null;
            }

            await Task.WhenAny(announced, Task.Delay(HashChainPoll, time, cancellationToken));
        }
    }

    private async Task<string> HashPublishedAsync(UploadRecord record, long length, CancellationToken cancellationToken)
    {
        EngineLog.HashReadBack(logger, record.Id, length);
        var published = await data.OpenCompletedAsync(record, cancellationToken)
            ?? throw new IOException($"The published file of upload {record.Id} cannot be read back.");
        if (published.Length != length)
            throw new IOException($"The published file of upload {record.Id} is {published.Length} bytes, not {length}.");
        await using var stream = published.PhysicalPath is { } path
            ? File.OpenRead(path)
            : await published.OpenRange!(0, length, cancellationToken);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(HashBufferSize);
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
                hash.AppendData(buffer, 0, read);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>
    /// The end of a completion whose record is written: publish (again, after a failure), answer the requests still
    /// waiting, leave memory, remove a concatenation's parts, tell the observers, and wake a concatenation waiting for
    /// this part.
    /// </summary>
    private async Task FinishPublishingAsync(ActiveUpload upload, UploadRecord completed, CancellationToken cancellationToken)
    {
        if (data.ReadsBeforePublish)
            await data.PublishAsync(completed, cancellationToken);
        lock (upload.Sync)
            SettleFinished(upload);
        uploads.Remove(upload);
        if (completed.Parts is { } parts)
            await RemovePartsAsync(completed, parts, cancellationToken);
        upload.Finished.TrySetResult();
        EngineLog.UploadAssembled(logger, completed.Id, completed.FileName, completed.Length ?? 0, completed.Sha256 ?? "");
        NotifyCompletionTimed(upload, completed);
        try
        {
            hooks.Completed(completed);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            EngineLog.ObserverFailed(logger, ex, completed.Id); // an observer's fault is not the upload's
        }

        if (completed.ConcatenatedInto is { } final && uploads.TryGet(new UploadKey(completed.Owner, final), out var concatenation))
            Enqueue(concatenation);
    }

    // Only for completions this process saw from their last stored byte (not those finished after a restart).
    private void NotifyCompletionTimed(ActiveUpload upload, UploadRecord completed)
    {
        if (upload.AllStoredAt != 0)
            hooks.Notify(logger, completed.Id, (Record: completed, Took: Stopwatch.GetElapsedTime(upload.AllStoredAt)), static (h, s) => h.CompletionTimed(s.Record, s.Took));
    }

    // The parts of a finished concatenation are not files of their own: remove them.
    private async Task RemovePartsAsync(UploadRecord final, List<string> parts, CancellationToken cancellationToken)
    {
        foreach (var id in parts)
        {
            var key = new UploadKey(final.Owner, id);
            try
            {
                if (await metadata.FindAsync(key, cancellationToken) is { } part && part.ConcatenatedInto == final.Id && part.State == UploadState.Complete)
                {
                    await data.DeleteAsync(part, cancellationToken);
                    await metadata.DeleteAsync(key, cancellationToken);
                }
            }
            catch (IOException ex)
            {
                // The concatenation is complete; a part left behind only takes room until it is deleted or retired.
                EngineLog.PartNotRemoved(logger, ex, id, final.Id);
            }
        }
    }

    /// <summary>Marks an upload failed for good; its pending pieces are refused.</summary>
    public async Task FailAsync(ActiveUpload upload, string reason, bool deleteData)
    {
        var failed = upload.Record.Clone();
        failed.State = UploadState.Failed;
        failed.Failure = reason;
        bool recorded = true;
        try
        {
            await metadata.SaveAsync(failed, CancellationToken.None);
            if (deleteData)
                await data.DeleteAsync(failed, CancellationToken.None);
        }
        catch (IOException)
        {
            recorded = false; // the in-memory state still refuses the upload; a restart decides again
        }

        lock (upload.Sync)
        {
            upload.Record = failed;
            SettleFinished(upload);
        }

        if (recorded)
            uploads.Remove(upload);
        upload.Finished.TrySetResult();
        EngineLog.UploadFailed(logger, failed.Id, reason);
        hooks.Notify(logger, failed.Id, (Record: failed, Reason: reason), static (h, s) => h.Failed(s.Record, s.Reason));
    }
}
