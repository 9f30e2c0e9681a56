using System.Buffers;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Hooks;
using ChunkUpload.Core.Ranges;
using ChunkUpload.Core.Uploads;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Core.Engine;

/// <summary>
/// The one engine under every protocol. An upload is an id and owner, an optional length, the byte ranges durably
/// stored, a record and a state; protocols translate their wire format into these operations: create, write a
/// range from a stream, query, declare the length, concatenate, delete and read the finished file. Bytes stream
/// from the request into staged pieces (cut at <see cref="IUploadDataStore.PieceAlignmentFor"/>), the assembler commits
/// them at their offsets and journals them, and a write returns only once what it reports is durable.
/// </summary>
/// <remarks>
/// Every refusal is an <see cref="UploadException"/> with a catalog code; storage faults surface as
/// <see cref="IOException"/> (a retryable 503 or 507 for the client). The stores, the lock and the hooks are the
/// contracts in <c>ChunkUpload.Core.Contracts</c> and <c>ChunkUpload.Core.Hooks</c>.
/// </remarks>
public sealed class UploadEngine
{
    private const int ReadBufferSize = 256 * 1024;

    private readonly IUploadMetadataStore _metadata;
    private readonly IUploadDataStore _data;
    private readonly IUploadLockProvider _locks;
    private readonly IUploadHooks _hooks;
    private readonly UploadOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<UploadEngine> _logger;
    private readonly ActiveUploads _uploads = new();
    private readonly UploadPolicy _policy;
    private readonly Assembler _assembler;

    public UploadEngine(
        IUploadMetadataStore metadata,
        IUploadDataStore data,
        IUploadLockProvider locks,
        IUploadHooks hooks,
        IOptions<UploadOptions> options,
        TimeProvider time,
        ILogger<UploadEngine> logger)
    {
        _metadata = metadata;
        _data = data;
        _locks = locks;
        _hooks = hooks;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _policy = new UploadPolicy(_options, metadata, _options.ResolveStorageRoot());
        NodeId = $"{Environment.MachineName}:{Environment.ProcessId}:{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        _assembler = new Assembler(_uploads, metadata, data, hooks, _options, time, logger, NodeId);
    }

    public UploadOptions Options => _options;

    /// <summary>This engine's name among the nodes sharing a metadata store (it claims completions under it).</summary>
    public string NodeId { get; }

    /// <summary>Uploads in progress (in memory).</summary>
    public int ActiveCount => _uploads.Count;

    /// <summary>Uploads waiting for the assembler's next batch.</summary>
    public int AssemblyQueueLength => _assembler.QueueLength;

    /// <summary>
    /// The uploads in progress in this process's registry, counted by protocol and wire state (receiving, or
    /// assembling once every byte is stored). With a shared store these are the uploads this node has worked on.
    /// </summary>
    public IReadOnlyList<ActiveUploadCount> CountActive()
    {
        var counts = new Dictionary<(string Protocol, string State), int>();
        foreach (var active in _uploads.All)
        {
            string protocol, state;
            lock (active.Sync)
            {
                if (active.Deleted || active.Record.State != UploadState.Receiving)
                    continue;
                protocol = active.Record.Protocol;
                state = active.AllStored ? UploadStates.Assembling : UploadStates.Receiving;
            }

            counts[(protocol, state)] = counts.GetValueOrDefault((protocol, state)) + 1;
        }

        return [.. counts.Select(c => new ActiveUploadCount(c.Key.Protocol, c.Key.State, c.Value))];
    }

    /// <summary>
    /// Recovers after a start or a crash: unfinished uploads come back with what their journal says is stored (and
    /// queued for assembly when every byte is in), completions interrupted before the file was published are finished,
    /// data without a record is removed.
    /// </summary>
    public async Task OpenAsync(CancellationToken cancellationToken)
    {
        var recovered = await _metadata.OpenAsync(cancellationToken);
        if (_assembler.HashCheckpoints is { } checkpoints)
            await checkpoints.ListenForHashCheckpointsAsync(_assembler.HashCheckpointAnnounced, cancellationToken);
        var unpublished = await _data.OpenAsync(cancellationToken);
        int pending = 0;
        foreach (var upload in recovered)
        {
            var ranges = upload.Ranges;
            if (ranges.Count > 0 && !await _data.HasDataAsync(upload.Record, cancellationToken))
            {
                // Without the data the journal means nothing: every byte must be received again.
                EngineLog.DataLost(_logger, upload.Record.Id);
                await _metadata.ResetRangesAsync(upload.Record, cancellationToken);
                ranges = [];
            }

            var active = new ActiveUpload(upload.Record, ranges, upload.LastActivity);
            _uploads.Add(active);
            if (active.AllStored || upload.Record.Parts is not null)
            {
                _assembler.Enqueue(active);
                pending++;
            }
        }

        int published = 0;
        foreach (var hash in unpublished)
        {
            if (recovered.Any(r => r.Record.Key.Hash == hash))
                continue;
            var record = await _metadata.FindByHashAsync(hash, cancellationToken);
            if (record is { State: UploadState.Complete })
            {
                await _data.PublishAsync(record, cancellationToken);
                EngineLog.CompletionRecovered(_logger, record.Id);
                published++;
            }
            else if (record is { State: UploadState.Failed })
            {
                await _data.DeleteAsync(record, cancellationToken);
            }

            // Data without any record is an interrupted delete: the sweeper removes it once old.
        }

        EngineLog.StorageOpened(_logger, recovered.Count, pending, published);
    }

    /// <summary>The assembler's loop; the host runs a few of them in parallel.</summary>
    public Task RunAssemblerAsync(CancellationToken cancellationToken) => _assembler.RunAsync(cancellationToken);

