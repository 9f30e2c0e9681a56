using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using ChunkUpload.FaultTests.Infrastructure;

namespace ChunkUpload.ClusterTests.Infrastructure;

/// <summary>What every cluster scenario checks at the end: the file is intact everywhere, completed once, delivered once.</summary>
public static class ClusterChecks
{
    public static readonly TimeSpan CompletionTimeout = TimeSpan.FromMinutes(3);

    /// <summary>
    /// Waits for completion, then asserts: every live node reports the source's SHA-256 and length; the bytes downloaded
    /// from <paramref name="downloadFrom"/> hash to it; exactly one "assembled" event (1004) for the upload across every
    /// node's log; exactly one webhook delivery for it, under one Idempotency-Key, with that SHA-256.
    /// </summary>
    public static async Task<Outcome> AssertCompletedOnceAsync(
        Cluster cluster, string identifier, long length, string sha256, ClusterNode downloadFrom, Figures figures,
        Action<HttpRequestMessage>? authorize = null, int expectedDeliveriesInAll = 1)
    {
        var clock = Stopwatch.StartNew();
        await cluster.WaitCompleteAsync(identifier, CompletionTimeout, request =>
        {
            authorize?.Invoke(request);
            return request;
        });
        double completeSeconds = clock.Elapsed.TotalSeconds;

        foreach (var node in cluster.Nodes.Where(n => n.IsAlive))
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, node.Url("/uploads/" + Uri.EscapeDataString(identifier)));
            authorize?.Invoke(request);
            using var response = await cluster.Http.SendAsync(request);
            string body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{node.Name}: {(int)response.StatusCode} {body}");
            using var json = JsonDocument.Parse(body);
            Assert.Equal("complete", json.RootElement.GetProperty("state").GetString());
            Assert.Equal(sha256, json.RootElement.GetProperty("sha256").GetString());
            Assert.Equal(length, json.RootElement.GetProperty("totalSize").GetInt64());
        }

        clock.Restart();
        var (downloaded, downloadedSha) = await DownloadAsync(cluster, downloadFrom, identifier, authorize);
        double downloadSeconds = clock.Elapsed.TotalSeconds;
        Assert.Equal(length, downloaded);
        Assert.Equal(sha256, downloadedSha);

        // The log line follows the durable completion: wait for it, then for any second one there could be.
        var assembled = await WaitForAsync(() => cluster.AssembledEvents(identifier), e => e.Count >= 1, TimeSpan.FromSeconds(30), "the assembled event");
        await cluster.WaitWebhookSettledAsync(expectedDeliveriesInAll, TimeSpan.FromMinutes(1));
        var deliveries = cluster.Webhook.For(identifier);
        assembled = cluster.AssembledEvents(identifier);

        figures.Line($"  {identifier}: complete {completeSeconds:F1} s after the last chunk was acknowledged; sha256 {sha256[..16]}… on every live node");
        figures.Line($"  downloaded {downloaded} bytes from {downloadFrom.Name} in {downloadSeconds:F1} s ({downloaded / 1048576.0 / Math.Max(downloadSeconds, 0.001):F0} MiB/s), sha256 matches");
        figures.Line($"  completions (event 1004 \"Upload {{id}} assembled\") across nodes: {assembled.Count} [{string.Join(", ", assembled.Select(a => a.Node))}]");
        figures.Line($"  webhook deliveries: {deliveries.Count}; by Idempotency-Key: {string.Join(", ", deliveries.GroupBy(d => d.IdempotencyKey).Select(g => $"{g.Key[..Math.Min(24, g.Key.Length)]}…={g.Count()}"))}");

        Assert.Single(assembled);
        var delivery = Assert.Single(deliveries);
        Assert.Equal(sha256, delivery.Sha256);
        Assert.False(string.IsNullOrEmpty(delivery.IdempotencyKey));
        Assert.Equal(1, cluster.Webhook.CountsByKey()[delivery.IdempotencyKey]);
        return new Outcome(assembled[0].Node, delivery.IdempotencyKey);
    }

    /// <summary>GET /files/{id} from a node, hashed as it streams (never whole in memory).</summary>
    public static async Task<(long Length, string Sha256)> DownloadAsync(Cluster cluster, ClusterNode node, string identifier, Action<HttpRequestMessage>? authorize = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, node.Url("/files/" + Uri.EscapeDataString(identifier)));
        authorize?.Invoke(request);
        using var response = await cluster.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /files from {node.Name}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        await using var stream = await response.Content.ReadAsStreamAsync();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1024 * 1024];
        long total = 0;
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, read);
            total += read;
        }

        return (total, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    /// <summary>Polls <paramref name="read"/> until <paramref name="done"/> holds or the deadline passes (then the test fails).</summary>
    public static async Task<T> WaitForAsync<T>(Func<T> read, Func<T, bool> done, TimeSpan timeout, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var value = read();
            if (done(value))
                return value;
            if (deadline.Elapsed > timeout)
                throw new TimeoutException($"Waited {timeout.TotalSeconds} s for {what}.");
            await Task.Delay(50);
        }
    }

    /// <summary>Polls <paramref name="read"/> until <paramref name="done"/> holds or the deadline passes (then the test fails).</summary>
    public static async Task<T> WaitForAsync<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var value = await read();
            if (done(value))
                return value;
            if (deadline.Elapsed > timeout)
                throw new TimeoutException($"Waited {timeout.TotalSeconds} s for {what}; last: {value}.");
            await Task.Delay(50);
        }
    }

    /// <summary>A 256 MiB (or other) file of random bytes in a temp folder, removed with the test.</summary>
    public static SourceFileLease RandomFile(long length) => new(length);

    public sealed record Outcome(string CompletedBy, string IdempotencyKey);

    public sealed class SourceFileLease : IDisposable
    {
        private readonly string _folder = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "chunkupload-cluster-src", Guid.NewGuid().ToString("N")[..12]);

        internal SourceFileLease(long length)
        {
            Directory.CreateDirectory(_folder);
            Length = length;
            Path = System.IO.Path.Combine(_folder, "source.bin");
            var source = Bench.SourceFile.Create(Path, length, []);
            Sha256 = source.Sha256OfPrefix(length);
            Handle = File.OpenHandle(Path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }

        public string Path { get; }

        public long Length { get; }

        public string Sha256 { get; }

        public Microsoft.Win32.SafeHandles.SafeFileHandle Handle { get; }

        public void Dispose()
        {
            Handle.Dispose();
            try
            {
                Directory.Delete(_folder, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
