using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Geometry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Core.Storage;

/// <summary>
/// The disk store: upload sessions, their stored chunks, and the finished files. Every client value is validated
/// here before it touches the disk, and none of them is ever part of a path: a session lives in a folder named by
/// a hash of (owner, identifier).
/// </summary>
/// <remarks>
/// Layout under the storage root:
/// <code>
/// tmp/{random}                          chunk bodies being received (removed at start-up if abandoned)
/// sessions/{key}/session.json           persisted session (atomic rewrite)
/// sessions/{key}/chunks/{off}.{len}.{r} stored chunks not yet in the data file (moved in whole, after their length checked out)
/// sessions/{key}/data.part              the preallocated file, chunks written at their offsets
/// sessions/{key}/assembled.journal      16-byte records (offset, length) of ranges durable in data.part
/// completed/{key}                       finished files
/// </code>
/// A chunk is acknowledged once the assembler has written it into data.part, flushed it and journaled its range
/// (see <see cref="ChunkAssembler"/>); chunk files the journal does not list are discarded at start-up.
/// </remarks>
public sealed class UploadStore
{
    private const int StripeCount = 64;
    private const int CopyBufferSize = 256 * 1024;

    private readonly UploadOptions _options;
    private readonly ILogger<UploadStore> _logger;
    private readonly TimeProvider _time;
    private readonly AssemblyQueue _queue;
    private readonly ConcurrentDictionary<string, UploadSession> _sessions = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim[] _stripes;

    private readonly ConcurrentDictionary<string, int> _activeByClient = new(StringComparer.Ordinal);
    private readonly IUploadAuthorizer? _authorizer;

    public UploadStore(IOptions<UploadOptions> options, AssemblyQueue queue, TimeProvider time, ILogger<UploadStore> logger, IUploadAuthorizer? authorizer = null)
    {
        _options = options.Value;
        _authorizer = authorizer;
        _queue = queue;
        _time = time;
        _logger = logger;
        Root = _options.ResolveStorageRoot();
        _stripes = new SemaphoreSlim[StripeCount];
        for (int i = 0; i < StripeCount; i++)
            _stripes[i] = new SemaphoreSlim(1, 1);
    }

    public string Root { get; }

    internal string TempDirectory => Path.Combine(Root, "tmp");
    internal string SessionsDirectory => Path.Combine(Root, "sessions");
    internal string CompletedDirectory => Path.Combine(Root, "completed");

    internal UploadOptions Options => _options;

    internal ILogger Logger => _logger;

    internal TimeProvider Time => _time;

    /// <summary>Creates the layout, removes abandoned temp files and loads every session, queueing unfinished assembly.</summary>
    public void Open()
    {
        Directory.CreateDirectory(TempDirectory);
        Directory.CreateDirectory(SessionsDirectory);
        Directory.CreateDirectory(CompletedDirectory);

        int temps = 0;
        foreach (var file in Directory.EnumerateFiles(TempDirectory))
        {
            File.Delete(file);
            temps++;
        }

        int pending = 0;
        foreach (var dir in Directory.EnumerateDirectories(SessionsDirectory))
        {
            try
            {
                var session = LoadSession(dir);
                if (session is null)
                    continue;
                _sessions[session.Key] = session;
                if (session.State == SessionState.Receiving)
                    _activeByClient.AddOrUpdate(session.Metadata.Client ?? session.Metadata.Owner, 1, (_, n) => n + 1);
                else
                    session.Finished = 1;
                if (session.State == SessionState.Receiving && session.AllReceived)
                {
                    _queue.Enqueue(session);
                    pending++;
                }
            }
            catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
            {
                CoreLog.SessionUnreadable(_logger, ex, dir);
            }
        }

        CoreLog.StorageOpened(_logger, Root, _sessions.Count, pending, temps);
    }

    /// <summary>The chunk test: true when the chunk is stored in full (always after the file is complete).</summary>
    /// <exception cref="UploadException">The description is invalid.</exception>
    public bool IsChunkStored(string owner, ChunkDescriptor chunk)
    {
        var geometry = Validate(chunk);
        if (!_sessions.TryGetValue(KeyOf(owner, chunk.Identifier), out var session))
            return false;
        lock (session.Sync)
        {
            if (session.Deleted || !Matches(session, chunk, geometry))
                return false;
            return session.IsChunkStored(chunk.ChunkNumber);
        }
    }

