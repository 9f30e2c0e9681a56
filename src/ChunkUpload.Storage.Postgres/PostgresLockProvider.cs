using System.Globalization;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Uploads;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace ChunkUpload.Storage.Postgres;

/// <summary>
/// Per-upload locks across nodes: a PostgreSQL session advisory lock held on its own connection for as long as the
/// writer runs. It dies with its holder (a killed node's connection closes, and PostgreSQL releases the lock). A
/// request that wants a held upload asks the holder to let go with <c>NOTIFY chunkupload_release</c>; every node
/// listens and cancels its own holder of that upload (its <see cref="IUploadLock.ReleaseRequested"/> fires), which
/// keeps what it received and releases.
/// </summary>
public sealed partial class PostgresLockProvider : IUploadLockProvider, IAsyncDisposable
{
    private const string Channel = "chunkupload_release";
    private static readonly TimeSpan RetryInterval = TimeSpan.FromMilliseconds(25);

    private readonly NpgsqlDataSource _db;
    private readonly Dictionary<string, List<CancellationTokenSource>> _holders = new(StringComparer.Ordinal);
    private readonly Lock _sync = new();
    private readonly NotificationListener _listener;

    public PostgresLockProvider(NpgsqlDataSource db, ILogger<PostgresLockProvider> logger)
    {
        _db = db;
        _listener = new NotificationListener(db, Channel, ReleaseRequested, ex => LogListenerLost(logger, ex));
    }

    public async Task<IUploadLock?> AcquireAsync(UploadKey key, TimeSpan wait, CancellationToken cancellationToken)
    {
        await _listener.EnsureStartedAsync(cancellationToken);
        long lockId = LockIdOf(key.Hash);
        var connection = await _db.OpenConnectionAsync(cancellationToken);
        try
        {
            var deadline = DateTime.UtcNow + wait;
            bool asked = false;
            while (!await TryLockAsync(connection, lockId, cancellationToken))
            {
                if (!asked)
                {
                    await NotifyAsync(key.Hash, cancellationToken); // whoever holds it: finish what you have and let go
                    asked = true;
                }

                if (DateTime.UtcNow >= deadline)
                {
                    await connection.DisposeAsync();
                    return null;
                }

                await Task.Delay(RetryInterval, cancellationToken);
            }

            var release = new CancellationTokenSource();
            lock (_sync)
            {
                if (!_holders.TryGetValue(key.Hash, out var list))
                    _holders[key.Hash] = list = [];
                list.Add(release);
            }

            return new Held(this, key.Hash, lockId, connection, release);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private static async Task<bool> TryLockAsync(NpgsqlConnection connection, long lockId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT pg_try_advisory_lock($1)", connection);
        command.Parameters.AddWithValue(lockId);
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private async Task NotifyAsync(string hash, CancellationToken cancellationToken)
    {
        await using var notify = _db.CreateCommand("SELECT pg_notify($1, $2)");
        notify.Parameters.AddWithValue(Channel);
        notify.Parameters.AddWithValue(hash);
        await notify.ExecuteNonQueryAsync(cancellationToken);
    }

    private void ReleaseRequested(string hash)
    {
        List<CancellationTokenSource>? holders;
        lock (_sync)
            holders = _holders.TryGetValue(hash, out var list) ? [.. list] : null;
        foreach (var holder in holders ?? [])
        {
            try
            {
                holder.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // Released meanwhile.
            }
        }
    }

    private void Forget(string hash, CancellationTokenSource release)
    {
        lock (_sync)
        {
            if (_holders.TryGetValue(hash, out var list))
            {
                list.Remove(release);
                if (list.Count == 0)
                    _holders.Remove(hash);
            }
        }
    }

    /// <summary>The advisory lock id of an upload: the first 16 hex characters of its key hash, as a signed 64-bit number.</summary>
    internal static long LockIdOf(string hash) => unchecked((long)ulong.Parse(hash.AsSpan(0, 16), NumberStyles.HexNumber, CultureInfo.InvariantCulture));

    public ValueTask DisposeAsync() => _listener.DisposeAsync();

    private sealed class Held(PostgresLockProvider owner, string hash, long lockId, NpgsqlConnection connection, CancellationTokenSource release) : IUploadLock
    {
        private int _disposed;

        public CancellationToken ReleaseRequested => release.Token;

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
                return;
            owner.Forget(hash, release);
            release.Dispose();
            try
            {
                await using var unlock = new NpgsqlCommand("SELECT pg_advisory_unlock($1)", connection);
                unlock.Parameters.AddWithValue(lockId);
                await unlock.ExecuteNonQueryAsync(CancellationToken.None);
            }
            catch (Exception ex) when (ex is NpgsqlException or IOException)
            {
                // The connection is gone, and the lock with it.
            }

            await connection.DisposeAsync();
        }
    }

    [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "Lost the PostgreSQL connection that listens for lock release requests; reconnecting")]
    private static partial void LogListenerLost(ILogger logger, Exception exception);
}
