using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace ChunkUpload.ClusterTests.Infrastructure;

/// <summary>
/// The application's completion webhook, as the nodes call it: an <see cref="HttpListener"/> on 127.0.0.1 that answers
/// 200 to every POST and records each delivery by its <c>Idempotency-Key</c> (with the event's identifier and sha256).
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly HttpListener _listener;
    private readonly ConcurrentQueue<Delivery> _deliveries = new();
    private readonly Task _loop;

    private WebhookReceiver(HttpListener listener, Uri url)
    {
        _listener = listener;
        Url = url;
        _loop = Task.Run(ServeAsync);
    }

    public Uri Url { get; }

    public IReadOnlyList<Delivery> Deliveries => [.. _deliveries];

    public int TotalDeliveries => _deliveries.Count;

    /// <summary>Deliveries per Idempotency-Key.</summary>
    public IReadOnlyDictionary<string, int> CountsByKey() =>
        _deliveries.GroupBy(d => d.IdempotencyKey).ToDictionary(g => g.Key, g => g.Count());

    public IReadOnlyList<Delivery> For(string identifier) => [.. _deliveries.Where(d => d.Identifier == identifier)];

    public static WebhookReceiver Start()
    {
        for (int attempt = 1; ; attempt++)
        {
            var url = new Uri($"http://127.0.0.1:{FreePort()}/hook/");
            var listener = new HttpListener();
            listener.Prefixes.Add(url.ToString());
            try
            {
                listener.Start();
                return new WebhookReceiver(listener, url);
            }
            catch (HttpListenerException) when (attempt < 5)
            {
                // The port was taken between picking it and binding it.
                listener.Close();
            }
        }
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            try
            {
                using var reader = new StreamReader(context.Request.InputStream);
                string body = await reader.ReadToEndAsync();
                string key = context.Request.Headers["Idempotency-Key"] ?? "";
                string? identifier = null, sha256 = null;
                try
                {
                    using var json = JsonDocument.Parse(body);
                    identifier = json.RootElement.TryGetProperty("identifier", out var id) ? id.GetString() : null;
                    sha256 = json.RootElement.TryGetProperty("sha256", out var sha) ? sha.GetString() : null;
                }
                catch (JsonException)
                {
                    // Recorded as it came; the test's assertions see the missing fields.
                }

                _deliveries.Enqueue(new Delivery(key, identifier, sha256, body, DateTimeOffset.UtcNow));
                context.Response.StatusCode = 200;
            }
            finally
            {
                context.Response.Close();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        _listener.Close();
        try
        {
            await _loop;
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public sealed record Delivery(string IdempotencyKey, string? Identifier, string? Sha256, string Body, DateTimeOffset At);
}