    /// <summary>
    /// Stores one chunk from <paramref name="body"/>: streamed to a temp file, checked for its exact length, moved into
    /// the session's chunks folder, and written into the data file by the assembler. Returns once the chunk is
    /// durable there (journaled). A chunk that is already stored is read and discarded (clients re-send chunks whose
    /// answer they lost).
    /// </summary>
    /// <exception cref="UploadException">The chunk is refused; nothing of it was kept.</exception>
    /// <param name="client">Who counts against the unfinished-uploads quota (the owner, or the address of an anonymous caller).</param>
    public async Task<ChunkReceipt> StoreChunkAsync(string owner, ChunkDescriptor chunk, Stream body, CancellationToken cancellationToken, string? client = null)
    {
        var geometry = Validate(chunk);
        var range = geometry.RangeOf(chunk.ChunkNumber);

        var session = await GetOrCreateSessionAsync(owner, client ?? owner, chunk, geometry, cancellationToken);

        bool alreadyStored;
        lock (session.Sync)
        {
            if (session.State == SessionState.Failed)
                throw new UploadException(UploadErrors.UploadFailed,
                    $"Upload '{chunk.Identifier}' failed on the server ({session.Metadata.Failure}). Delete it and upload the file again.");
            alreadyStored = session.IsChunkStored(chunk.ChunkNumber);
        }

        if (alreadyStored || range.Length == 0)
        {
            await DrainExactAsync(body, range.Length, chunk.ChunkNumber, cancellationToken);
            if (range.Length == 0)
                _queue.Enqueue(session);
            else
                CoreLog.ChunkDuplicate(_logger, chunk.Identifier, chunk.ChunkNumber);
            return Receipt(session, chunk.ChunkNumber);
        }

        EnsureFreeSpace(range.Length);
        string temp = Path.Combine(TempDirectory, Guid.NewGuid().ToString("N"));
        string? target = null;
        try
        {
            await WriteExactAsync(temp, body, range.Length, chunk.ChunkNumber, cancellationToken);
            target = Path.Combine(session.ChunksDirectory,
                string.Create(CultureInfo.InvariantCulture, $"{range.Offset}.{range.Length}.{Guid.NewGuid():N}"));
            File.Move(temp, target);
        }
        catch (DirectoryNotFoundException)
        {
            // The chunks folder goes away when the upload completes or is deleted while this chunk arrived.
            TryDelete(temp);
            if (session.Deleted)
                throw Deleted(chunk.Identifier);
            CoreLog.ChunkDuplicate(_logger, chunk.Identifier, chunk.ChunkNumber);
            return Receipt(session, chunk.ChunkNumber);
        }
        catch (IOException ex) when (NativeFileSystem.IsDiskFull(ex))
        {
            TryDelete(temp);
            TryDelete(target);
            throw new UploadException(UploadErrors.InsufficientStorage,
                "The server's disk is full; the chunk was not stored. Try again later.", ex) { RetryAfterSeconds = 60 };
        }
        catch
        {
            TryDelete(temp);
            TryDelete(target);
            throw;
        }

        // Hand the whole chunk to the assembler and acknowledge it once it is durable in the data file. A re-send
        // racing the original waits for the original instead of writing the same bytes twice.
        StoredPiece? piece = null;
        Task? stored = null;
        bool deleted;
        lock (session.Sync)
        {
            deleted = session.Deleted;
            if (!deleted && session.State != SessionState.Complete && !session.Received.Contains(range.Offset, range.Length))
            {
                var existing = session.Pending.Find(p => p.Range == range);
                if (existing is null)
                {
                    piece = new StoredPiece(range, target);
                    session.Pending.Add(piece);
                }

                stored = (piece ?? existing)!.Stored.Task;
            }

            session.LastActivity = _time.GetUtcNow();
        }

        if (piece is null)
            TryDelete(target);
        if (deleted)
            throw Deleted(chunk.Identifier);
        if (stored is null)
        {
            CoreLog.ChunkDuplicate(_logger, chunk.Identifier, chunk.ChunkNumber);
            return Receipt(session, chunk.ChunkNumber);
        }

        _queue.Enqueue(session);
        await stored.WaitAsync(cancellationToken);

        var receipt = Receipt(session, chunk.ChunkNumber);
        CoreLog.ChunkStored(_logger, chunk.Identifier, chunk.ChunkNumber, range.Length, receipt.ReceivedChunks, receipt.TotalChunks);
        return receipt;
    }

