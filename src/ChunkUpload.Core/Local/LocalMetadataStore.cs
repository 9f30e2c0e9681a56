using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Threading.Channels;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Ranges;
using ChunkUpload.Core.Uploads;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Core.Local;

/// <summary>
/// The metadata store on local disk: a folder per upload with its record (<c>session.json</c>, rewritten atomically
/// by temp file and rename) and its journal of stored ranges (appended and flushed before a range is acknowledged),
/// plus the completion outbox (a file per event, indexed in memory). Per-client usage (unfinished uploads and their
/// bytes, finished files and theirs) is counted in memory and rebuilt at start-up; a client holding nothing has no
/// entry. One process owns a root: this store is not shared between nodes.
/// </summary>
public sealed partial class LocalMetadataStore : IUploadMetadataStore, ICompletionOutbox
{
    private const int JournalRecordSize = 16;
    private const int StripeCount = 64;

    private readonly LocalLayout _layout;
    private readonly bool _flush;
    private readonly ILogger<LocalMetadataStore> _logger;
    private readonly SemaphoreSlim[] _stripes = Enumerable.Range(0, StripeCount).Select(_ => new SemaphoreSlim(1, 1)).ToArray();

    // Usage by upload (to undo it when the upload ends or goes) and by client (what quotas read).
    private readonly Lock _usageLock = new();
    private readonly Dictionary<string, (string Client, long Bytes)> _unfinished = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Client, long Bytes)> _completed = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Usage> _byClient = new(StringComparer.Ordinal);

    private readonly OwnerIndex _owners = new();

    private readonly Lock _outboxLock = new();
    private readonly SortedDictionary<string, CompletionEvent> _pending = new(StringComparer.Ordinal);
    private readonly Channel<bool> _signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    public LocalMetadataStore(LocalLayout layout, IOptions<UploadOptions> options, ILogger<LocalMetadataStore> logger)
    {
        _layout = layout;
        _flush = options.Value.FlushToDisk;
        _logger = logger;
    }

    /// <summary>One process owns a local root.</summary>
    public bool IsShared => false;

    /// <summary>One process: the engine's own gate makes completion happen once.</summary>
    public Task<bool> TryClaimCompletionAsync(UploadKey key, string claimant, TimeSpan lease, CancellationToken cancellationToken) => Task.FromResult(true);

    public Task<IReadOnlyList<RecoveredUpload>> OpenAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(_layout.Sessions);
        Directory.CreateDirectory(_layout.Outbox);
        Directory.CreateDirectory(_layout.Parts);
        var recovered = new List<RecoveredUpload>();
        foreach (var directory in Directory.EnumerateDirectories(_layout.Sessions))
        {
            string hash = Path.GetFileName(directory);
            try
            {
                if (Load(hash) is { } upload)
                    recovered.Add(upload);
            }
            catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
            {
                LogUnreadable(_logger, ex, directory);
            }
        }

        LoadOutbox();
        return Task.FromResult<IReadOnlyList<RecoveredUpload>>(recovered);
    }

    private RecoveredUpload? Load(string hash)
    {
        string directory = _layout.SessionDirectory(hash);
        string path = _layout.RecordPath(hash);
        if (!File.Exists(path))
        {
            LocalLayout.DeleteDirectory(directory); // creation was interrupted before the record existed
            return null;
        }

        var record = Read(path);
        if (record.Key.Hash != hash)
            throw new JsonException("the record does not describe this folder");
        MigrateLegacy(hash, record);
        if (record.State == UploadState.Complete)
            TrackCompleted(record);
        _owners.Add(record);
        if (record.State != UploadState.Receiving)
        {
            LocalLayout.TryDelete(_layout.JournalPath(hash)); // a finished upload's journal is a leftover of its completion
            return null;
        }

        var ranges = ReadJournal(hash, record.Length);
        long bytes = new RangeSet(ranges).TotalLength;
        Track(record, bytes);
        var lastActivity = record.CreatedAt;
        if (File.Exists(_layout.JournalPath(hash)) && new DateTimeOffset(File.GetLastWriteTimeUtc(_layout.JournalPath(hash))) is var written && written > lastActivity)
            lastActivity = written;
        return new RecoveredUpload(record, ranges, lastActivity);
    }

    // Version 1 kept the data file and its journal in the session folder, and the chunk geometry in the record.
    private void MigrateLegacy(string hash, UploadRecord record)
    {
        if (record.Version >= UploadRecord.CurrentVersion)
            return;
        string directory = _layout.SessionDirectory(hash);
        if (File.Exists(Path.Combine(directory, "data.part")))
            File.Move(Path.Combine(directory, "data.part"), _layout.PartPath(hash), overwrite: true);
        if (File.Exists(Path.Combine(directory, "assembled.journal")))
            File.Move(Path.Combine(directory, "assembled.journal"), _layout.JournalPath(hash), overwrite: true);
        LocalLayout.DeleteDirectory(Path.Combine(directory, "chunks"));
        record.Protocol = string.IsNullOrEmpty(record.Protocol) ? "resumable" : record.Protocol;
        record.Properties ??= new Dictionary<string, string>(StringComparer.Ordinal);
        if (record.LegacyChunkSize is { } chunkSize)
            record.Properties["chunkSize"] = chunkSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (record.LegacyTotalChunks is { } totalChunks)
            record.Properties["totalChunks"] = totalChunks.ToString(System.Globalization.CultureInfo.InvariantCulture);
        record.LegacyChunkSize = null;
        record.LegacyTotalChunks = null;
        record.Version = UploadRecord.CurrentVersion;
        Write(record);
    }

    public async Task<CreateResult> CreateAsync(UploadRecord record, CreationLimits limits, CancellationToken cancellationToken)
    {
        string hash = record.Key.Hash;
        var stripe = _stripes[StripeOf(hash)];
        await stripe.WaitAsync(cancellationToken);
        try
        {
            if (File.Exists(_layout.RecordPath(hash)))
                return new CreateResult(Read(_layout.RecordPath(hash)), Created: false);

            string client = ClientOf(record);
            lock (_usageLock)
            {
                var usage = _byClient.GetValueOrDefault(client);
                if (usage.Active >= limits.MaxActiveUploads)
                    throw new UploadException(UploadErrors.TooManyUploads,
                        $"You have {limits.MaxActiveUploads} unfinished uploads; finish or delete some before starting more.") { RetryAfterSeconds = 60 };
                if (usage.Files >= limits.MaxCompletedFiles)
                    throw new UploadException(UploadErrors.CompletedFilesQuotaExceeded,
                        $"You keep {usage.Files} finished files and may keep {limits.MaxCompletedFiles}; delete some before starting another upload.");
            }

            string directory = _layout.SessionDirectory(hash);
            if (Directory.Exists(directory))
                LocalLayout.DeleteDirectory(directory); // a folder without a record: an interrupted creation
            Directory.CreateDirectory(directory);
            try
            {
                Write(record);
                if (_flush)
                    NativeFileSystem.FlushDirectory(_layout.Sessions);
            }
            catch
            {
                LocalLayout.DeleteDirectory(directory);
                throw;
            }

            if (record.State == UploadState.Receiving)
                Track(record, 0);
            _owners.Add(record);
            return new CreateResult(record, Created: true);
        }
        finally
        {
            stripe.Release();
        }
    }

    public Task<UploadRecord?> FindAsync(UploadKey key, CancellationToken cancellationToken) => FindByHashAsync(key.Hash, cancellationToken);

    public Task<UploadRecord?> FindByHashAsync(string keyHash, CancellationToken cancellationToken)
    {
        if (!UploadKey.IsHash(keyHash))
            return Task.FromResult<UploadRecord?>(null);
        try
        {
            return Task.FromResult<UploadRecord?>(Read(_layout.RecordPath(keyHash)));
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return Task.FromResult<UploadRecord?>(null);
        }
    }

    public Task SaveAsync(UploadRecord record, CancellationToken cancellationToken)
    {
        Write(record);
        if (record.State != UploadState.Receiving)
            Untrack(record.Key.Hash);
        return Task.CompletedTask;
    }

    public Task AppendRangesAsync(UploadRecord record, IReadOnlyList<ByteRange> ranges, CancellationToken cancellationToken)
    {
        if (ranges.Count == 0)
            return Task.CompletedTask;
        string hash = record.Key.Hash;
        byte[] records = new byte[ranges.Count * JournalRecordSize];
        long bytes = 0;
        for (int i = 0; i < ranges.Count; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(records.AsSpan(i * JournalRecordSize), ranges[i].Offset);
            BinaryPrimitives.WriteInt64LittleEndian(records.AsSpan((i * JournalRecordSize) + 8), ranges[i].Length);
            bytes += ranges[i].Length;
        }

        string path = _layout.JournalPath(hash);
        bool created = !File.Exists(path);
        using (var journal = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read, 1))
        {
            // A torn record from an earlier crash would misalign everything after it: start at a record boundary.
            if (journal.Length % JournalRecordSize != 0)
                journal.SetLength(journal.Length - (journal.Length % JournalRecordSize));
            journal.Seek(0, SeekOrigin.End);
            journal.Write(records);
            journal.Flush(flushToDisk: _flush);
        }

        if (created && _flush)
            NativeFileSystem.FlushDirectory(_layout.SessionDirectory(hash));
        lock (_usageLock)
        {
            if (_unfinished.TryGetValue(hash, out var entry))
            {
                _unfinished[hash] = (entry.Client, entry.Bytes + bytes);
                var usage = _byClient[entry.Client];
                _byClient[entry.Client] = usage with { Bytes = usage.Bytes + bytes };
            }
        }

        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<ByteRange>> ReadRangesAsync(UploadRecord record, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ByteRange>>(ReadJournal(record.Key.Hash, record.Length));

    public Task ResetRangesAsync(UploadRecord record, CancellationToken cancellationToken)
    {
        LocalLayout.TryDelete(_layout.JournalPath(record.Key.Hash));
        return Task.CompletedTask;
    }

    public Task CompleteAsync(UploadRecord record, CompletionEvent? completion, CancellationToken cancellationToken)
    {
        if (completion is not null)
            RecordEvent(completion);
        Write(record);
        Untrack(record.Key.Hash);
        TrackCompleted(record);
        LocalLayout.TryDelete(_layout.JournalPath(record.Key.Hash));
        return Task.CompletedTask;
    }

    public Task<bool> DeleteAsync(UploadKey key, CancellationToken cancellationToken)
    {
        string directory = _layout.SessionDirectory(key.Hash);
        bool existed = Directory.Exists(directory);
        Untrack(key.Hash);
        UntrackCompleted(key.Hash);
        _owners.Remove(key);
        LocalLayout.DeleteDirectory(directory);
        return Task.FromResult(existed);
    }

    public async IAsyncEnumerable<UploadRecord> ListAsync(UploadFilter filter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (filter.IdleBefore is not null || filter.EmptyCreatedBefore is not null || filter.FullyStored)
            throw new NotSupportedException("The local store keeps activity in memory (the engine's registry); these filters are for shared stores.");
        await Task.CompletedTask;
        var matches = filter.Owner is { } owner ? ListOwner(owner, filter, cancellationToken) : Scan(filter, cancellationToken);
        foreach (var record in matches)
            yield return record;
    }

    // One owner's records, read in listing order from the index until the page is full.
    private IEnumerable<UploadRecord> ListOwner(string owner, UploadFilter filter, CancellationToken cancellationToken)
    {
        int wanted = filter.Limit ?? int.MaxValue;
        OwnerIndex.Entry? after = filter.After is { } cursor ? new OwnerIndex.Entry(cursor.CreatedAt, cursor.KeyHash) : null;
        while (wanted > 0)
        {
            var entries = _owners.Next(owner, after, Math.Min(wanted, 256));
            if (entries.Count == 0)
                yield break;
            foreach (var entry in entries)
            {
                cancellationToken.ThrowIfCancellationRequested();
                after = entry;
                if (TryRead(entry.Hash) is { } record && record.Owner == owner && Matches(record, filter))
                {
                    yield return record;
                    if (--wanted == 0)
                        yield break;
                }
            }
        }
    }

    // Every record (no owner given: the sweeper). With a limit only that many are held at a time.
    private List<UploadRecord> Scan(UploadFilter filter, CancellationToken cancellationToken)
    {
        int limit = filter.Limit ?? int.MaxValue;
        // The record that would be listed last is at the head, so the heap keeps the first `limit` of the listing.
        var kept = new PriorityQueue<UploadRecord, UploadRecord>(Comparer<UploadRecord>.Create(static (a, b) => ListingOrder(b, a)));
        foreach (var directory in Directory.EnumerateDirectories(_layout.Sessions))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (TryRead(Path.GetFileName(directory)) is not { } record || !Matches(record, filter))
                continue;
            kept.Enqueue(record, record);
            if (kept.Count > limit)
                kept.Dequeue();
        }

        var found = new List<UploadRecord>(kept.Count);
        while (kept.TryDequeue(out var record, out _))
            found.Add(record);
        found.Reverse();
        return found;
    }

    private static bool Matches(UploadRecord record, UploadFilter filter) =>
        (filter.Owner is null || record.Owner == filter.Owner)
        && (filter.State is null || record.State == filter.State)
        && (filter.CompletedBefore is null || (record.CompletedAt is { } at && at < filter.CompletedBefore))
        && (filter.After is null || filter.After.IsFollowedBy(record.CreatedAt, record.Key.Hash));

    // Newest first, ties by key hash descending (as every store lists).
    private static int ListingOrder(UploadRecord a, UploadRecord b)
    {
        int byTime = b.CreatedAt.CompareTo(a.CreatedAt);
        return byTime != 0 ? byTime : string.CompareOrdinal(b.Key.Hash, a.Key.Hash);
    }

    private UploadRecord? TryRead(string hash)
    {
        if (!UploadKey.IsHash(hash))
            return null;
        try
        {
            return Read(_layout.RecordPath(hash));
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            return null; // gone meanwhile, or being created
        }
    }

    public Task<ClientUsage> GetUsageAsync(string client, CancellationToken cancellationToken)
    {
        lock (_usageLock)
        {
            var usage = _byClient.GetValueOrDefault(client);
            return Task.FromResult(new ClientUsage(usage.Active, usage.Bytes, usage.Files, usage.FileBytes));
        }
    }

    // ----- outbox -----

    public ValueTask WaitForWorkAsync(CancellationToken cancellationToken)
    {
        var read = _signal.Reader.ReadAsync(cancellationToken);
        return read.IsCompletedSuccessfully ? ValueTask.CompletedTask : new ValueTask(read.AsTask());
    }

    public Task<IReadOnlyList<CompletionEvent>> PendingAsync(CancellationToken cancellationToken)
    {
        lock (_outboxLock)
            return Task.FromResult<IReadOnlyList<CompletionEvent>>(_pending.Values.OrderBy(e => e.CompletedAt).ToList());
    }

    public Task<int> CountPendingAsync(CancellationToken cancellationToken)
    {
        lock (_outboxLock)
            return Task.FromResult(_pending.Count);
    }

    public Task AcknowledgeAsync(string eventId, CancellationToken cancellationToken)
    {
        if (!IsEventId(eventId))
            throw new ArgumentException("Not an outbox event id.", nameof(eventId));
        LocalLayout.TryDelete(Path.Combine(_layout.Outbox, eventId + ".json"));
        lock (_outboxLock)
            _pending.Remove(eventId);
        return Task.CompletedTask;
    }

    private void RecordEvent(CompletionEvent completion)
    {
        if (!IsEventId(completion.Id))
            throw new ArgumentException("Not an outbox event id.", nameof(completion));
        string path = Path.Combine(_layout.Outbox, completion.Id + ".json");
        WriteAtomically(path, UploadJson.Serialize(completion), _layout.Outbox);
        lock (_outboxLock)
            _pending[completion.Id] = completion;
        _signal.Writer.TryWrite(true);
    }

    private void LoadOutbox()
    {
        foreach (var file in Directory.EnumerateFiles(_layout.Outbox, "*.json"))
        {
            try
            {
                if (UploadJson.DeserializeEvent(File.ReadAllBytes(file)) is { } e && IsEventId(e.Id))
                {
                    lock (_outboxLock)
                        _pending[e.Id] = e;
                }
            }
            catch (Exception ex) when (ex is JsonException or IOException)
            {
                // A damaged entry cannot be sent; leave it for a person to look at.
            }
        }

        foreach (var temp in Directory.EnumerateFiles(_layout.Outbox, "*.tmp"))
            LocalLayout.TryDelete(temp);
        if (_pending.Count > 0)
            _signal.Writer.TryWrite(true);
    }

    private static bool IsEventId(string id) => id.Length is > 0 and <= 128 && id.All(c => char.IsAsciiLetterOrDigit(c) || c == '-');

    // ----- helpers -----

    private void Track(UploadRecord record, long bytes)
    {
        string client = ClientOf(record);
        lock (_usageLock)
        {
            if (_unfinished.ContainsKey(record.Key.Hash))
                return;
            _unfinished[record.Key.Hash] = (client, bytes);
            var usage = _byClient.GetValueOrDefault(client);
            _byClient[client] = usage with { Active = usage.Active + 1, Bytes = usage.Bytes + bytes };
        }
    }

    private void Untrack(string hash)
    {
        lock (_usageLock)
        {
            if (!_unfinished.Remove(hash, out var entry))
                return;
            var usage = _byClient[entry.Client];
            SetUsage(entry.Client, usage with { Active = usage.Active - 1, Bytes = usage.Bytes - entry.Bytes });
        }
    }

    private void TrackCompleted(UploadRecord record)
    {
        string client = ClientOf(record);
        long bytes = record.Length ?? 0;
        lock (_usageLock)
        {
            if (!_completed.TryAdd(record.Key.Hash, (client, bytes)))
                return;
            var usage = _byClient.GetValueOrDefault(client);
            _byClient[client] = usage with { Files = usage.Files + 1, FileBytes = usage.FileBytes + bytes };
        }
    }

    private void UntrackCompleted(string hash)
    {
        lock (_usageLock)
        {
            if (!_completed.Remove(hash, out var entry))
                return;
            var usage = _byClient[entry.Client];
            SetUsage(entry.Client, usage with { Files = usage.Files - 1, FileBytes = usage.FileBytes - entry.Bytes });
        }
    }

    // A client that holds nothing leaves the table: it never grows with clients that came and went.
    private void SetUsage(string client, Usage usage)
    {
        if (usage.Active <= 0 && usage.Files <= 0)
            _byClient.Remove(client);
        else
            _byClient[client] = usage;
    }

    /// <summary>Clients with an entry in the usage table (tests: it holds only clients that keep something).</summary>
    internal int TrackedClients
    {
        get
        {
            lock (_usageLock)
                return _byClient.Count;
        }
    }

    private readonly record struct Usage(int Active, long Bytes, int Files, long FileBytes);

    private static string ClientOf(UploadRecord record) => record.Client ?? record.Owner;

    private static int StripeOf(string hash) => Convert.ToInt32(hash[..4], 16) % StripeCount;

    private static UploadRecord Read(string path) => UploadJson.Deserialize(File.ReadAllBytes(path));

    private void Write(UploadRecord record)
    {
        string hash = record.Key.Hash;
        WriteAtomically(_layout.RecordPath(hash), UploadJson.Serialize(record), _layout.SessionDirectory(hash));
    }

    private void WriteAtomically(string path, byte[] bytes, string directory)
    {
        string temp = path + ".tmp";
        using (var handle = File.OpenHandle(temp, FileMode.Create, FileAccess.Write))
        {
            RandomAccess.Write(handle, bytes, 0);
            if (_flush)
                RandomAccess.FlushToDisk(handle);
        }

        File.Move(temp, path, overwrite: true);
        if (_flush)
            NativeFileSystem.FlushDirectory(directory);
    }

    private List<ByteRange> ReadJournal(string hash, long? length)
    {
        var ranges = new List<ByteRange>();
        string path = _layout.JournalPath(hash);
        if (!File.Exists(path))
            return ranges;
        var bytes = File.ReadAllBytes(path);
        // A torn final record (crash mid-append) is shorter than a record and ignored.
        for (int i = 0; i + JournalRecordSize <= bytes.Length; i += JournalRecordSize)
        {
            long offset = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(i));
            long count = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(i + 8));
            if (offset >= 0 && count > 0 && offset <= long.MaxValue - count && (length is null || offset + count <= length))
                ranges.Add(new ByteRange(offset, count));
        }

        return ranges;
    }

    [LoggerMessage(EventId = 1007, Level = LogLevel.Warning, Message = "Session folder {Directory} could not be loaded; left untouched")]
    private static partial void LogUnreadable(ILogger logger, Exception exception, string directory);
}

