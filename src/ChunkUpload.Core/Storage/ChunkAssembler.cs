using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using ChunkUpload.Core.Errors;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace ChunkUpload.Core.Storage;

/// <summary>
/// Writes whole chunks from the chunks folder into each session's preallocated file at their offsets, as they
/// arrive, so that finishing a file costs about one chunk. It works in batches (a group commit): every chunk waiting
/// for a session is copied in (in the kernel, copy_file_range), the data file is flushed once, the ranges are
/// appended to the journal and flushed, and only then are the chunks acknowledged to their requests and their files
/// deleted. A chunk is thus written to the disk once, and an acknowledged chunk is always in the data file.
/// The whole-file SHA-256 advances with the contiguous prefix; after a restart the prefix is hashed again.
/// Completion happens exactly once per session, under its assembly gate: the outbox event (if any), the metadata
/// marked complete with the hash, then data.part renamed into completed/, then the work files removed. Start-up
/// finishes an interrupted rename.
/// </summary>
public sealed class ChunkAssembler
{
    private const int BufferSize = 1024 * 1024;
    private readonly UploadStore _store;
    private readonly AssemblyQueue _queue;
    private readonly CompletionOutbox? _outbox;

    public ChunkAssembler(UploadStore store, AssemblyQueue queue, CompletionOutbox? outbox = null)
    {
        _store = store;
        _queue = queue;
        _outbox = outbox;
    }

