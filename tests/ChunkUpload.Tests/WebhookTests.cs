using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Local;
using ChunkUpload.Server.Services;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>The completion webhook: one POST per finished file, retried until acknowledged, kept on disk across restarts.</summary>
public sealed class WebhookTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private const string Secret = "webhook-secret-of-at-least-32-characters";

    private ChunkUploadApplication Start(HttpMessageHandler receiver, Dictionary<string, string?>? extra = null, Action<IServiceCollection>? services = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Webhook:Url"] = "http://app.test/uploads/completed",
            ["Webhook:InitialRetryDelay"] = "00:00:00.010",
        };
        foreach (var (key, value) in extra ?? [])
            settings[key] = value;
        return new(_dir.StorageRoot, settings, s =>
        {
            s.AddHttpClient<WebhookService>().ConfigurePrimaryHttpMessageHandler(() => receiver);
            services?.Invoke(s);
        });
    }

    private static async Task<UploadClient> CompleteOneAsync(ChunkUploadApplication app, string identifier)
    {
        var client = new UploadClient(app.CreateClient());
        var file = TestFile.Random(identifier, 1000, 1000);
        await client.UploadAllAsync(file);
        await client.WaitForCompleteAsync(file.Identifier);
        return client;
    }

    [Fact]
    public async Task Each_Delivery_Is_Signed_With_The_Secret_Over_Timestamp_And_Body()
    {
        var receiver = new Scripted(_ => new HttpResponseMessage(HttpStatusCode.NoContent));
        using var app = Start(receiver, new() { ["Webhook:Secret"] = Secret });
        await CompleteOneAsync(app, "hook-signed");
        var delivery = await receiver.WaitForAsync(1);

        string signature = delivery.Headers[WebhookService.SignatureHeader];
        var parts = signature.Split(',').Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        long t = long.Parse(parts["t"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(t, DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeSeconds());
        // What a receiver does: HMAC-SHA256 over "t." + the raw body, compared in constant time.
        byte[] expected = System.Security.Cryptography.HMACSHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes(Secret), System.Text.Encoding.UTF8.GetBytes(parts["t"] + "." + delivery.Body));
        Assert.Equal(Convert.ToHexStringLower(expected), parts["v1"]);
        Assert.Equal("hook-signed", JsonDocument.Parse(delivery.Body).RootElement.GetProperty("identifier").GetString());
    }

    [Fact]
    public async Task A_Redirect_Is_Not_Followed_But_Retried_As_A_Failure()
    {
        Assert.False(((SocketsHttpHandler)WebhookService.CreateHandler()).AllowAutoRedirect);
        var receiver = new Scripted(call => call == 1
            ? new HttpResponseMessage(HttpStatusCode.Found) { Headers = { Location = new Uri("http://elsewhere.test/") } }
            : new HttpResponseMessage(HttpStatusCode.NoContent));
        using var app = Start(receiver);
        await CompleteOneAsync(app, "hook-redirect");
        await receiver.WaitForAsync(2);
        await WaitForEmptyOutboxAsync();
        Assert.All(receiver.Deliveries, d => Assert.Equal("app.test", d.Host));
    }

    [Fact]
    public async Task A_Receiver_Answering_With_An_Endless_Body_Does_Not_Hold_The_Delivery()
    {
        var receiver = new Scripted(_ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(new EndlessStream()) });
        using var app = Start(receiver, new() { ["Webhook:TimeoutSeconds"] = "2" });
        await CompleteOneAsync(app, "hook-endless");
        await WaitForEmptyOutboxAsync();
        Assert.Single(receiver.Deliveries);
    }

    [Fact]
    public async Task An_Upload_Deleted_Before_Its_Announcement_Went_Out_Is_Dropped_From_The_Outbox()
    {
        var receiver = new Scripted(_ => new HttpResponseMessage(HttpStatusCode.ServiceUnavailable));
        using var app = Start(receiver, new() { ["Webhook:InitialRetryDelay"] = "00:00:00.200" });
        var client = await CompleteOneAsync(app, "hook-deleted");
        await receiver.WaitForAsync(1);
        using (var deleted = await client.Http.DeleteAsync("/uploads/hook-deleted"))
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        await WaitForEmptyOutboxAsync();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (app.Logs.Count(4005, "hook-deleted") == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "The dropped announcement was not logged.");
            await Task.Delay(10);
        }

        Assert.Equal(0, app.Logs.Count(4001, "hook-deleted"));
    }

    [Fact]
    public async Task An_Unexpected_Fault_In_The_Delivery_Loop_Is_Logged_And_The_Loop_Goes_On()
    {
        var receiver = new Scripted(_ => new HttpResponseMessage(HttpStatusCode.NoContent));
        using var app = Start(receiver, services: s => s.AddSingleton<ICompletionOutbox>(sp => new FaultingOutbox(sp.GetRequiredService<LocalMetadataStore>())));
        await CompleteOneAsync(app, "hook-fault");
        await receiver.WaitForAsync(1);
        await WaitForEmptyOutboxAsync();
        Assert.Equal(1, app.Logs.Count(4004, ""));
        using var alive = await app.CreateClient().GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
    }

    [Fact]
    public async Task Each_Completed_File_Is_Announced_Once_With_An_Idempotency_Key()
    {
        var receiver = new Receiver(failFirst: 0);
        using var app = Start(receiver);
        var client = new UploadClient(app.CreateClient());
        var file = TestFile.Random("hook-1", 3000, 1000, name: "film.mkv");
        await client.UploadAllAsync(file);
        await client.UploadAllAsync(file, order: [3]); // a re-sent last chunk must not announce twice
        await client.WaitForCompleteAsync(file.Identifier);

        var delivery = await receiver.WaitForAsync(1);
        var body = JsonDocument.Parse(delivery.Body).RootElement;
        Assert.Equal("hook-1", body.GetProperty("identifier").GetString());
        Assert.Equal("film.mkv", body.GetProperty("fileName").GetString());
        Assert.Equal(3000, body.GetProperty("size").GetInt64());
        Assert.Equal(file.Sha256, body.GetProperty("sha256").GetString());
        Assert.Equal("", body.GetProperty("owner").GetString());
        Assert.Equal(body.GetProperty("id").GetString(), delivery.IdempotencyKey);
        await WaitForEmptyOutboxAsync();
        Assert.Single(receiver.Deliveries);
    }

    [Fact]
    public async Task Failed_Deliveries_Are_Retried_With_Backoff_Until_Acknowledged()
    {
        var receiver = new Receiver(failFirst: 3);
        using var app = Start(receiver);
        var client = new UploadClient(app.CreateClient());
        var file = TestFile.Random("hook-2", 1000, 1000);
        await client.UploadAllAsync(file);
        await client.WaitForCompleteAsync(file.Identifier);

        await receiver.WaitForAsync(4);
        await WaitForEmptyOutboxAsync();
        Assert.Equal(4, receiver.Deliveries.Count);
        Assert.Single(receiver.Deliveries.Select(d => d.IdempotencyKey).Distinct());
        Assert.Equal(1, receiver.Acknowledged);
    }

    [Fact]
    public async Task Undelivered_Announcements_Survive_A_Restart()
    {
        var down = new Receiver(failFirst: int.MaxValue);
        using (var app = Start(down))
        {
            var client = new UploadClient(app.CreateClient());
            var file = TestFile.Random("hook-3", 2000, 1000);
            await client.UploadAllAsync(file);
            await client.WaitForCompleteAsync(file.Identifier);
            await down.WaitForAsync(1);
        }

        Assert.Single(Directory.EnumerateFiles(Path.Combine(_dir.StorageRoot, "outbox"), "*.json"));
        var up = new Receiver(failFirst: 0);
        using var restarted = Start(up);
        _ = restarted.Services; // starts the host and its webhook service
        var delivery = await up.WaitForAsync(1);
        Assert.Equal(down.Deliveries.First().IdempotencyKey, delivery.IdempotencyKey);
        await WaitForEmptyOutboxAsync();
    }

    private async Task WaitForEmptyOutboxAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Directory.EnumerateFiles(Path.Combine(_dir.StorageRoot, "outbox"), "*.json").Any())
        {
            Assert.True(DateTime.UtcNow < deadline, "The outbox was not emptied.");
            await Task.Delay(10);
        }
    }

    /// <summary>Fails its first listing with an exception nobody expects, then lists normally.</summary>
    private sealed class FaultingOutbox(LocalMetadataStore inner) : ICompletionOutbox
    {
        private int _listings;

        public ValueTask WaitForWorkAsync(CancellationToken cancellationToken) => inner.WaitForWorkAsync(cancellationToken);

        public Task<IReadOnlyList<CompletionEvent>> PendingAsync(CancellationToken cancellationToken) =>
            Interlocked.Increment(ref _listings) == 1 ? throw new InvalidOperationException("injected") : inner.PendingAsync(cancellationToken);

        public Task AcknowledgeAsync(string eventId, CancellationToken cancellationToken) => inner.AcknowledgeAsync(eventId, cancellationToken);

        public Task<int> CountPendingAsync(CancellationToken cancellationToken) => inner.CountPendingAsync(cancellationToken);
    }

    private sealed class EndlessStream : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => 0; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            Array.Fill(buffer, (byte)'x', offset, count);
            return count;
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Answers each call as the script says (by call number, from 1) and keeps what was sent.</summary>
    private sealed class Scripted(Func<int, HttpResponseMessage> answer) : HttpMessageHandler
    {
        private int _calls;

        public ConcurrentQueue<(string Body, string Host, Dictionary<string, string> Headers)> Deliveries { get; } = new();

        public async Task<(string Body, string Host, Dictionary<string, string> Headers)> WaitForAsync(int count)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (Deliveries.Count < count)
            {
                Assert.True(DateTime.UtcNow < deadline, $"Only {Deliveries.Count} of {count} webhook calls arrived.");
                await Task.Delay(10);
            }

            return Deliveries.Last();
        }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            string body = await request.Content!.ReadAsStringAsync(cancellationToken);
            var headers = request.Headers.ToDictionary(h => h.Key, h => string.Join(",", h.Value), StringComparer.OrdinalIgnoreCase);
            Deliveries.Enqueue((body, request.RequestUri!.Host, headers));
            return answer(Interlocked.Increment(ref _calls));
        }
    }

    internal sealed class Receiver(int failFirst) : HttpMessageHandler
    {
        private int _calls;

        public ConcurrentQueue<(string Body, string? IdempotencyKey)> Deliveries { get; } = new();

        public int Acknowledged;

        public async Task<(string Body, string? IdempotencyKey)> WaitForAsync(int count)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (Deliveries.Count < count)
            {
                Assert.True(DateTime.UtcNow < deadline, $"Only {Deliveries.Count} of {count} webhook calls arrived.");
                await Task.Delay(10);
            }

            return Deliveries.Last();
        }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            string body = await request.Content!.ReadAsStringAsync(cancellationToken);
            var key = request.Headers.TryGetValues("Idempotency-Key", out var values) ? values.Single() : null;
            bool fail = Interlocked.Increment(ref _calls) <= failFirst;
            Deliveries.Enqueue((body, key));
            if (fail)
                return new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
            Interlocked.Increment(ref Acknowledged);
            return new HttpResponseMessage(HttpStatusCode.NoContent);
        }
    }
}
