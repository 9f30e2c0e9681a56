using System.Collections.Concurrent;
using System.Diagnostics;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Amazon.S3.Transfer;
using Microsoft.Win32.SafeHandles;

namespace ChunkUpload.Bench;

/// <summary>Where the shared stores of the S3 scenario run (started by bench/run.sh --s3).</summary>
internal sealed record SharedStores(string PostgresConnection, Uri S3Url, string AccessKey, string SecretKey);

/// <summary>
/// Issue 10's measurement: ChunkUpload on PostgreSQL metadata and S3 data (one node, and two nodes taking chunks in
/// turn) against the AWS SDK's own multipart upload (TransferUtility, same part size and concurrency) of the same file
/// to the same gateway, interleaved; and the chunk acknowledgement latency with PostgreSQL metadata under four
/// concurrent uploads.
/// </summary>
internal sealed class SharedStoresScenario(BenchOptions options, SharedStores stores, HttpClient http, SafeFileHandle source, string sourcePath, Func<long, string> sha256Of, Action<string> log)
{
    public const string OneNode = "cu-s3";
    public const string TwoNodes = "cu-s3-2nodes";
    public const string Sdk = "sdk-s3";
    private const long MiB = 1024 * 1024;
    private readonly List<ServerProcess> _nodes = [];

    public double[]? AckLatenciesMs { get; private set; }

    public async Task<List<RunResult>> RunAsync(CancellationToken ct)
    {
        var results = new List<RunResult>();
        string bucket = "bench-" + Guid.NewGuid().ToString("N")[..12];
        string logs = Path.Combine(options.WorkDir, "logs");
        try
        {
            for (int i = 0; i < 2; i++)
            {
                int port = ServerProcess.FreePort();
                string dir = Path.Combine(options.WorkDir, "storage", $"s3-node{i}");
                string[] args =
                [
                    options.ServerDll!, "--urls", $"http://127.0.0.1:{port}", $"--Upload:StorageRoot={dir}", .. options.ServerArgs,
                    "--Storage:Nodes=2", "--Storage:Metadata=PostgreSQL", "--Storage:Data=S3",
                    $"--ConnectionStrings:Uploads={stores.PostgresConnection}", $"--S3:ServiceUrl={stores.S3Url}",
                    $"--S3:AccessKey={stores.AccessKey}", $"--S3:SecretKey={stores.SecretKey}", $"--S3:Bucket={bucket}",
                ];
                _nodes.Add(ServerProcess.Start($"s3-node{i}", "dotnet", args, port, dir, logs));
                await _nodes[^1].WaitReadyAsync(http, "healthz", TimeSpan.FromSeconds(90)); // one at a time: the first migrates the schema
            }

            using var s3 = new AmazonS3Client(new BasicAWSCredentials(stores.AccessKey, stores.SecretKey), new AmazonS3Config
            {
                ServiceURL = stores.S3Url.ToString(),
                ForcePathStyle = true,
                RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
                ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            });
            long size = options.SizeMiB * MiB;
            long chunk = 8 * MiB;
            for (int run = 1; run <= options.Runs; run++)
            {
                foreach (var target in new[] { OneNode, TwoNodes, Sdk })
                {
                    var r = await OnceAsync(target, s3, bucket, size, chunk, run, ct);
                    results.Add(r);
                    log($"S3 run {run}/{options.Runs} {target,-14}: {r.MiBps,8:F1} MiB/s");
                }
            }

            // Chunk acknowledgement latency with PostgreSQL metadata: four uploads at once, one chunk in flight each.
            var latencies = new ConcurrentBag<double>();
            var client = new ResumableClient(http, _nodes[0].BaseUri, options.PollMs) { AckLatencies = latencies };
            long each = Math.Max(chunk, size / 4 / chunk * chunk);
            await Task.WhenAll(Enumerable.Range(0, 4).Select(i =>
                client.UploadAsync(source, each, chunk, 1, $"ack-{Guid.NewGuid():N}", $"ack-{i}.bin", TimeSpan.FromSeconds(options.TimeoutSeconds), ct)));
            AckLatenciesMs = [.. latencies];
            log($"ack latency, 4 concurrent uploads: p50 {Stats.Percentile(AckLatenciesMs, 50):F1} ms, p99 {Stats.Percentile(AckLatenciesMs, 99):F1} ms ({AckLatenciesMs.Length} chunks)");
        }
        finally
        {
            foreach (var node in _nodes)
                node.Dispose();
        }

        return results;
    }

    private async Task<RunResult> OnceAsync(string target, AmazonS3Client s3, string bucket, long size, long chunk, int run, CancellationToken ct)
    {
        string id = $"bench-{Guid.NewGuid():N}";
        var cpu = CpuMark.Start(_nodes[0]);
        UploadTiming timing;
        switch (target)
        {
            case Sdk:
                var start = Stopwatch.GetTimestamp();
                using (var transfer = new TransferUtility(s3, new TransferUtilityConfig { ConcurrentServiceRequests = options.Inflight }))
                {
                    await using var stream = new FileStream(sourcePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
                    await transfer.UploadAsync(new TransferUtilityUploadRequest
                    {
                        BucketName = bucket,
                        Key = "sdk/" + id,
                        InputStream = new LimitedStream(stream, size),
                        PartSize = chunk,
                        AutoCloseStream = false,
                    }, ct);
                }

                timing = new UploadTiming(Stopwatch.GetElapsedTime(start).TotalSeconds, 0, null, 0);
                var head = await s3.GetObjectMetadataAsync(bucket, "sdk/" + id, ct);
                if (head.ContentLength != size)
                    throw new BenchException($"the SDK stored {head.ContentLength} bytes, not {size}");
                await s3.DeleteObjectAsync(bucket, "sdk/" + id, ct);
                break;
            default:
                var client = target == OneNode
                    ? new ResumableClient(http, _nodes[0].BaseUri, options.PollMs)
                    : new ResumableClient(http, [.. _nodes.Select(n => n.BaseUri)], options.PollMs);
                timing = await client.UploadAsync(source, size, chunk, options.Inflight, id, "bench.bin", TimeSpan.FromSeconds(options.TimeoutSeconds), ct);
                if (!SourceFile.SameSha256(timing.ServerSha256 ?? "", sha256Of(size)))
                    throw new BenchException($"{target} reports sha256 {timing.ServerSha256}, expected {sha256Of(size)}");
                using (var delete = await http.DeleteAsync(new Uri(_nodes[0].BaseUri, "uploads/" + id), ct))
                {
                }

                break;
        }

        var (serverCpu, clientCpu) = cpu.Stop();
        return new RunResult("s3", target, size, chunk, options.Inflight, run, timing.Seconds, timing.TailSeconds, _nodes[0].PeakRssBytes(), timing.Retries, serverCpu, clientCpu);
    }

    /// <summary>The first <paramref name="length"/> bytes of a seekable stream.</summary>
    private sealed class LimitedStream(Stream inner, long length) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;

        public override long Position
        {
            get => inner.Position;
            set => inner.Position = Math.Min(value, length);
        }

        public override int Read(byte[] buffer, int offset, int count) =>
            inner.Read(buffer, offset, (int)Math.Min(count, Math.Max(0, length - inner.Position)));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, Math.Max(0, length - inner.Position))], cancellationToken);

        public override long Seek(long offset, SeekOrigin origin)
        {
            Position = origin switch { SeekOrigin.Begin => offset, SeekOrigin.Current => Position + offset, _ => length + offset };
            return Position;
        }

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
