using Npgsql;

namespace ChunkUpload.Storage.Postgres;

/// <summary>
/// <c>LISTEN</c> on one channel, on a connection of its own, from the first <see cref="EnsureStartedAsync"/> until
/// disposed: every payload goes to <paramref name="received"/>. A lost connection is reopened (notifications sent
/// meanwhile are lost: they are hints, never what correctness depends on).
/// </summary>
internal sealed class NotificationListener(NpgsqlDataSource db, string channel, Action<string> received, Action<Exception> lost) : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _start = new(1, 1);
    private Task? _loop;
    private int _disposed;

    public async Task EnsureStartedAsync(CancellationToken cancellationToken)
    {
        if (_loop is not null)
            return;
        await _start.WaitAsync(cancellationToken);
        try
        {
            _loop ??= RunAsync(await ConnectAsync(cancellationToken));
        }
        finally
        {
            _start.Release();
        }
    }

    private async Task<NpgsqlConnection> ConnectAsync(CancellationToken cancellationToken)
    {
        var connection = await db.OpenConnectionAsync(cancellationToken);
        try
        {
            connection.Notification += (_, e) => received(e.Payload);
            await using var listen = new NpgsqlCommand("LISTEN " + channel, connection);
            await listen.ExecuteNonQueryAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private async Task RunAsync(NpgsqlConnection connection)
    {
        NpgsqlConnection? current = connection;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                if (current is null)
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), _stop.Token);
                    current = await ConnectAsync(_stop.Token);
                }

                await current.WaitAsync(_stop.Token);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                break;
            }
            catch (ObjectDisposedException)
            {
                break; // the data source was disposed: the store is shutting down
            }
            catch (Exception ex) when (ex is NpgsqlException or IOException or InvalidOperationException)
            {
                if (current is not null)
                {
                    lost(ex);
                    await current.DisposeAsync();
                    current = null;
                }
            }
        }

        if (current is not null)
            await current.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await _stop.CancelAsync();
        await _start.WaitAsync();
        try
        {
            if (_loop is { } loop)
                await loop;
        }
        finally
        {
            _start.Release();
        }

        _stop.Dispose();
    }
}