    // ------------------------------------------------------------------ queries

    /// <summary>Checks a spec as <see cref="GetOrCreateAsync"/> would, without touching any store (a chunk test GET).</summary>
    public void Validate(UploadSpec spec, Caller caller)
    {
        _policy.ValidateSpec(spec, caller);
        if (spec.Id is { } id)
            Admit(caller, id);
    }

    /// <summary>What is known of an upload, or null when the caller has none with this id.</summary>
    /// <exception cref="UploadException"><c>token_scope</c> for an id the caller's credentials do not name; <c>unauthenticated</c>
    /// for expired credentials (<see cref="Caller.ExpiredAt"/>) and an upload that is not one they may go on with.</exception>
    public async Task<UploadSnapshot?> FindAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        var snapshot = await FindOwnAsync(AdmittedKey(caller, id), cancellationToken);
        AdmitContinuing(caller, id, snapshot?.Record);
        return snapshot;
    }

    private async Task<UploadSnapshot?> FindOwnAsync(UploadKey key, CancellationToken cancellationToken)
    {
        if (!_metadata.IsShared && _uploads.TryGet(key, out var active) && !active.Deleted)
            return active.Snapshot(ExpiryOf);
        var record = await _metadata.FindAsync(key, cancellationToken);
        if (record is null)
            return null;
        if (record.State == UploadState.Receiving)
        {
            if (await LoadAsync(key, cancellationToken) is { } loaded)
                return loaded.Snapshot(ExpiryOf);
            // Finished (or deleted) between the two reads, as the last bytes land: the store says which.
            record = await _metadata.FindAsync(key, cancellationToken);
            return record is null or { State: UploadState.Receiving } ? null : SnapshotOf(record);
        }
        return SnapshotOf(record);
    }

    /// <summary>
    /// <see cref="FindAsync"/> for a client asking where to resume a sequential upload: a request still writing to it
    /// (typically one whose connection just dropped) is first asked to let go, as a new append would ask it, so the
    /// answer includes every byte that request delivered instead of what happened to be stored a moment earlier. When
    /// the writer does not let go within <see cref="UploadOptions.WriterLockWait"/>, the durable state is returned. With
    /// shared stores that request may be writing on another node, which this one cannot see: the lock is always asked for.
    /// </summary>
    public async Task<UploadSnapshot?> FindSettledAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        var key = AdmittedKey(caller, id);
        if (_metadata.IsShared || (_uploads.TryGet(key, out var active) && Volatile.Read(ref active.Writers) > 0))
        {
            // Getting the lock is what makes the old writer store its prefix and finish; it is released at once.
            await using var writer = await _locks.AcquireAsync(key, _options.WriterLockWait, cancellationToken);
        }

        return await FindAsync(caller, id, cancellationToken);
    }

    /// <summary>Waits (up to <paramref name="timeout"/>) until the upload is complete or failed; returns its state then.</summary>
    public async Task<UploadSnapshot?> WaitForCompletionAsync(Caller caller, string id, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Admit(caller, id);
        if (_uploads.TryGet(caller.KeyOf(id), out var active))
        {
            try
            {
                await active.Finished.Task.WaitAsync(timeout, _time, cancellationToken);
            }
            catch (TimeoutException)
            {
                var waiting = active.Snapshot(ExpiryOf);
                AdmitContinuing(caller, id, waiting.Record);
                return waiting;
            }
        }

        return await FindAsync(caller, id, cancellationToken);
    }

    /// <summary>The finished file with its record; null when there is no such upload.</summary>
    /// <exception cref="UploadException"><c>file_not_ready</c> while the upload is not complete.</exception>
    public async Task<(UploadRecord Record, CompletedData Data)?> OpenCompletedAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        RefuseExpired(caller, "download a file");
        var snapshot = await FindAsync(caller, id, cancellationToken);
        if (snapshot is null)
            return null;
        if (!snapshot.IsComplete)
            throw new UploadException(UploadErrors.FileNotReady,
                $"Upload '{Short(id)}' is {snapshot.WireState}; the file can be downloaded once it is complete.");
        var data = await _data.OpenCompletedAsync(snapshot.Record, cancellationToken)
            ?? throw new IOException($"The finished file of upload '{Short(id)}' is missing from the storage.");
        return (snapshot.Record, data);
    }

    /// <summary>
    /// A page of the caller's uploads, newest first (by creation, then by key), optionally in one stored state;
    /// <paramref name="after"/> continues after the last upload of the previous page. Unfinished uploads report what
    /// is stored now.
    /// </summary>
    public async Task<UploadPage> ListAsync(Caller caller, UploadState? state, UploadCursor? after, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        RefuseExpired(caller, "list uploads");
        if (caller.OnlyUpload is { } only)
            throw new UploadException(UploadErrors.OutOfScope, $"Your credentials are for upload '{Short(only)}' only; they do not allow listing uploads.");
        var filter = new UploadFilter { Owner = caller.Owner, State = state, After = after, Limit = limit + 1 };
        var uploads = new List<UploadSnapshot>(limit);
        bool more = false;
        await foreach (var record in _metadata.ListAsync(filter, cancellationToken))
        {
            if (uploads.Count == limit)
            {
                more = true;
                break;
            }

            uploads.Add(await SnapshotForListAsync(record, cancellationToken));
        }

        var next = more ? new UploadCursor(uploads[^1].Record.CreatedAt, uploads[^1].Record.Key.Hash) : null;
        return new UploadPage(uploads, next);
    }

    private async Task<UploadSnapshot> SnapshotForListAsync(UploadRecord record, CancellationToken cancellationToken)
    {
        if (record.State != UploadState.Receiving)
            return SnapshotOf(record);
        if (!_metadata.IsShared && _uploads.TryGet(record.Key, out var active) && !active.Deleted)
            return active.Snapshot(ExpiryOf);
        // Another node's upload, or one that finished meanwhile: what the store says now.
        return (await LoadAsync(record.Key, cancellationToken))?.Snapshot(ExpiryOf)
            ?? (await _metadata.FindAsync(record.Key, cancellationToken) is { } now ? SnapshotOf(now) : SnapshotOf(record));
    }

    // ------------------------------------------------------------------ creation

    /// <summary>
    /// Starts an upload under a new id: the spec's, else the one upload the caller's credentials are for
    /// (<see cref="Caller.OnlyUpload"/>), else one the engine makes.
    /// </summary>
    public async Task<UploadSnapshot> CreateAsync(Caller caller, UploadSpec spec, CancellationToken cancellationToken)
    {
        bool named = spec.Id is not null;
        spec = named ? spec : spec with { Id = caller.OnlyUpload ?? NewId() };
        var (snapshot, created) = await GetOrCreateAsync(caller, spec, cancellationToken);
        if (!created && !named && caller.OnlyUpload is { } only)
            throw new UploadException(UploadErrors.OutOfScope,
                $"Your credentials are for upload '{Short(only)}' only, and it exists already: go on with it instead of starting another.");
        if (!created)
            throw new UploadException(UploadErrors.SessionMismatch, $"An upload '{Short(spec.Id!)}' exists already; use another id or delete it first.");
        return snapshot;
    }

    /// <summary>
    /// The upload with the spec's id, created from the spec when there is none (chunk protocols start an upload with
    /// its first chunk). An existing upload of another protocol is refused; whether it matches the spec otherwise is
    /// the protocol's call.
    /// </summary>
    public async Task<(UploadSnapshot Snapshot, bool Created)> GetOrCreateAsync(Caller caller, UploadSpec spec, CancellationToken cancellationToken)
    {
        _policy.ValidateSpec(spec, caller);
        string id = spec.Id ?? throw new ArgumentException("The spec needs an id.", nameof(spec));
        var key = caller.KeyOf(id);
        var existing = await FindAsync(caller, id, cancellationToken); // expired credentials are refused here unless it exists
        if (existing is not null)
        {
            CheckProtocol(existing.Record, spec.Protocol);
            return (existing, false);
        }

        var record = new UploadRecord
        {
            Owner = caller.Owner,
            Client = caller.Client,
            Id = id,
            Protocol = spec.Protocol,
            Length = spec.Length,
            FileName = spec.FileName,
            RelativePath = string.IsNullOrEmpty(spec.RelativePath) ? null : spec.RelativePath,
            ContentType = UploadPolicy.CleanContentType(spec.ContentType),
            Properties = spec.Properties is null ? null : new Dictionary<string, string>(spec.Properties, StringComparer.Ordinal),
            Partial = spec.Partial,
            Parts = spec.Parts is null ? null : [.. spec.Parts],
            ExpectedSha256 = spec.ExpectedSha256,
            CreatedAt = _time.GetUtcNow(),
            State = UploadState.Receiving,
        };

        // Asked outside the stripe: the application may take a while to answer. No disk is reserved for the length.
        await _hooks.AuthorizeStartAsync(record, cancellationToken);
        if (record.Length is { } length)
        {
            _policy.EnsureFreeSpace(length, $"a file of {length} bytes");
            await _policy.EnsureFileRoomAsync(caller.Client, length, cancellationToken);
        }

        ActiveUpload active;
        using (await _uploads.LockAsync(key, cancellationToken))
        {
            // With shared stores an upload this node holds in memory may have been deleted (or finished) by another
            // node: the store, which just said there is none, decides; the atomic creation below settles any race.
            if (_uploads.TryGet(key, out var raced) && (!_metadata.IsShared || await _assembler.RefreshAsync(raced, cancellationToken)))
            {
                CheckProtocol(raced.Record, spec.Protocol);
                return (raced.Snapshot(ExpiryOf), false);
            }

            record.StorageState = await _data.PrepareAsync(record, cancellationToken);
            CreateResult result;
            try
            {
                result = await _metadata.CreateAsync(record, new CreationLimits(_options.MaxActiveUploadsPerClient, _options.MaxCompletedFilesPerClient), cancellationToken);
            }
            catch
            {
                await _data.DiscardPreparedAsync(record, CancellationToken.None);
                throw;
            }

            if (!result.Created)
            {
                await _data.DiscardPreparedAsync(record, CancellationToken.None); // what was prepared for the record that lost the race
                CheckProtocol(result.Record, spec.Protocol);
                return (SnapshotOf(result.Record), false);
            }

            active = new ActiveUpload(record, [], record.CreatedAt);
            _uploads.Add(active);
        }

        EngineLog.UploadStarted(_logger, id, spec.Protocol, spec.FileName, spec.Length);
        _hooks.Notify(_logger, id, record, static (h, r) => h.Started(r));
        if (record.Length == 0 && record.Parts is null)
            _assembler.Enqueue(active); // nothing to wait for: complete it
        return (active.Snapshot(ExpiryOf), true);
    }

    /// <summary>
    /// Starts a concatenation (tus <c>Upload-Concat: final</c>): a new upload made of the named partial uploads'
    /// bytes, in order, copied on the server as each part completes.
    /// </summary>
    public async Task<UploadSnapshot> ConcatenateAsync(Caller caller, UploadSpec spec, IReadOnlyList<string> partIds, CancellationToken cancellationToken)
    {
        if (partIds.Count == 0 || partIds.Count > _options.MaxConcatenationParts)
            throw new UploadException(UploadErrors.InvalidConcatenation,
                $"A concatenation names 1 to {_options.MaxConcatenationParts} partial uploads; this one names {partIds.Count}.");
        if (partIds.Distinct(StringComparer.Ordinal).Count() != partIds.Count)
            throw new UploadException(UploadErrors.InvalidConcatenation, "A partial upload is named more than once.");
        RefuseExpired(caller, "start an upload");

        var parts = new List<UploadSnapshot>(partIds.Count);
        foreach (var partId in partIds)
        {
            var part = await FindAsync(caller, partId, cancellationToken)
                ?? throw new UploadException(UploadErrors.InvalidConcatenation, $"There is no upload '{Short(partId)}' to concatenate.");
            if (!part.Record.Partial)
                throw new UploadException(UploadErrors.InvalidConcatenation, $"Upload '{Short(partId)}' is not a partial upload.");
            if (part.Record.State == UploadState.Failed)
                throw new UploadException(UploadErrors.InvalidConcatenation, $"Partial upload '{Short(partId)}' failed.");
            if (part.Record.ConcatenatedInto is not null)
                throw new UploadException(UploadErrors.PartInUse, $"Partial upload '{Short(partId)}' already belongs to another concatenation.");
            parts.Add(part);
        }

        long? length = null;
        if (parts.All(p => p.Length is not null))
        {
            length = 0;
            foreach (var part in parts)
            {
                length += part.Length!.Value;
                if (length > _policy.MaxLengthFor(caller))
                    _policy.ValidateLength(length.Value, caller);
            }
        }

        string id = spec.Id ?? NewId();
        var (snapshot, created) = await GetOrCreateAsync(caller, spec with { Id = id, Length = length, Partial = false, Parts = partIds }, cancellationToken);
        if (!created)
            throw new UploadException(UploadErrors.SessionMismatch, $"An upload '{Short(id)}' exists already.");
        foreach (var part in parts)
            await UpdateRecordAsync(caller.KeyOf(part.Id), r => r.ConcatenatedInto = id, cancellationToken);
        if (!_uploads.TryGet(caller.KeyOf(id), out var final))
            return snapshot; // completed at once (no bytes at all)
        _assembler.Enqueue(final);
        return final.Snapshot(ExpiryOf);
    }

    // ------------------------------------------------------------------ writes

    /// <summary>
    /// Writes a request body at <paramref name="offset"/>. Returns once the bytes it reports are durable (committed
    /// and journaled). With <see cref="WriteOptions.KeepPartial"/> a body that breaks off keeps the pieces that
    /// arrived, and the exception that ended it is rethrown after they are stored; without it nothing of a broken or
    /// refused body is kept. A body for bytes already stored is read and discarded.
    /// </summary>
    public async Task<UploadSnapshot> WriteAsync(Caller caller, string id, long offset, Stream body, WriteOptions options, CancellationToken cancellationToken)
    {
        var key = AdmittedKey(caller, id);
        var active = await ActiveForWriteAsync(caller, id, offset, body, options, cancellationToken);
        if (active is null)
            return (await FindAsync(caller, id, cancellationToken))!; // complete: the body was drained

        IUploadLock? writer = null;
        Interlocked.Increment(ref active.Writers);
        try
        {
            if (options.Append)
            {
                writer = await _locks.AcquireAsync(key, _options.WriterLockWait, cancellationToken)
                    ?? throw new UploadException(UploadErrors.UploadLocked,
                        "Another request is still writing to this upload and did not let go; try again in a moment.") { RetryAfterSeconds = 1 };
                if (_metadata.IsShared && !await _assembler.RefreshAsync(active, cancellationToken) && active.Deleted)
                    throw NotFound(id); // another node's bytes count: the offset is the shared one
                long stored;
                lock (active.Sync)
                {
                    if (active.Deleted)
                        throw NotFound(id);
                    stored = active.Record.State == UploadState.Complete ? active.Record.Length!.Value : active.Stored.ContiguousEnd;
                }

                if (offset != stored)
                    throw new UploadException(UploadErrors.OffsetMismatch,
                        $"The request writes at offset {offset}, but the server has {stored} bytes of this upload; resume from {stored}.") { Offset = stored };
            }

            var record = active.Record;
            CheckBounds(caller, record, offset, options);
            if (record.State == UploadState.Complete)
            {
                await DrainAsync(body, options.ExpectedLength, cancellationToken);
                return active.Snapshot(ExpiryOf);
            }

            if (!options.Append && options.ExpectedLength is { } exact && exact > 0)
            {
                bool stored;
                lock (active.Sync)
                    stored = active.Stored.Contains(offset, exact);
                if (stored)
                {
                    // A re-send of bytes already stored (a client that lost the answer): read and discard.
                    await DrainAsync(body, exact, cancellationToken);
                    EngineLog.AlreadyStored(_logger, id, offset, exact);
                    return active.Snapshot(ExpiryOf);
                }
            }

            await _policy.EnsureClientRoomAsync(record.Client ?? record.Owner, options.ExpectedLength ?? 0, cancellationToken);
            using var linked = writer is null ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, writer.ReleaseRequested);
            long limit = record.Length ?? _policy.MaxLengthFor(caller);
            if (options.ExpectedLength is { } most)
                limit = Math.Min(limit, offset + most);
            long end;
            try
            {
                end = await ReceiveAsync(active, offset, limit, body, options, linked?.Token ?? cancellationToken);
            }
            catch (OperationCanceledException) when (writer is not null && writer.ReleaseRequested.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                // A newer request for this upload asked for it: what arrived is kept; this request ends here.
                long kept;
                lock (active.Sync)
                    kept = active.Stored.ContiguousEnd;
                throw new UploadException(UploadErrors.Superseded,
                    $"A newer request for this upload took over; the server keeps {kept} bytes. Resume from there.") { Offset = kept };
            }

            if (options.CompletesUpload && (active.Record.Length is null || active.Record.Length != end))
                await DeclareLengthAsync(active, end, caller, cancellationToken);
            var snapshot = active.Snapshot(ExpiryOf);
            if (snapshot.AllStored)
                _assembler.Enqueue(active);
            return snapshot;
        }
        finally
        {
            Interlocked.Decrement(ref active.Writers);
            if (writer is not null)
                await writer.DisposeAsync();
        }
    }

    /// <summary>Declares the upload's length (tus deferred length, a stream's last request). Once set it cannot change.</summary>
    public async Task<UploadSnapshot> DeclareLengthAsync(Caller caller, string id, long length, CancellationToken cancellationToken)
    {
        var active = await LoadAsync(AdmittedKey(caller, id), cancellationToken);
        if (active is null)
        {
            var snapshot = await FindAsync(caller, id, cancellationToken) ?? throw NotFound(id);
            if (snapshot.Length != length)
                throw new UploadException(UploadErrors.LengthConflict, $"Upload '{Short(id)}' is {snapshot.WireState} with {snapshot.Length} bytes, not {length}.");
            return snapshot;
        }

        AdmitContinuing(caller, id, active.Record);
        await DeclareLengthAsync(active, length, caller, cancellationToken);
        var result = active.Snapshot(ExpiryOf);
        if (result.AllStored)
            _assembler.Enqueue(active);
        return result;
    }

    private async Task DeclareLengthAsync(ActiveUpload active, long length, Caller caller, CancellationToken cancellationToken)
    {
        _policy.ValidateLength(length, caller);
        await active.Gate.WaitAsync(cancellationToken);
        try
        {
            UploadRecord updated;
            lock (active.Sync)
            {
                var record = active.Record;
                if (record.Length is { } declared)
                {
                    if (declared != length)
                        throw new UploadException(UploadErrors.LengthConflict, $"The upload's length is {declared} bytes; it cannot become {length}.");
                    return;
                }

                long reached = active.Stored.Count == 0 ? 0 : active.Stored.Snapshot()[^1].End;
                foreach (var piece in active.Pending)
                    reached = Math.Max(reached, piece.Range.End);
                if (length < reached)
                    throw new UploadException(UploadErrors.LengthConflict,
                        $"The server already has bytes up to {reached}; the length cannot be {length}.") { Offset = active.Stored.ContiguousEnd };
                updated = record.Clone();
                updated.Length = length;
            }

            await _metadata.SaveAsync(updated, cancellationToken);
            lock (active.Sync)
                active.Record = updated;
            EngineLog.LengthDeclared(_logger, updated.Id, length);
        }
        finally
        {
            active.Gate.Release();
        }
    }

    // Finds the upload a write is for. Null when it is complete and the body was drained (re-sent data changes nothing).
    private async Task<ActiveUpload?> ActiveForWriteAsync(Caller caller, string id, long offset, Stream body, WriteOptions options, CancellationToken cancellationToken)
    {
        var key = caller.KeyOf(id);
        var active = await LoadAsync(key, cancellationToken);
        if (active is not null)
        {
            AdmitContinuing(caller, id, active.Record);
            CheckWritable(active.Record, options);
            return active;
        }

        var record = await _metadata.FindAsync(key, cancellationToken);
        AdmitContinuing(caller, id, record);
        if (record is null)
            throw NotFound(id);
        CheckWritable(record, options);
        if (options.Append && offset != record.Length)
            throw new UploadException(UploadErrors.OffsetMismatch,
                $"Upload '{Short(id)}' is complete with {record.Length} bytes; nothing more can be written at {offset}.") { Offset = record.Length };
        await DrainAsync(body, options.ExpectedLength, cancellationToken);
        return null;
    }

    private static void CheckWritable(UploadRecord record, WriteOptions options)
    {
        CheckProtocol(record, options.Protocol);
        if (record.State == UploadState.Failed)
            throw new UploadException(UploadErrors.UploadFailed,
                $"Upload '{Short(record.Id)}' failed on the server ({record.Failure}). Delete it and upload the file again.");
        if (record.Parts is not null)
            throw new UploadException(UploadErrors.UploadNotWritable, $"Upload '{Short(record.Id)}' is a concatenation; its bytes come from its parts.");
    }

    private void CheckBounds(Caller caller, UploadRecord record, long offset, WriteOptions options)
    {
        if (offset < 0)
            throw new UploadException(UploadErrors.InvalidParameter, "The offset must not be negative.");
        long limit = record.Length ?? _policy.MaxLengthFor(caller);
        long need = options.ExpectedLength ?? 0;
        if (need < 0)
            throw new UploadException(UploadErrors.InvalidParameter, "The body length must not be negative.");
        if (offset > limit || need > limit - offset)
        {
            if (record.Length is { } length)
                throw new UploadException(UploadErrors.BeyondLength,
                    $"The upload is {length} bytes long; {need} bytes at offset {offset} go past its end.");
            _policy.ValidateLength(offset + need, caller);
        }
    }

    /// <summary>
    /// Streams the body into staged pieces cut at the store's alignment. Streaming writes hand each piece to the
    /// assembler as soon as it is full; all-or-nothing writes hand them over only after the body arrived whole and
    /// verified. Returns the end offset of what was written.
    /// </summary>
    private async Task<long> ReceiveAsync(ActiveUpload active, long offset, long limit, Stream body, WriteOptions options, CancellationToken cancellationToken)
    {
        bool keepPartial = options.KeepPartial && options.Verifier is null;
        var record = active.Record;
        long alignment = _data.PieceAlignmentFor(record);
        var handed = new List<PendingPiece>();
        var staged = new List<IStagedPiece>();
        IStagedPiece? current = null;
        long position = offset;
        Exception? failure = null;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ReadBufferSize);
        try
        {
            bool end = false;
            while (!end)
            {
                // Fill the buffer before each write: few system calls, nothing allocated per body. When the body breaks
                // off, the bytes already in the buffer arrived too: a streaming write stages them before it ends.
                int filled = 0;
                ExceptionDispatchInfo? broken = null;
                try
                {
                    while (filled < buffer.Length)
                    {
                        int read = await body.ReadAsync(buffer.AsMemory(filled), cancellationToken);
                        if (read == 0)
                        {
                            end = true;
                            break;
                        }

                        filled += read;
                    }
                }
                catch (Exception ex) when (keepPartial)
                {
                    broken = ExceptionDispatchInfo.Capture(ex);
                    end = true;
                }

                if (filled > limit - position)
                {
                    // Not the body the client declared: the piece in progress is dropped, not kept as a prefix (so an
                    // over-long body never completes an upload with its first bytes).
                    current?.Dispose();
                    current = null;
                    throw TooLong(record, offset, limit, options);
                }
                var bytes = buffer.AsMemory(0, filled);
                while (!bytes.IsEmpty)
                {
                    if (current is null)
                    {
                        _policy.EnsureFreeSpace(Math.Min(alignment, limit - position), "more data");
                        current = _data.Stage(record, position);
                    }

                    long boundary = ((current.Offset / alignment) + 1) * alignment;
                    int take = (int)Math.Min(bytes.Length, boundary - position);
                    await current.WriteAsync(bytes[..take], CancellationToken.None); // bytes that arrived are staged even when the request ends
                    options.Verifier?.Observe(bytes.Span[..take]);
                    position += take;
                    bytes = bytes[take..];
                    if (position == boundary)
                    {
                        var full = current;
                        current = null;
                        Hand(full);
                    }
                }

                broken?.Throw();
            }

            if (options.ExpectedLength is { } exact && !options.KeepPartial && position != offset + exact)
                throw new UploadException(UploadErrors.ChunkLengthMismatch,
                    $"The body must be {exact} bytes, but it had {position - offset}.");
            if (current is not null)
            {
                var last = current;
                current = null;
                Hand(last);
            }

            if (options.Verifier is { } verifier)
                await verifier.VerifyAsync(cancellationToken);
            if (!keepPartial)
            {
                foreach (var piece in staged)
                    handed.Add(Enqueue(active, piece));
                staged.Clear();
            }
        }
        catch (Exception ex) when (keepPartial)
        {
            failure = ex;
            var partial = current;
            current = null;
            if (partial is { Length: > 0 })
                Hand(partial);
            else
                partial?.Dispose();
        }
        catch
        {
            current?.Dispose();
            foreach (var piece in staged)
                piece.Dispose();
            throw;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        long bodyEnded = Stopwatch.GetTimestamp();

        // Acknowledge only what is durable: wait for every handed piece, even when the client is gone.
        Exception? storeFailure = null;
        foreach (var piece in handed)
        {
            try
            {
                await piece.Stored.Task;
            }
            catch (Exception ex)
            {
                storeFailure ??= ex;
            }
        }

        if (storeFailure is not null)
            ExceptionDispatchInfo.Throw(storeFailure);
        if (failure is not null)
        {
            string reason = failure.GetType().Name;
            if (position > offset)
                EngineLog.PrefixKept(_logger, record.Id, position - offset, reason);
            ExceptionDispatchInfo.Throw(failure);
        }

        if (position > offset)
        {
            _hooks.Notify(_logger, record.Id, (Record: record, Bytes: position - offset, Took: Stopwatch.GetElapsedTime(bodyEnded)),
                static (h, s) => h.WriteAcknowledged(s.Record, s.Bytes, s.Took));
        }

        if (position > offset && _logger.IsEnabled(LogLevel.Debug))
        {
            long stored;
            lock (active.Sync)
                stored = active.Stored.TotalLength;
            EngineLog.BytesStored(_logger, record.Id, offset, position - offset, stored);
        }
        return position;

        void Hand(IStagedPiece piece)
        {
            piece.Seal();
            if (keepPartial)
                handed.Add(Enqueue(active, piece));
            else
                staged.Add(piece);
        }
    }

    private PendingPiece Enqueue(ActiveUpload active, IStagedPiece piece)
    {
        var pending = new PendingPiece(piece);
        lock (active.Sync)
        {
            if (active.Deleted)
            {
                piece.Dispose();
                throw NotFound(active.Key.Id);
            }

            active.Pending.Add(pending);
            active.LastActivity = _time.GetUtcNow();
        }

        _assembler.Enqueue(active);
        return pending;
    }

    private static UploadException TooLong(UploadRecord record, long offset, long limit, WriteOptions options) =>
        options.ExpectedLength is { } expected && (record.Length is null || offset + expected <= record.Length)
            ? new UploadException(UploadErrors.ChunkLengthMismatch, $"The body must be {expected} bytes, but it is longer.")
            : record.Length is { } length
                ? new UploadException(UploadErrors.BeyondLength, $"The body goes past the end of the upload ({length} bytes).")
                : new UploadException(UploadErrors.FileTooLarge, $"The file would be larger than the {limit} bytes you may upload.");

    private static async Task DrainAsync(Stream body, long? expected, CancellationToken cancellationToken)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            long total = 0;
            int read;
            while ((read = await body.ReadAsync(buffer.AsMemory(), cancellationToken)) > 0)
            {
                total += read;
                if (expected is { } max && total > max)
                    throw new UploadException(UploadErrors.ChunkLengthMismatch, $"The body must be {max} bytes, but it is longer.");
            }

            if (expected is { } exact && total != exact)
                throw new UploadException(UploadErrors.ChunkLengthMismatch, $"The body must be {exact} bytes, but it had {total}.");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // ------------------------------------------------------------------ deletion and expiry

    /// <summary>Deletes an upload: its record, its data and any finished file. A writer still at work is asked to stop. False when unknown.</summary>
    public async Task<bool> DeleteAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        var key = AdmittedKey(caller, id);
        RefuseExpired(caller, "delete an upload");
        return await DeleteAsync(key, DeletionReason.Request, cancellationToken);
    }

    private async Task<bool> DeleteAsync(UploadKey key, DeletionReason reason, CancellationToken cancellationToken)
    {
        // Take the writer lock so that a sequential writer stops; go on without it if the writer does not let go.
        await using var writer = await _locks.AcquireAsync(key, TimeSpan.FromSeconds(2), cancellationToken);
        UploadRecord? record;
        using (await _uploads.LockAsync(key, cancellationToken))
        {
            if (_uploads.TryGet(key, out var active))
            {
                List<PendingPiece> waiting;
                lock (active.Sync)
                {
                    active.Deleted = true;
                    waiting = [.. active.Pending];
                    active.Pending.Clear();
                    record = active.Record;
                }

                _uploads.Remove(active);
                var deleted = new UploadException(UploadErrors.SessionMismatch, $"Upload '{Short(key.Id)}' was deleted while this data arrived.");
                foreach (var piece in waiting)
                {
                    piece.Stored.TrySetException(deleted);
                    piece.Piece.Dispose();
                }

                // Wait for the assembler to leave the data; it checks Deleted before its next step.
                await active.Gate.WaitAsync(CancellationToken.None);
                lock (active.Sync)
                    Assembler.AbandonStreamHash(active); // staged pieces kept for the hash
                active.Gate.Release();
                active.Finished.TrySetResult();
            }
            else
            {
                record = await _metadata.FindAsync(key, cancellationToken);
            }

            // With shared stores the record in memory may be stale: another node may have deleted the upload (then
            // there is nothing to delete) or deleted and started it again (then its data is the new record's).
            if (_metadata.IsShared && active is not null)
                record = await _metadata.FindAsync(key, cancellationToken);
            if (record is null)
                return false;
            await _data.DeleteAsync(record, cancellationToken);
            await _metadata.DeleteAsync(key, cancellationToken);
        }

        EngineLog.UploadDeleted(_logger, key.Id);
        _hooks.Notify(_logger, key.Id, (Record: record, Reason: reason), static (h, s) => h.Deleted(s.Record, s.Reason));
        return true;
    }

    /// <summary>
    /// Removes what has outlived its use: uploads that never received a byte after <see cref="UploadOptions.UnstartedUploadExpiry"/>,
    /// uploads idle for <see cref="UploadOptions.IdleExpiry"/>, completed files past <see cref="UploadOptions.CompletedRetention"/>
    /// when set, and staging or orphaned data older than <see cref="UploadOptions.TempFileMaxAge"/>.
    /// </summary>
    public async Task<SweepResult> SweepAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        int expired = 0, retired = 0;
        foreach (var active in _uploads.All.ToList())
        {
            if (!HasExpired(active, now))
                continue;
            // With shared stores this node's view may be stale: other nodes may have received bytes since, or completed
            // the upload. Only the store's view may expire it (deleting on a stale view deleted completed files).
            if (_metadata.IsShared && (!await _assembler.RefreshAsync(active, cancellationToken) || !HasExpired(active, now)))
                continue;
            if (await DeleteAsync(active.Key, DeletionReason.Expired, cancellationToken))
                expired++;
        }

        if (_metadata.IsShared)
        {
            // Every node sweeps the shared store (a delete that another node made first is a no-op). Uploads in
            // progress on this node are skipped; completions a dead node left half done are picked up here.
            var idle = _metadata.ListAsync(new UploadFilter { State = UploadState.Receiving, IdleBefore = now - _options.IdleExpiry, Limit = 1000 }, cancellationToken);
            var empty = _metadata.ListAsync(new UploadFilter { State = UploadState.Receiving, EmptyCreatedBefore = now - _options.UnstartedUploadExpiry, Limit = 1000 }, cancellationToken);
            foreach (var source in new[] { idle, empty })
            {
                await foreach (var record in source)
                {
                    if (_uploads.TryGet(record.Key, out var local) && (Volatile.Read(ref local.Writers) > 0 || local.Pending.Count > 0))
                        continue;
                    if (await DeleteAsync(record.Key, DeletionReason.Expired, cancellationToken))
                        expired++;
                }
            }

            await foreach (var record in _metadata.ListAsync(new UploadFilter { State = UploadState.Receiving, FullyStored = true, Limit = 1000 }, cancellationToken))
            {
                if (await LoadAsync(record.Key, cancellationToken) is { } pending)
                    _assembler.Enqueue(pending);
            }
        }

        if (_options.CompletedRetention is { } keep)
        {
            await foreach (var record in _metadata.ListAsync(new UploadFilter { State = UploadState.Complete, CompletedBefore = now - keep }, cancellationToken))
            {
                if (await DeleteAsync(record.Key, DeletionReason.Retention, cancellationToken))
                    retired++;
            }
        }

        int orphans = await _data.SweepAsync(now - _options.TempFileMaxAge,
            async (hash, ct) => await _metadata.FindByHashAsync(hash, ct) is not null, cancellationToken);
        var result = new SweepResult(expired, retired, orphans);
        if (result.Total > 0)
            EngineLog.Swept(_logger, expired, retired, orphans);
        return result;
    }

    private bool HasExpired(ActiveUpload active, DateTimeOffset now)
    {
        lock (active.Sync)
            return Volatile.Read(ref active.Writers) == 0 && active.Pending.Count == 0
                && ExpiryOf(active.Record, active.LastActivity, active.Stored.TotalLength) < now;
    }

    // ------------------------------------------------------------------ what the caller's credentials allow

    // Every operation that names an upload starts here: an id the policy accepts, within what the caller's credentials
    // name; the key it is stored under.
    private UploadKey AdmittedKey(Caller caller, string id)
    {
        _policy.ValidateId(id);
        Admit(caller, id);
        return caller.KeyOf(id);
    }

    // Upload-scoped credentials name only their upload.
    private static void Admit(Caller caller, string id)
    {
        if (caller.OnlyUpload is { } only && !string.Equals(only, id, StringComparison.Ordinal))
            throw new UploadException(UploadErrors.OutOfScope,
                $"Your credentials are for upload '{Short(only)}' only; they do not allow upload '{Short(id)}'.");
    }

    // Expired credentials in their grace go on only with an upload they could have started: one created before they
    // expired (an upload started later is some newer credentials' business, and a new one they may not start).
    private static void AdmitContinuing(Caller caller, string id, UploadRecord? record)
    {
        if (caller.ExpiredAt is { } expired && (record is null || record.CreatedAt >= expired))
            throw new UploadException(UploadErrors.Unauthenticated,
                $"Your credentials expired at {expired:u}; they can still finish an upload begun before then, but '{Short(id)}' is not one. Get new credentials to start an upload.");
    }

    private static void RefuseExpired(Caller caller, string what)
    {
        if (caller.ExpiredAt is { } expired)
            throw new UploadException(UploadErrors.Unauthenticated,
                $"Your credentials expired at {expired:u}; they can still finish an upload begun before then, but not {what}. Get new credentials.");
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>The in-memory state of an unfinished upload, loading it from the metadata store when this process has not seen it.</summary>
    private async Task<ActiveUpload?> LoadAsync(UploadKey key, CancellationToken cancellationToken)
    {
        if (_uploads.TryGet(key, out var active))
        {
            if (!_metadata.IsShared)
                return active.Deleted ? null : active;
            // With a shared store another node may have stored bytes, finished or deleted the upload meanwhile, or
            // deleted it and started a new one under the same id, which is loaded afresh below.
            if (!active.Deleted && await _assembler.RefreshAsync(active, cancellationToken))
                return active;
            if (!active.Replaced)
                return null;
        }

        using (await _uploads.LockAsync(key, cancellationToken))
        {
            if (_uploads.TryGet(key, out active))
                return active.Deleted ? null : active;
            var record = await _metadata.FindAsync(key, cancellationToken);
            if (record is not { State: UploadState.Receiving })
                return null;
            var ranges = await _metadata.ReadRangesAsync(record, cancellationToken);
            active = new ActiveUpload(record, ranges, record.LastActivity ?? _time.GetUtcNow());
            _uploads.Add(active);
            if (active.AllStored)
                _assembler.Enqueue(active);
            return active;
        }
    }

    private async Task UpdateRecordAsync(UploadKey key, Action<UploadRecord> change, CancellationToken cancellationToken)
    {
        var active = await LoadAsync(key, cancellationToken);
        if (active is not null)
        {
            await active.Gate.WaitAsync(cancellationToken);
            try
            {
                var updated = active.Record.Clone();
                change(updated);
                await _metadata.SaveAsync(updated, cancellationToken);
                lock (active.Sync)
                    active.Record = updated;
                return;
            }
            finally
            {
                active.Gate.Release();
            }
        }

        if (await _metadata.FindAsync(key, cancellationToken) is { } record)
        {
            change(record);
            await _metadata.SaveAsync(record, cancellationToken);
        }
    }

    private UploadSnapshot SnapshotOf(UploadRecord record)
    {
        IReadOnlyList<ByteRange> ranges = record.State == UploadState.Complete && record.Length is > 0 ? [new ByteRange(0, record.Length.Value)] : [];
        var at = record.CompletedAt ?? record.CreatedAt;
        return new UploadSnapshot(record, ranges, at, ExpiryOf(record, at, record.Length ?? 0));
    }

    /// <summary>
    /// When the upload goes: a receiving one after its idle (or unstarted) expiry, a complete one after the
    /// completed retention from its completion, whether it is still held in memory or read from the metadata store.
    /// </summary>
    private DateTimeOffset? ExpiryOf(UploadRecord record, DateTimeOffset lastActivity, long storedBytes) => record.State switch
    {
        UploadState.Complete => _options.CompletedRetention is { } keep ? (record.CompletedAt ?? lastActivity) + keep : null,
        UploadState.Receiving when storedBytes == 0 && record.Parts is null =>
            Min(record.CreatedAt + _options.UnstartedUploadExpiry, lastActivity + _options.IdleExpiry),
        UploadState.Receiving => lastActivity + _options.IdleExpiry,
        _ => null,
    };

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private static void CheckProtocol(UploadRecord record, string protocol)
    {
        if (!string.Equals(record.Protocol, protocol, StringComparison.Ordinal))
            throw new UploadException(UploadErrors.WrongProtocol,
                $"Upload '{Short(record.Id)}' was started with the {record.Protocol} protocol; it cannot be written with {protocol}. Use another id.");
    }

    private static UploadException NotFound(string id) =>
        new(UploadErrors.UploadNotFound, $"There is no upload '{Short(id)}' (it may have expired, been deleted or never started).");

    internal static string Short(string value) => value.Length <= 64 ? value : string.Concat(value.AsSpan(0, 64), "…");

    private static string NewId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
}
