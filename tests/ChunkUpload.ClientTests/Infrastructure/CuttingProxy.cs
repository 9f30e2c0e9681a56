using System.Net;
using System.Net.Sockets;

namespace ChunkUpload.ClientTests.Infrastructure;

/// <summary>
/// A loopback TCP proxy in front of the server that cuts ONE connection: once <c>cutAfter</c> bytes in total have
/// gone from clients to the server, the connection carrying that byte is reset (RST) on both sides. Everything
/// before and after passes through unchanged, so the client's retry reaches the server.
/// </summary>
public sealed class CuttingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _upstream;
    private readonly long _cutAfter;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _connections = [];
    private readonly List<Socket> _sockets = [];
    private readonly TaskCompletionSource<long> _cut = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _sync = new();
    private long _forwarded;
    private bool _cutDone;
    private Task _accepting = Task.CompletedTask;

    public CuttingProxy(Uri server, long cutAfter)
    {
        _upstream = new IPEndPoint(IPAddress.Parse(server.Host), server.Port);
        _cutAfter = cutAfter;
    }

    public Uri BaseUri { get; private set; } = null!;

    /// <summary>Completes when the cut happened, with the number of client bytes the cut connection had forwarded.</summary>
    public Task<long> Cut => _cut.Task;

    public void Start()
    {
        _listener.Start();
        BaseUri = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");
        _accepting = AcceptAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        lock (_sync)
        {
            foreach (var socket in _sockets)
                socket.Dispose();
        }

        Task[] running;
        lock (_sync)
            running = [.. _connections, _accepting];
        await Task.WhenAll(running.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            lock (_sync)
            {
                _sockets.Add(client);
                _connections.Add(RelayAsync(client));
            }
        }
    }

    private async Task RelayAsync(Socket client)
    {
        var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        lock (_sync)
            _sockets.Add(server);
        try
        {
            await server.ConnectAsync(_upstream, _stop.Token);
            var up = ForwardUpAsync(client, server);
            var down = CopyAsync(server, client);
            await Task.WhenAny(up, down);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // the proxy stops, or the server refused the connection
        }
        finally
        {
            client.Dispose();
            server.Dispose();
        }
    }

    // Client -> server, counting; the byte that reaches the cut point is the last one this connection forwards.
    private async Task ForwardUpAsync(Socket client, Socket server)
    {
        byte[] buffer = new byte[64 * 1024];
        long connectionBytes = 0;
        try
        {
            while (true)
            {
                int read = await client.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (read == 0)
                    return;
                int take = read;
                bool cutNow = false;
                lock (_sync)
                {
                    if (!_cutDone && _forwarded + read >= _cutAfter)
                    {
                        take = (int)(_cutAfter - _forwarded);
                        cutNow = _cutDone = true;
                    }

                    _forwarded += take;
                }

                await SendAllAsync(server, buffer.AsMemory(0, take));
                connectionBytes += take;
                if (cutNow)
                {
                    _cut.TrySetResult(connectionBytes);
                    Reset(server);
                    Reset(client);
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // a side closed or reset
        }
    }

    private async Task CopyAsync(Socket from, Socket to)
    {
        byte[] buffer = new byte[64 * 1024];
        try
        {
            int read;
            while ((read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token)) > 0)
                await SendAllAsync(to, buffer.AsMemory(0, read));
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // a side closed or reset
        }
    }

    private async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
            bytes = bytes[await socket.SendAsync(bytes, SocketFlags.None, _stop.Token)..];
    }

    // Linger 0 makes Close send RST: both peers see a reset connection, not an orderly end.
    private static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (SocketException)
        {
            // the peer reset it already
        }

        socket.Close();
    }
}
