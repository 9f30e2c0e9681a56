using System.Net;
using System.Net.Sockets;

namespace ChunkUpload.ClusterTests.Infrastructure;

/// <summary>
/// A loopback TCP relay in front of a service (PostgreSQL, the S3 gateway) that one node is pointed at. While open it
/// relays every connection; <see cref="CloseAsync"/> resets every relayed connection and stops listening, so the port
/// refuses connections (the node's service is now at a wrong port); <see cref="Open"/> listens on the same port again.
/// </summary>
public sealed class TcpGate : IAsyncDisposable
{
    private readonly IPEndPoint _upstream;
    private readonly Lock _sync = new();
    private readonly List<Socket> _sockets = [];
    private TcpListener? _listener;
    private CancellationTokenSource? _stop;
    private Task _accepting = Task.CompletedTask;

    public TcpGate(string host, int port)
    {
        _upstream = new IPEndPoint(IPAddress.Parse(host), port);
        Port = FreePort();
    }

    /// <summary>The loopback port the node is given instead of the service's.</summary>
    public int Port { get; }

    public bool IsOpen { get; private set; }

    public void Open()
    {
        lock (_sync)
        {
            if (IsOpen)
                return;
            var listener = new TcpListener(IPAddress.Loopback, Port);
            listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Start();
            _listener = listener;
            _stop = new CancellationTokenSource();
            _accepting = AcceptAsync(listener, _stop.Token);
            IsOpen = true;
        }
    }

    /// <summary>Resets every connection (RST to both sides) and refuses new ones until <see cref="Open"/>.</summary>
    public async Task CloseAsync()
    {
        Task accepting;
        lock (_sync)
        {
            if (!IsOpen)
                return;
            IsOpen = false;
            _stop!.Cancel();
            _listener!.Stop();
            foreach (var socket in _sockets)
                Reset(socket);
            _sockets.Clear();
            accepting = _accepting;
        }

        await accepting.ContinueWith(_ => { }, TaskScheduler.Default);
        _stop!.Dispose();
    }

    public async ValueTask DisposeAsync() => await CloseAsync();

    private async Task AcceptAsync(TcpListener listener, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(stop);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = RelayAsync(client, stop);
        }
    }

    private async Task RelayAsync(Socket client, CancellationToken stop)
    {
        var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        lock (_sync)
        {
            if (stop.IsCancellationRequested)
            {
                Reset(client);
                server.Dispose();
                return;
            }

            _sockets.Add(client);
            _sockets.Add(server);
        }

        try
        {
            await server.ConnectAsync(_upstream, stop);
            await Task.WhenAny(PumpAsync(client, server, stop), PumpAsync(server, client, stop));
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            lock (_sync)
            {
                _sockets.Remove(client);
                _sockets.Remove(server);
            }

            Reset(client);
            Reset(server);
        }
    }

    private static async Task PumpAsync(Socket from, Socket to, CancellationToken stop)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                int read = await from.ReceiveAsync(buffer, SocketFlags.None, stop);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, stop);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    // Linger 0: close sends RST, so the peer sees the connection die rather than end.
    private static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