    /// <summary>Status of an upload, or null when the owner has none with this identifier.</summary>
    public UploadStatus? GetStatus(string owner, string identifier)
    {
        if (!TryFind(owner, identifier, out var session))
            return null;
        lock (session.Sync)
        {
            var missing = new List<int>();
            if (session.State != SessionState.Complete)
            {
                for (int n = 1; n <= session.Geometry.TotalChunks; n++)
                {
                    if (!session.IsChunkStored(n))
                        missing.Add(n);
                }
            }

            var meta = session.Metadata;
            return new UploadStatus(
                meta.Identifier,
                meta.FileName,
                meta.RelativePath,
                meta.TotalSize,
                meta.ChunkSize,
                meta.TotalChunks,
                session.Geometry.TotalChunks - missing.Count,
                missing,
                session.WireState,
                session.State == SessionState.Complete ? meta.Sha256 : null,
                meta.CreatedAt,
                meta.CompletedAt);
        }
    }

    /// <summary>The finished file, null when there is no such upload.</summary>
    /// <exception cref="UploadException">The upload exists but is not complete.</exception>
    public CompletedFile? GetCompletedFile(string owner, string identifier)
    {
        if (!TryFind(owner, identifier, out var session))
            return null;
        lock (session.Sync)
        {
            if (session.State != SessionState.Complete)
                throw new UploadException(UploadErrors.FileNotReady,
                    $"Upload '{identifier}' is {session.WireState}; the file can be downloaded once it is complete.");
            return new CompletedFile(session.CompletedPath, session.Metadata.FileName, session.Metadata.TotalSize, session.Metadata.Sha256!);
        }
    }

    /// <summary>Deletes an upload: its chunks, its partial or finished file and its session. False when unknown.</summary>
    public async Task<bool> DeleteAsync(string owner, string identifier, CancellationToken cancellationToken)
    {
        ValidateIdentifier(identifier);
        string key = KeyOf(owner, identifier);
        var stripe = StripeOf(key);
        await stripe.WaitAsync(cancellationToken);
        try
        {
            if (!_sessions.TryGetValue(key, out var session))
                return false;
            List<StoredPiece> waiting;
            lock (session.Sync)
            {
                session.Deleted = true;
                waiting = [.. session.Pending];
                session.Pending.Clear();
            }

            _sessions.TryRemove(key, out _);
            SessionFinished(session);
            foreach (var piece in waiting)
                piece.Stored.TrySetException(Deleted(identifier));

            // Wait for the assembler to leave the data file; it checks Deleted before its next step.
            await session.AssemblyGate.WaitAsync(CancellationToken.None);
            try
            {
                DeleteDirectory(session.Directory);
                TryDelete(session.CompletedPath);
            }
            finally
            {
                session.AssemblyGate.Release();
            }

            CoreLog.UploadDeleted(_logger, identifier);
            return true;
        }
        finally
        {
            stripe.Release();
        }
    }

    internal bool TryFind(string owner, string identifier, out UploadSession session)
    {
        ValidateIdentifier(identifier);
        if (_sessions.TryGetValue(KeyOf(owner, identifier), out var found) && !found.Deleted)
        {
            session = found;
            return true;
        }

        session = null!;
        return false;
    }

