using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using ChunkUpload.Server.Services;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>The completion webhook: one POST per finished file, retried until acknowledged, kept on disk across restarts.</summary>
public sealed class WebhookTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private ChunkUploadApplication Start(Receiver receiver) => new(
        _dir.StorageRoot,
        new Dictionary<string, string?>
        {
            ["Webhook:Url"] = "http://app.test/uploads/completed",
            ["Webhook:InitialRetryDelay"] = "00:00:00.010",
        },
        services => services.AddHttpClient<WebhookService>().ConfigurePrimaryHttpMessageHandler(() => receiver));

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