    /// <summary>Drains the queue until cancelled. Transient failures put the session back after a delay.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            UploadSession session;
            try
            {
                session = await _queue.DequeueAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await ProcessWithRetryAsync(session, cancellationToken);
        }
    }

    private async Task ProcessWithRetryAsync(UploadSession session, CancellationToken cancellationToken)
    {
        try
        {
            await ProcessAsync(session, cancellationToken);
            session.AssemblyFailures = 0;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or UploadException)
        {
            // Storage trouble or an application that cannot answer now (a full disk, a flaky volume): keep everything and try again later.
            int failures = ++session.AssemblyFailures;
            var delay = TimeSpan.FromSeconds(Math.Min(60, Math.Pow(2, Math.Min(failures - 1, 6))));
            AssemblerLog.AssemblyDeferred(_store.Logger, ex, session.Metadata.Identifier, delay.TotalSeconds);
            _ = RequeueLaterAsync(session, delay, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _store.MarkFailed(session, ex.Message);
        }
    }

    private async Task RequeueLaterAsync(UploadSession session, TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, _store.Time, cancellationToken);
            _queue.Enqueue(session);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Writes the chunks waiting for <paramref name="session"/> into its file, acknowledges them, advances the hash,
    /// and completes the file when every byte is in. Returns true when the session is complete.
    /// </summary>
    internal async Task<bool> ProcessAsync(UploadSession session, CancellationToken cancellationToken)
    {
        await session.AssemblyGate.WaitAsync(cancellationToken);
        try
        {
            List<StoredPiece> batch;
            lock (session.Sync)
            {
                if (session.Deleted || session.State != SessionState.Receiving)
                    return session.State == SessionState.Complete;
                batch = [.. session.Pending];
            }

            bool complete;
            using (var data = File.OpenHandle(session.DataPath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite))
            {
                if (batch.Count > 0)
                    WriteBatch(session, data, batch);
                AdvanceHash(session, data);
                lock (session.Sync)
                    complete = !session.Deleted && session.AllReceived;
            }

            if (!complete)
                return false;

            string sha256 = Convert.ToHexStringLower(session.Hash.GetCurrentHash());
            try
            {
                await _store.AuthorizeCompletionAsync(session, sha256, cancellationToken);
            }
            catch (UploadException ex) when (!ex.Error.IsTransient)
            {
                _store.MarkFailed(session, "the application refused the finished file: " + ex.Message);
                UploadStore.RemoveWorkFiles(session);
                return false;
            }

            Complete(session, sha256);
            return true;
        }
        finally
        {
            session.AssemblyGate.Release();
        }
    }

    private void WriteBatch(UploadSession session, SafeFileHandle data, List<StoredPiece> batch)
    {
        var done = new List<StoredPiece>(batch.Count);
        var lost = new List<StoredPiece>();
        long started = Stopwatch.GetTimestamp();
        try
        {
            byte[]? buffer = null;
            try
            {
                foreach (var piece in batch)
                {
                    if (CopyPiece(piece, data, ref buffer))
                        done.Add(piece);
                    else
                        lost.Add(piece);
                }
            }
            finally
            {
                if (buffer is not null)
                    ArrayPool<byte>.Shared.Return(buffer);
            }

            long copied = Stopwatch.GetTimestamp();
            if (done.Count > 0)
            {
                if (_store.Options.FlushToDisk)
                    RandomAccess.FlushToDisk(data);
                long flushed = Stopwatch.GetTimestamp();
                AppendJournal(session, done);
                double copyMs = Stopwatch.GetElapsedTime(started, copied).TotalMilliseconds;
                double flushMs = Stopwatch.GetElapsedTime(copied, flushed).TotalMilliseconds;
                double journalMs = Stopwatch.GetElapsedTime(flushed).TotalMilliseconds;
                AssemblerLog.BatchTimings(_store.Logger, session.Metadata.Identifier, done.Count, copyMs, flushMs, journalMs);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Nothing of this batch is acknowledged: its requests get a transient error and the client sends again.
            var error = ex is IOException io && StorageFaults.IsDiskFull(io)
                ? new UploadException(UploadErrors.InsufficientStorage, "The server's disk is full; the chunk was not stored. Try again later.", ex) { RetryAfterSeconds = 60 }
                : new UploadException(UploadErrors.StorageUnavailable, "The server could not store the chunk; send it again.", ex) { RetryAfterSeconds = 5 };
            Settle(session, batch, stored: [], failed: batch, error);
            throw;
        }

        Settle(session, batch, stored: done, failed: lost,
            new UploadException(UploadErrors.StorageUnavailable, "The chunk could not be read back on the server; send it again.") { RetryAfterSeconds = 1 });
        foreach (var piece in lost)
            CoreLog.PieceLost(_store.Logger, session.Metadata.Identifier, piece.Path);
    }

    // Records the outcome of a batch in memory, answers the waiting requests and removes the chunk files.
    private void Settle(UploadSession session, List<StoredPiece> batch, List<StoredPiece> stored, List<StoredPiece> failed, UploadException error)
    {
        lock (session.Sync)
        {
            foreach (var piece in stored)
            {
                if (!session.Received.Contains(piece.Range.Offset, piece.Range.Length))
                {
                    session.Received.Add(piece.Range.Offset, piece.Range.Length);
                    session.ReceivedChunkCount++;
                }
            }

            foreach (var piece in batch)
                session.Pending.Remove(piece);
            session.LastActivity = _store.Time.GetUtcNow();
        }

        foreach (var piece in stored)
            piece.Stored.TrySetResult();
        foreach (var piece in failed)
            piece.Stored.TrySetException(error);
        foreach (var piece in batch)
            UploadStore.TryDelete(piece.Path);
    }

    private static bool CopyPiece(StoredPiece piece, SafeFileHandle data, ref byte[]? buffer)
    {
        SafeFileHandle source;
        try
        {
            source = File.OpenHandle(piece.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (FileNotFoundException)
        {
            return false;
        }

        using (source)
        {
            if (RandomAccess.GetLength(source) != piece.Range.Length)
                return false;
            if (NativeFileSystem.TryCopyRange(source, 0, data, piece.Range.Offset, piece.Range.Length))
                return true;
            buffer ??= ArrayPool<byte>.Shared.Rent(BufferSize);
            long position = 0;
            while (position < piece.Range.Length)
            {
                int read = RandomAccess.Read(source, buffer.AsSpan(0, (int)Math.Min(buffer.Length, piece.Range.Length - position)), position);
                if (read == 0)
                    return false;
                RandomAccess.Write(data, buffer.AsSpan(0, read), piece.Range.Offset + position);
                position += read;
            }
        }

        return true;
    }

    private void AppendJournal(UploadSession session, List<StoredPiece> done)
    {
        byte[] records = new byte[done.Count * 16];
        for (int i = 0; i < done.Count; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(records.AsSpan(i * 16), done[i].Range.Offset);
            BinaryPrimitives.WriteInt64LittleEndian(records.AsSpan((i * 16) + 8), done[i].Range.Length);
        }

        bool created = !File.Exists(session.JournalPath);
        using var journal = new FileStream(session.JournalPath, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read, 1);
        // A torn record from an earlier crash would misalign everything after it: start at a record boundary.
        if (journal.Length % 16 != 0)
            journal.SetLength(journal.Length - (journal.Length % 16));
        journal.Seek(0, SeekOrigin.End);
        journal.Write(records);
        journal.Flush(flushToDisk: _store.Options.FlushToDisk);
        if (created && _store.Options.FlushToDisk)
            NativeFileSystem.FlushDirectory(session.Directory);
    }

    private static void AdvanceHash(UploadSession session, SafeFileHandle data)
    {
        long end;
        lock (session.Sync)
            end = session.Received.ContiguousEnd;
        if (session.HashedUpTo >= end)
            return;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (session.HashedUpTo < end)
            {
                int want = (int)Math.Min(buffer.Length, end - session.HashedUpTo);
                int read = RandomAccess.Read(data, buffer.AsSpan(0, want), session.HashedUpTo);
                if (read == 0)
                    throw new IOException("The data file is shorter than its assembled ranges.");
                session.Hash.AppendData(buffer, 0, read);
                session.HashedUpTo += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Complete(UploadSession session, string sha256)
    {
        var meta = session.Metadata;
        if (session.HashedUpTo != meta.TotalSize)
            throw new InvalidOperationException($"Hashed {session.HashedUpTo} of {meta.TotalSize} bytes at completion.");

        var completedAt = _store.Time.GetUtcNow();
        _outbox?.Record(new CompletionEvent(
            session.Key + "-" + sha256[..16], meta.Identifier, meta.FileName, meta.TotalSize, sha256, meta.Owner, completedAt));

        meta.State = SessionState.Complete;
        meta.Sha256 = sha256;
        meta.CompletedAt = completedAt;
        _store.WriteMetadata(session);

        File.Move(session.DataPath, session.CompletedPath, overwrite: true);
        if (_store.Options.FlushToDisk)
            NativeFileSystem.FlushDirectory(Path.GetDirectoryName(session.CompletedPath)!);

        UploadStore.RemoveWorkFiles(session);
        lock (session.Sync)
            session.State = SessionState.Complete;
        _store.SessionFinished(session);
        CoreLog.UploadAssembled(_store.Logger, meta.Identifier, meta.FileName, meta.TotalSize, sha256);
    }
}

internal static partial class AssemblerLog
{
    [LoggerMessage(EventId = 1102, Level = LogLevel.Debug, Message = "Upload {Identifier}: batch of {Chunks} chunks, copy {CopyMs} ms, flush {FlushMs} ms, journal {JournalMs} ms")]
    public static partial void BatchTimings(ILogger logger, string identifier, int chunks, double copyMs, double flushMs, double journalMs);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Assembly of upload {Identifier} deferred for {Seconds} s after a storage error")]
    public static partial void AssemblyDeferred(ILogger logger, Exception exception, string identifier, double seconds);
}