    internal static string KeyOf(string owner, string identifier)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(owner + "\0" + identifier), hash);
        return Convert.ToHexStringLower(hash[..16]);
    }

    private ChunkGeometry Validate(ChunkDescriptor chunk)
    {
        ValidateIdentifier(chunk.Identifier);
        ValidateName(chunk.FileName, "file name", required: true);
        ValidateName(chunk.RelativePath, "relative path", required: false);
        var geometry = ChunkGeometry.Create(chunk.TotalSize, chunk.ChunkSize, chunk.TotalChunks, _options);
        var range = geometry.RangeOf(chunk.ChunkNumber);
        if (chunk.CurrentChunkSize is { } declared && declared != range.Length)
            throw new UploadException(UploadErrors.ChunkSizeMismatch,
                $"Chunk {chunk.ChunkNumber} of a {geometry.TotalSize}-byte file with chunk size {geometry.ChunkSize} is {range.Length} bytes long, but the request says {declared}.");
        return geometry;
    }

    private void ValidateIdentifier(string identifier)
    {
        if (string.IsNullOrEmpty(identifier))
            throw new UploadException(UploadErrors.InvalidIdentifier, "The identifier is empty.");
        if (identifier.Length > _options.MaxIdentifierLength)
            throw new UploadException(UploadErrors.InvalidIdentifier,
                $"The identifier is {identifier.Length} characters long; at most {_options.MaxIdentifierLength} are accepted.");
        if (HasControlOrBrokenText(identifier))
            throw new UploadException(UploadErrors.InvalidIdentifier,
                "The identifier contains control characters (such as NUL) or broken Unicode.");
    }

    private void ValidateName(string? value, string what, bool required)
    {
        if (string.IsNullOrEmpty(value))
        {
            if (required)
                throw new UploadException(UploadErrors.InvalidFileName, $"The {what} is empty.");
            return;
        }

        if (value.Length > _options.MaxFileNameLength)
            throw new UploadException(UploadErrors.InvalidFileName,
                $"The {what} is {value.Length} characters long; at most {_options.MaxFileNameLength} are accepted.");
        if (HasControlOrBrokenText(value))
            throw new UploadException(UploadErrors.InvalidFileName,
                $"The {what} contains control characters (such as NUL) or broken Unicode.");
    }

    private static bool HasControlOrBrokenText(string value)
    {
        for (int i = 0; i < value.Length; i++)
        {
            char c = value[i];
            if (char.IsControl(c))
                return true;
            if (char.IsHighSurrogate(c))
            {
                if (i + 1 >= value.Length || !char.IsLowSurrogate(value[i + 1]))
                    return true;
                i++;
            }
            else if (char.IsLowSurrogate(c))
            {
                return true;
            }
        }

        return false;
    }

    private static bool Matches(UploadSession session, ChunkDescriptor chunk, ChunkGeometry geometry) =>
        session.Geometry == geometry && string.Equals(session.Metadata.FileName, chunk.FileName, StringComparison.Ordinal);

    private async Task<UploadSession> GetOrCreateSessionAsync(string owner, string client, ChunkDescriptor chunk, ChunkGeometry geometry, CancellationToken cancellationToken)
    {
        string key = KeyOf(owner, chunk.Identifier);
        if (!_sessions.TryGetValue(key, out var session))
        {
            // Asked outside the lock: the application may take a while to answer.
            if (_authorizer is not null)
                await _authorizer.AuthorizeAsync(new UploadAuthorization(UploadEvent.Start, owner, chunk.Identifier, chunk.FileName, geometry.TotalSize, null), cancellationToken);

            var stripe = StripeOf(key);
            await stripe.WaitAsync(cancellationToken);
            try
            {
                if (!_sessions.TryGetValue(key, out session))
                {
                    TakeQuota(client);
                    try
                    {
                        session = CreateSession(key, owner, client, chunk, geometry);
                    }
                    catch
                    {
                        ReleaseQuota(client);
                        throw;
                    }

                    _sessions[key] = session;
                    CoreLog.SessionStarted(_logger, chunk.Identifier, chunk.FileName, geometry.TotalSize, geometry.TotalChunks);
                }
            }
            finally
            {
                stripe.Release();
            }
        }

        if (!Matches(session, chunk, geometry))
        {
            var m = session.Metadata;
            throw new UploadException(UploadErrors.SessionMismatch,
                $"Upload '{chunk.Identifier}' is '{m.FileName}', {m.TotalSize} bytes in {m.TotalChunks} chunks of {m.ChunkSize} bytes; " +
                $"this chunk says '{chunk.FileName}', {geometry.TotalSize} bytes in {geometry.TotalChunks} chunks of {geometry.ChunkSize}. " +
                "Use another identifier, or delete the existing upload first.");
        }

        return session;
    }

    private void TakeQuota(string client)
    {
        int active = _activeByClient.AddOrUpdate(client, 1, (_, n) => n + 1);
        if (active > _options.MaxActiveUploadsPerClient)
        {
            ReleaseQuota(client);
            throw new UploadException(UploadErrors.TooManyUploads,
                $"You have {_options.MaxActiveUploadsPerClient} unfinished uploads; finish or delete some before starting more.") { RetryAfterSeconds = 60 };
        }
    }

    private void ReleaseQuota(string client) => _activeByClient.AddOrUpdate(client, 0, (_, n) => Math.Max(0, n - 1));

    /// <summary>Called once when a session stops being unfinished (completed, failed or deleted).</summary>
    internal void SessionFinished(UploadSession session)
    {
        if (Interlocked.Exchange(ref session.Finished, 1) == 0)
            ReleaseQuota(session.Metadata.Client ?? session.Metadata.Owner);
    }

    internal async Task AuthorizeCompletionAsync(UploadSession session, string sha256, CancellationToken cancellationToken)
    {
        if (_authorizer is null)
            return;
        var m = session.Metadata;
        await _authorizer.AuthorizeAsync(new UploadAuthorization(UploadEvent.Complete, m.Owner, m.Identifier, m.FileName, m.TotalSize, sha256), cancellationToken);
    }

    private UploadSession CreateSession(string key, string owner, string client, ChunkDescriptor chunk, ChunkGeometry geometry)
    {
        EnsureFreeSpace(geometry.TotalSize);
        var metadata = new SessionMetadata
        {
            Owner = owner,
            Client = client,
            Identifier = chunk.Identifier,
            FileName = chunk.FileName,
            RelativePath = string.IsNullOrEmpty(chunk.RelativePath) ? null : chunk.RelativePath,
            ContentType = string.IsNullOrEmpty(chunk.ContentType) || chunk.ContentType.Length > 255 || HasControlOrBrokenText(chunk.ContentType)
                ? null
                : chunk.ContentType,
            TotalSize = geometry.TotalSize,
            ChunkSize = geometry.ChunkSize,
            TotalChunks = geometry.TotalChunks,
            CreatedAt = _time.GetUtcNow(),
            State = SessionState.Receiving,
        };
        var session = new UploadSession(key, Path.Combine(SessionsDirectory, key), Path.Combine(CompletedDirectory, key), metadata)
        {
            LastActivity = metadata.CreatedAt,
        };
        try
        {
            // A leftover folder without session.json is an interrupted creation: start it again.
            if (Directory.Exists(session.Directory))
                DeleteDirectory(session.Directory);
            Directory.CreateDirectory(session.ChunksDirectory);

            // Reserve the whole file now, so a disk that cannot take it says so on the first chunk.
            using (var data = File.OpenHandle(session.DataPath, FileMode.CreateNew, FileAccess.Write, FileShare.Read, FileOptions.None, geometry.TotalSize))
                RandomAccess.SetLength(data, geometry.TotalSize);
            File.Create(session.JournalPath).Dispose();

            WriteMetadata(session); // also flushes the session folder, making data.part and the journal durable names
            if (_options.FlushToDisk)
                NativeFileSystem.FlushDirectory(SessionsDirectory);
        }
        catch (IOException ex) when (NativeFileSystem.IsDiskFull(ex))
        {
            DeleteDirectory(session.Directory);
            throw new UploadException(UploadErrors.InsufficientStorage,
                $"The server's disk cannot take a file of {geometry.TotalSize} bytes now. Try again later.", ex) { RetryAfterSeconds = 300 };
        }
        catch
        {
            DeleteDirectory(session.Directory);
            throw;
        }

        return session;
    }

    private void EnsureFreeSpace(long bytes)
    {
        long available;
        try
        {
            available = new DriveInfo(Root).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return; // unknown: let the write itself report a full disk
        }

        if (available - bytes < _options.MinFreeSpace)
            throw new UploadException(UploadErrors.InsufficientStorage,
                $"The server's disk has {available} bytes free and keeps {_options.MinFreeSpace} in reserve; it cannot take {bytes} more now. Try again later.")
            { RetryAfterSeconds = 300 };
    }

    internal void WriteMetadata(UploadSession session)
    {
        string temp = session.MetadataPath + ".tmp";
        var bytes = JsonSerializer.SerializeToUtf8Bytes(session.Metadata, StorageJsonContext.Default.SessionMetadata);
        using (var handle = File.OpenHandle(temp, FileMode.Create, FileAccess.Write))
        {
            RandomAccess.Write(handle, bytes, 0);
            if (_options.FlushToDisk)
                RandomAccess.FlushToDisk(handle);
        }

        File.Move(temp, session.MetadataPath, overwrite: true);
        if (_options.FlushToDisk)
            NativeFileSystem.FlushDirectory(session.Directory);
    }

    private UploadSession? LoadSession(string directory)
    {
        string key = Path.GetFileName(directory);
        string metaPath = Path.Combine(directory, "session.json");
        if (!File.Exists(metaPath))
        {
            DeleteDirectory(directory); // creation was interrupted before the session existed
            return null;
        }

        var metadata = JsonSerializer.Deserialize(File.ReadAllBytes(metaPath), StorageJsonContext.Default.SessionMetadata)
            ?? throw new JsonException("empty session file");
        if (KeyOf(metadata.Owner, metadata.Identifier) != key || metadata.TotalSize < 0 || metadata.ChunkSize < 1 || metadata.TotalChunks < 1)
            throw new JsonException("session file does not describe this folder");

        var session = new UploadSession(key, directory, Path.Combine(CompletedDirectory, key), metadata)
        {
            LastActivity = Latest(metadata.CompletedAt ?? metadata.CreatedAt, directory, Path.Combine(directory, "chunks")),
        };
        if (metadata.State == SessionState.Complete)
        {
            if (!File.Exists(session.CompletedPath) && File.Exists(session.DataPath))
            {
                File.Move(session.DataPath, session.CompletedPath);
                if (_options.FlushToDisk)
                    NativeFileSystem.FlushDirectory(CompletedDirectory);
                CoreLog.CompletionRecovered(_logger, metadata.Identifier);
            }

            if (!File.Exists(session.CompletedPath))
                MarkFailed(session, "the completed file is missing from the storage");
            else
                RemoveWorkFiles(session);
            session.Received.Add(0, metadata.TotalSize);
            return session;
        }

        if (metadata.State == SessionState.Failed)
            return session;

        if (!File.Exists(session.DataPath))
        {
            // Without the data file the journal means nothing: every chunk must be received again.
            using (var data = File.OpenHandle(session.DataPath, FileMode.CreateNew, FileAccess.Write, FileShare.Read, FileOptions.None, metadata.TotalSize))
                RandomAccess.SetLength(data, metadata.TotalSize);
            TryDelete(session.JournalPath);
        }

        foreach (var range in ReadJournal(session))
            session.Received.Add(range.Offset, range.Length);

        // Chunk files that the journal does not list were never acknowledged (and never flushed): the client
        // still has them and the chunk test asks for them again.
        DeleteDirectory(session.ChunksDirectory);
        Directory.CreateDirectory(session.ChunksDirectory);

        session.RecountReceivedChunks();
        return session;
    }

    private static DateTimeOffset Latest(DateTimeOffset known, params string[] directories)
    {
        var latest = known;
        foreach (var dir in directories)
        {
            if (Directory.Exists(dir) && new DateTimeOffset(Directory.GetLastWriteTimeUtc(dir)) is var written && written > latest)
                latest = written;
        }

        return latest;
    }

    /// <summary>
    /// Removes what has outlived its use: uploads idle longer than <see cref="UploadOptions.IdleExpiry"/> (a swept
    /// upload answers as unknown), completed files older than <see cref="UploadOptions.CompletedRetention"/> when
    /// set, and temp or orphaned files older than <see cref="UploadOptions.TempFileMaxAge"/>.
    /// </summary>
    public async Task<SweepResult> SweepAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        int expired = 0, retired = 0, temps = 0;
        foreach (var session in _sessions.Values)
        {
            bool idle, old;
            lock (session.Sync)
            {
                idle = session.State != SessionState.Complete && session.LastActivity + _options.IdleExpiry < now;
                old = session.State == SessionState.Complete && _options.CompletedRetention is { } keep
                    && (session.Metadata.CompletedAt ?? session.LastActivity) + keep < now;
            }

            if ((idle || old) && await DeleteAsync(session.Metadata.Owner, session.Metadata.Identifier, cancellationToken))
            {
                if (idle)
                    expired++;
                else
                    retired++;
            }
        }

        var cutoff = now - _options.TempFileMaxAge;
        foreach (var file in Directory.EnumerateFiles(TempDirectory))
        {
            if (File.GetLastWriteTimeUtc(file) < cutoff.UtcDateTime)
            {
                TryDelete(file);
                temps++;
            }
        }

        foreach (var file in Directory.EnumerateFiles(CompletedDirectory))
        {
            // A finished file whose session is gone (a delete interrupted by a crash).
            if (!_sessions.ContainsKey(Path.GetFileName(file)) && File.GetLastWriteTimeUtc(file) < cutoff.UtcDateTime)
            {
                TryDelete(file);
                temps++;
            }
        }

        var result = new SweepResult(expired, retired, temps);
        if (result.Total > 0)
            CoreLog.Swept(_logger, expired, retired, temps);
        return result;
    }

    internal static List<ByteRange> ReadJournal(UploadSession session)
    {
        var ranges = new List<ByteRange>();
        if (!File.Exists(session.JournalPath))
            return ranges;
        var bytes = File.ReadAllBytes(session.JournalPath);
        // A torn final record (crash mid-append) is shorter than 16 bytes and ignored.
        for (int i = 0; i + 16 <= bytes.Length; i += 16)
        {
            long offset = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(i));
            long length = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(i + 8));
            if (offset >= 0 && length > 0 && offset <= session.Geometry.TotalSize - length)
                ranges.Add(new ByteRange(offset, length));
        }

        return ranges;
    }

    internal void MarkFailed(UploadSession session, string reason)
    {
        lock (session.Sync)
        {
            session.State = SessionState.Failed;
            session.Metadata.State = SessionState.Failed;
            session.Metadata.Failure = reason;
        }

        try
        {
            WriteMetadata(session);
        }
        catch (IOException)
        {
            // The in-memory state still refuses the upload; the next start-up will retry assembly.
        }

        SessionFinished(session);
        CoreLog.UploadFailed(_logger, session.Metadata.Identifier, reason);
    }

    internal static void RemoveWorkFiles(UploadSession session)
    {
        DeleteDirectory(session.ChunksDirectory);
        TryDelete(session.JournalPath);
        TryDelete(session.DataPath);
    }

    private static ChunkReceipt Receipt(UploadSession session, int chunkNumber)
    {
        lock (session.Sync)
            return new ChunkReceipt(session.Metadata.Identifier, chunkNumber, session.CountReceivedChunks(), session.Geometry.TotalChunks, session.WireState);
    }

    private SemaphoreSlim StripeOf(string key) => _stripes[(int)(uint.Parse(key.AsSpan(0, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture) % StripeCount)];

    private static UploadException Deleted(string identifier) =>
        new(UploadErrors.SessionMismatch, $"Upload '{identifier}' was deleted while this chunk arrived.");

    private static async Task WriteExactAsync(string path, Stream body, long expected, int chunkNumber, CancellationToken cancellationToken)
    {
        // One rented block, filled before each write: few system calls, nothing allocated per chunk. The temp file
        // is not preallocated: it lives in the page cache and is gone before the kernel would write it out.
        int size = (int)Math.Min(CopyBufferSize, Math.Max(expected + 1, 4096));
        byte[] buffer = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            using var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            long written = 0;
            bool end = false;
            while (!end)
            {
                int filled = 0;
                while (filled < size)
                {
                    int read = await body.ReadAsync(buffer.AsMemory(filled, size - filled), cancellationToken);
                    if (read == 0)
                    {
                        end = true;
                        break;
                    }

                    filled += read;
                }

                if (written + filled > expected)
                    throw TooLong(chunkNumber, expected);
                if (filled > 0)
                    await RandomAccess.WriteAsync(handle, buffer.AsMemory(0, filled), written, cancellationToken);
                written += filled;
            }

            if (written != expected)
                throw new UploadException(UploadErrors.ChunkLengthMismatch,
                    $"Chunk {chunkNumber} must be {expected} bytes, but the body had {written}.");
            // No flush here: a chunk becomes durable in the data file, and only then is it acknowledged.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task DrainExactAsync(Stream body, long expected, int chunkNumber, CancellationToken cancellationToken)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            long total = 0;
            int read;
            while ((read = await body.ReadAsync(buffer.AsMemory(), cancellationToken)) > 0)
            {
                total += read;
                if (total > expected)
                    throw TooLong(chunkNumber, expected);
            }

            if (total != expected)
                throw new UploadException(UploadErrors.ChunkLengthMismatch,
                    $"Chunk {chunkNumber} must be {expected} bytes, but the body had {total}.");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static UploadException TooLong(int chunkNumber, long expected) =>
        new(UploadErrors.ChunkLengthMismatch, $"Chunk {chunkNumber} must be {expected} bytes, but the body is longer.");

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
                // A file appeared while the folder was being emptied (a chunk landing); go again.
            }
        }
    }
}
