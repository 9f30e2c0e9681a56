using System.Runtime.CompilerServices;
using System.Threading.Channels;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Ranges;
using ChunkUpload.Core.Uploads;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace ChunkUpload.Storage.Postgres;

/// <summary>
/// The metadata store on PostgreSQL, shared by every node: one row per upload (its record as JSON plus the columns
/// queries need), the journal of stored ranges, and the completion outbox. Creation takes a per-client transaction
/// lock so a client's limits on unfinished uploads and finished files are global; completion is claimed with a leased row update so the
/// last bytes arriving at two nodes complete a file once; outbox events are claimed with
/// <c>FOR UPDATE SKIP LOCKED</c>, so each is delivered by one node at a time. Each upload's hash checkpoint (how far its
/// bytes are hashed in order, and the state there) is advanced by compare and set and announced with
/// <c>NOTIFY chunkupload_hash</c>, so the node holding the next bytes goes on.
/// </summary>
public sealed partial class PostgresMetadataStore(NpgsqlDataSource db, IOptions<PostgresOptions> options, TimeProvider time, ILogger<PostgresMetadataStore> logger)
    : IUploadMetadataStore, ICompletionOutbox, IHashCheckpointStore, IAsyncDisposable
{
    private const string Receiving = nameof(UploadState.Receiving);
    private const string Complete = nameof(UploadState.Complete);
    private const string HashChannel = "chunkupload_hash";
    private readonly PostgresOptions _options = options.Value;
    private readonly Channel<bool> _signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    // Names this store in its own announcements, which it does not pass on to its engine (that engine made them).
    private readonly string _sender = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
    private NotificationListener? _hashListener;
    private Action<string, bool>? _hashAnnounced;

    public bool IsShared => true;

    /// <summary>Migrates the schema. Uploads are not loaded: any node may serve any upload, and loads it when asked.</summary>
    public async Task<IReadOnlyList<RecoveredUpload>> OpenAsync(CancellationToken cancellationToken)
    {
        await Migrations.RunAsync(db, logger, cancellationToken);
        return [];
    }

    public async Task<CreateResult> CreateAsync(UploadRecord record, CreationLimits limits, CancellationToken cancellationToken)
    {
        string client = record.Client ?? record.Owner;
        await using var connection = await db.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // One creation per client at a time across every node: the count below cannot race.
        await using (var lockClient = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", connection, transaction))
        {
            lockClient.Parameters.AddWithValue("client:" + client);
            await lockClient.ExecuteNonQueryAsync(cancellationToken);
        }

        if (await FindAsync(connection, transaction, record.Key.Hash, cancellationToken) is { } existing)
            return new CreateResult(existing, Created: false);

        await using (var count = new NpgsqlCommand(
            "SELECT count(*) FILTER (WHERE state = $2), count(*) FILTER (WHERE state = $3) FROM uploads WHERE client = $1", connection, transaction))
        {
            count.Parameters.AddWithValue(client);
            count.Parameters.AddWithValue(Receiving);
            count.Parameters.AddWithValue(Complete);
            long active, files;
            await using (var reader = await count.ExecuteReaderAsync(cancellationToken))
            {
                await reader.ReadAsync(cancellationToken);
                active = reader.GetInt64(0);
                files = reader.GetInt64(1);
            }

            if (active >= limits.MaxActiveUploads)
                throw new UploadException(UploadErrors.TooManyUploads,
                    $"You have {limits.MaxActiveUploads} unfinished uploads; finish or delete some before starting more.") { RetryAfterSeconds = 60 };
            if (files >= limits.MaxCompletedFiles)
                throw new UploadException(UploadErrors.CompletedFilesQuotaExceeded,
                    $"You keep {files} finished files and may keep {limits.MaxCompletedFiles}; delete some before starting another upload.");
        }

        await using (var insert = new NpgsqlCommand("""
            INSERT INTO uploads (key_hash, owner, client, id, protocol, state, length, record, created_at, completed_at, last_activity)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $9)
            ON CONFLICT (key_hash) DO NOTHING
            """, connection, transaction))
        {
            insert.Parameters.AddWithValue(record.Key.Hash);
            insert.Parameters.AddWithValue(record.Owner);
            insert.Parameters.AddWithValue(client);
            insert.Parameters.AddWithValue(record.Id);
            insert.Parameters.AddWithValue(record.Protocol);
            insert.Parameters.AddWithValue(record.State.ToString());
            insert.Parameters.AddWithValue(NpgsqlDbType.Bigint, (object?)record.Length ?? DBNull.Value);
            insert.Parameters.AddWithValue(NpgsqlDbType.Jsonb, UploadJson.Serialize(record));
            insert.Parameters.AddWithValue(record.CreatedAt);
            insert.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, (object?)record.CompletedAt ?? DBNull.Value);
            if (await insert.ExecuteNonQueryAsync(cancellationToken) == 0)
            {
                // Another owner's client created the same key meanwhile (the client lock is per client).
                var raced = await FindAsync(connection, transaction, record.Key.Hash, cancellationToken);
                await transaction.CommitAsync(cancellationToken);
                return new CreateResult(raced!, Created: false);
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return new CreateResult(record, Created: true);
    }

    public Task<UploadRecord?> FindAsync(UploadKey key, CancellationToken cancellationToken) => FindByHashAsync(key.Hash, cancellationToken);

    public async Task<UploadRecord?> FindByHashAsync(string keyHash, CancellationToken cancellationToken)
    {
        await using var connection = await db.OpenConnectionAsync(cancellationToken);
        return await FindAsync(connection, null, keyHash, cancellationToken);
    }

    private static async Task<UploadRecord?> FindAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string keyHash, CancellationToken cancellationToken)
    {
        await using var find = new NpgsqlCommand("SELECT record::text, last_activity FROM uploads WHERE key_hash = $1", connection, transaction);
        find.Parameters.AddWithValue(keyHash);
        await using var reader = await find.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    private static UploadRecord Read(NpgsqlDataReader reader)
    {
        var record = UploadJson.Deserialize(reader.GetString(0));
        record.LastActivity = reader.GetFieldValue<DateTimeOffset>(1);
        return record;
    }

    public async Task SaveAsync(UploadRecord record, CancellationToken cancellationToken)
    {
        await using var save = db.CreateCommand("""
            UPDATE uploads SET record = $2, state = $3, length = $4, completed_at = $5
            WHERE key_hash = $1
            """);
        save.Parameters.AddWithValue(record.Key.Hash);
        save.Parameters.AddWithValue(NpgsqlDbType.Jsonb, UploadJson.Serialize(record));
        save.Parameters.AddWithValue(record.State.ToString());
        save.Parameters.AddWithValue(NpgsqlDbType.Bigint, (object?)record.Length ?? DBNull.Value);
        save.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, (object?)record.CompletedAt ?? DBNull.Value);
        if (await save.ExecuteNonQueryAsync(cancellationToken) == 0)
            throw Gone(record);
    }

    public async Task AppendRangesAsync(UploadRecord record, IReadOnlyList<ByteRange> ranges, CancellationToken cancellationToken)
    {
        if (ranges.Count == 0)
            return;
        await using var connection = await db.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var touch = new NpgsqlCommand(
            "UPDATE uploads SET stored_bytes = stored_bytes + $2, last_activity = $3 WHERE key_hash = $1 AND state = $4", connection, transaction))
        {
            touch.Parameters.AddWithValue(record.Key.Hash);
            touch.Parameters.AddWithValue(ranges.Sum(r => r.Length));
            touch.Parameters.AddWithValue(time.GetUtcNow());
            touch.Parameters.AddWithValue(Receiving);
            if (await touch.ExecuteNonQueryAsync(cancellationToken) == 0)
                throw Gone(record); // deleted, or finished by another node: these bytes are not acknowledged
        }

        await using (var insert = new NpgsqlCommand("""
            INSERT INTO upload_ranges (key_hash, "offset", length)
            SELECT $1, o, l FROM unnest($2::bigint[], $3::bigint[]) AS r(o, l)
            ON CONFLICT DO NOTHING
            """, connection, transaction))
        {
            insert.Parameters.AddWithValue(record.Key.Hash);
            insert.Parameters.AddWithValue(ranges.Select(r => r.Offset).ToArray());
            insert.Parameters.AddWithValue(ranges.Select(r => r.Length).ToArray());
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<ByteRange>> ReadRangesAsync(UploadRecord record, CancellationToken cancellationToken)
    {
        await using var read = db.CreateCommand("""SELECT "offset", length FROM upload_ranges WHERE key_hash = $1 ORDER BY "offset" """);
        read.Parameters.AddWithValue(record.Key.Hash);
        var ranges = new List<ByteRange>();
        await using var reader = await read.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            ranges.Add(new ByteRange(reader.GetInt64(0), reader.GetInt64(1)));
        return ranges;
    }

    public async Task ResetRangesAsync(UploadRecord record, CancellationToken cancellationToken)
    {
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM upload_ranges WHERE key_hash = $1") { Parameters = { new() { Value = record.Key.Hash } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("UPDATE uploads SET stored_bytes = 0 WHERE key_hash = $1") { Parameters = { new() { Value = record.Key.Hash } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM upload_hash_checkpoints WHERE key_hash = $1") { Parameters = { new() { Value = record.Key.Hash } } });
        await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<bool> TryClaimCompletionAsync(UploadKey key, string claimant, TimeSpan lease, CancellationToken cancellationToken)
    {
        await using var claim = db.CreateCommand("""
            UPDATE uploads SET completion_owner = $2, completion_until = $3 + $4
            WHERE key_hash = $1 AND state = $5 AND (completion_owner IS NULL OR completion_owner = $2 OR completion_until < $3)
            """);
        claim.Parameters.AddWithValue(key.Hash);
        claim.Parameters.AddWithValue(claimant);
        claim.Parameters.AddWithValue(time.GetUtcNow());
        claim.Parameters.AddWithValue(lease);
        claim.Parameters.AddWithValue(Receiving);
        return await claim.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    public async Task CompleteAsync(UploadRecord record, CompletionEvent? completion, CancellationToken cancellationToken)
    {
        await using var connection = await db.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var complete = new NpgsqlCommand("""
            UPDATE uploads SET record = $2, state = $3, length = $4, completed_at = $5, completion_owner = NULL, completion_until = NULL
            WHERE key_hash = $1 AND state = $6
            """, connection, transaction))
        {
            complete.Parameters.AddWithValue(record.Key.Hash);
            complete.Parameters.AddWithValue(NpgsqlDbType.Jsonb, UploadJson.Serialize(record));
            complete.Parameters.AddWithValue(record.State.ToString());
            complete.Parameters.AddWithValue(NpgsqlDbType.Bigint, (object?)record.Length ?? DBNull.Value);
            complete.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, (object?)record.CompletedAt ?? DBNull.Value);
            complete.Parameters.AddWithValue(Receiving);
            if (await complete.ExecuteNonQueryAsync(cancellationToken) == 0)
                throw Gone(record);
        }

        await using (var ranges = new NpgsqlCommand("DELETE FROM upload_ranges WHERE key_hash = $1", connection, transaction))
        {
            ranges.Parameters.AddWithValue(record.Key.Hash);
            await ranges.ExecuteNonQueryAsync(cancellationToken);
        }

        // The hash checkpoint has served; the other nodes are told (on commit) that the upload is complete.
        await using (var checkpoint = new NpgsqlCommand("""
            WITH gone AS (DELETE FROM upload_hash_checkpoints WHERE key_hash = $1)
            SELECT pg_notify($2, $1 || ' ' || $3 || ' completed')
            """, connection, transaction))
        {
            checkpoint.Parameters.AddWithValue(record.Key.Hash);
            checkpoint.Parameters.AddWithValue(HashChannel);
            checkpoint.Parameters.AddWithValue(_sender);
            await checkpoint.ExecuteNonQueryAsync(cancellationToken);
        }

        if (completion is not null)
        {
            await using var outbox = new NpgsqlCommand(
                "INSERT INTO outbox (id, payload, completed_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING", connection, transaction);
            outbox.Parameters.AddWithValue(completion.Id);
            outbox.Parameters.AddWithValue(NpgsqlDbType.Jsonb, UploadJson.Serialize(completion));
            outbox.Parameters.AddWithValue(completion.CompletedAt);
            await outbox.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        if (completion is not null)
            _signal.Writer.TryWrite(true);
    }

    public async Task<bool> DeleteAsync(UploadKey key, CancellationToken cancellationToken)
    {
        await using var delete = db.CreateCommand("DELETE FROM uploads WHERE key_hash = $1");
        delete.Parameters.AddWithValue(key.Hash);
        return await delete.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    public async IAsyncEnumerable<UploadRecord> ListAsync(UploadFilter filter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var list = db.CreateCommand("""
            SELECT record::text, last_activity FROM uploads
            WHERE ($1::text IS NULL OR owner = $1) AND ($2::text IS NULL OR state = $2) AND ($3::timestamptz IS NULL OR completed_at < $3)
              AND ($4::timestamptz IS NULL OR last_activity < $4)
              AND ($5::timestamptz IS NULL OR (stored_bytes = 0 AND created_at < $5))
              AND (NOT $6 OR (length IS NOT NULL AND stored_bytes >= length AND (completion_until IS NULL OR completion_until < now())))
              AND ($8::timestamptz IS NULL OR (created_at, key_hash) < ($8, $9::text))
            ORDER BY created_at DESC, key_hash DESC
            LIMIT $7
            """);
        list.Parameters.AddWithValue(NpgsqlDbType.Text, (object?)filter.Owner ?? DBNull.Value);
        list.Parameters.AddWithValue(NpgsqlDbType.Text, (object?)filter.State?.ToString() ?? DBNull.Value);
        list.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, (object?)filter.CompletedBefore ?? DBNull.Value);
        list.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, (object?)filter.IdleBefore ?? DBNull.Value);
        list.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, (object?)filter.EmptyCreatedBefore ?? DBNull.Value);
        list.Parameters.AddWithValue(filter.FullyStored);
        list.Parameters.AddWithValue((long)(filter.Limit ?? int.MaxValue));
        list.Parameters.AddWithValue(NpgsqlDbType.TimestampTz, (object?)filter.After?.CreatedAt ?? DBNull.Value);
        list.Parameters.AddWithValue(NpgsqlDbType.Text, (object?)filter.After?.KeyHash ?? DBNull.Value);
        await using var reader = await list.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            yield return Read(reader);
    }

    public async Task<ClientUsage> GetUsageAsync(string client, CancellationToken cancellationToken)
    {
        // Finished files are counted from their rows: their length is their size.
        await using var usage = db.CreateCommand("""
            SELECT count(*) FILTER (WHERE state = $2), coalesce(sum(stored_bytes) FILTER (WHERE state = $2), 0),
                   count(*) FILTER (WHERE state = $3), coalesce(sum(length) FILTER (WHERE state = $3), 0)
            FROM uploads WHERE client = $1
            """);
        usage.Parameters.AddWithValue(client);
        usage.Parameters.AddWithValue(Receiving);
        usage.Parameters.AddWithValue(Complete);
        await using var reader = await usage.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new ClientUsage((int)reader.GetInt64(0), reader.GetInt64(1), (int)reader.GetInt64(2), reader.GetInt64(3));
    }

    // ----- hash checkpoints -----

    public async Task<HashCheckpoint?> ReadHashCheckpointAsync(UploadRecord record, CancellationToken cancellationToken)
    {
        await using var read = db.CreateCommand("SELECT hashed_to, state FROM upload_hash_checkpoints WHERE key_hash = $1 AND created_at = $2");
        read.Parameters.AddWithValue(record.Key.Hash);
        read.Parameters.AddWithValue(record.CreatedAt);
        await using var reader = await read.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? new HashCheckpoint(reader.GetInt64(0), reader.GetFieldValue<byte[]>(1)) : null;
    }

    public async Task<bool> TryAdvanceHashCheckpointAsync(UploadRecord record, long hashedTo, byte[] state, CancellationToken cancellationToken)
    {
        // Only for the upload's current life (created_at) while it receives, only forward; announced in the same
        // transaction, so a node told of it reads the new checkpoint (a notification is delivered after the commit).
        // Not flushed at commit: a checkpoint lost in a database crash is an older one, still true for its offset (a
        // later read-back at worst), and every batch of every upload moves one.
        await using var connection = await db.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var relaxed = new NpgsqlCommand("SET LOCAL synchronous_commit = off", connection, transaction))
            await relaxed.ExecuteNonQueryAsync(cancellationToken);
        await using var advance = new NpgsqlCommand("""
            WITH advanced AS (
                INSERT INTO upload_hash_checkpoints (key_hash, created_at, hashed_to, state)
                SELECT key_hash, created_at, $3, $4 FROM uploads WHERE key_hash = $1 AND created_at = $2 AND state = $5
                ON CONFLICT (key_hash) DO UPDATE SET hashed_to = excluded.hashed_to, state = excluded.state
                WHERE upload_hash_checkpoints.hashed_to < excluded.hashed_to AND upload_hash_checkpoints.created_at = excluded.created_at
                RETURNING key_hash)
            SELECT pg_notify($6, key_hash || ' ' || $7 || ' advanced') FROM advanced
            """, connection, transaction);
        advance.Parameters.AddWithValue(record.Key.Hash);
        advance.Parameters.AddWithValue(record.CreatedAt);
        advance.Parameters.AddWithValue(hashedTo);
        advance.Parameters.AddWithValue(state);
        advance.Parameters.AddWithValue(Receiving);
        advance.Parameters.AddWithValue(HashChannel);
        advance.Parameters.AddWithValue(_sender);
        bool advanced;
        await using (var reader = await advance.ExecuteReaderAsync(cancellationToken))
            advanced = await reader.ReadAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return advanced;
    }

    public async Task ListenForHashCheckpointsAsync(Action<string, bool> announced, CancellationToken cancellationToken)
    {
        _hashAnnounced = announced;
        _hashListener ??= new NotificationListener(db, HashChannel, HashAnnounced, ex => LogHashListenerLost(logger, ex));
        await _hashListener.EnsureStartedAsync(cancellationToken);
    }

    // "<key hash> <sender> advanced|completed"
    private void HashAnnounced(string payload)
    {
        var parts = payload.Split(' ');
        if (parts.Length != 3 || parts[1] == _sender)
            return;
        _hashAnnounced?.Invoke(parts[0], parts[2] == "completed");
    }

    public ValueTask DisposeAsync() => _hashListener?.DisposeAsync() ?? ValueTask.CompletedTask;

    // ----- outbox -----

    /// <summary>Wakes on a completion recorded by this node, and polls for those of other nodes.</summary>
    public async ValueTask WaitForWorkAsync(CancellationToken cancellationToken)
    {
        using var poll = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        poll.CancelAfter(_options.OutboxPollInterval);
        try
        {
            await _signal.Reader.ReadAsync(poll.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // Time to look at what other nodes recorded.
        }
    }

    /// <summary>
    /// The claim of <see cref="PendingAsync"/>: $1 now, $2 the lease, $3 the batch. Read through the index on completed_at
    /// (migration 002), it stops after a batch's worth of rows whatever the backlog.
    /// </summary>
    internal const string ClaimPendingSql = """
        UPDATE outbox SET locked_until = $1 + $2
        WHERE id IN (SELECT id FROM outbox WHERE locked_until IS NULL OR locked_until < $1
                     ORDER BY completed_at LIMIT $3 FOR UPDATE SKIP LOCKED)
        RETURNING payload::text
        """;

    /// <summary>Claims up to a batch of undelivered events for this node (for <see cref="PostgresOptions.OutboxLease"/>).</summary>
    public async Task<IReadOnlyList<CompletionEvent>> PendingAsync(CancellationToken cancellationToken)
    {
        await using var claim = db.CreateCommand(ClaimPendingSql);
        claim.Parameters.AddWithValue(time.GetUtcNow());
        claim.Parameters.AddWithValue(_options.OutboxLease);
        claim.Parameters.AddWithValue(_options.OutboxBatch);
        var events = new List<CompletionEvent>();
        await using var reader = await claim.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            if (UploadJson.DeserializeEvent(reader.GetString(0)) is { } e)
                events.Add(e);
        }

        return [.. events.OrderBy(e => e.CompletedAt)];
    }

    public async Task<int> CountPendingAsync(CancellationToken cancellationToken)
    {
        await using var count = db.CreateCommand("SELECT count(*) FROM outbox");
        return (int)(long)(await count.ExecuteScalarAsync(cancellationToken))!;
    }

    public async Task AcknowledgeAsync(string eventId, CancellationToken cancellationToken)
    {
        await using var delete = db.CreateCommand("DELETE FROM outbox WHERE id = $1");
        delete.Parameters.AddWithValue(eventId);
        await delete.ExecuteNonQueryAsync(cancellationToken);
    }

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "Lost the PostgreSQL connection that listens for hash checkpoints; reconnecting")]
    private static partial void LogHashListenerLost(ILogger logger, Exception exception);

    private static UploadException Gone(UploadRecord record) =>
        new(UploadErrors.UploadNotFound, $"Upload '{record.Id}' was deleted or finished elsewhere while this data arrived.");
}
