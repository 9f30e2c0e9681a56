using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace ChunkUpload.Bench;

/// <summary>One measured upload of one target.</summary>
internal sealed record RunResult(
    string Scenario, string Target, long SizeBytes, long ChunkBytes, int Inflight, int Run,
    double Seconds, double TailSeconds, long PeakRssBytes, int Retries, double ServerCpuSeconds, double ClientCpuSeconds)
{
    public double MiBps => SizeBytes / 1048576.0 / Seconds;
}

/// <summary>Starts the servers, runs every scenario interleaved, verifies what arrived, prints the table.</summary>
internal sealed class Runner : IAsyncDisposable
{
    private const string FileName = "bench.bin";
    private const long MiB = 1024 * 1024;

    private readonly BenchOptions _o;
    private readonly Dictionary<string, ServerProcess> _servers = [];
    private readonly List<RunResult> _results = [];
    private readonly List<string> _notes = [];
    private readonly Report _report;
    private HttpClient? _http;
    private SourceFile? _source;
    private SafeFileHandle? _sourceHandle;
    private bool _rssResettable = true;
    private bool _shaMissingNoted;
    private bool _failed;

    public Runner(BenchOptions options)
    {
        _o = options;
        _report = new Report(options);

        // However the benchmark ends (SIGTERM included), the servers it started go with it.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => StopServers();
    }

    private HttpClient Http => _http ?? throw new InvalidOperationException("not started");

    private SourceFile Source => _source ?? throw new InvalidOperationException("not started");

    private SafeFileHandle SourceHandle => _sourceHandle ?? throw new InvalidOperationException("not started");

    private TimeSpan Bound => TimeSpan.FromSeconds(_o.TimeoutSeconds);

    private bool HasChunkUpload => _o.Targets.Contains(TargetNames.ChunkUpload);

    public async Task<int> RunAsync(CancellationToken ct)
    {
        var exitCode = 0;
        try
        {
            Prepare();
            await StartServersAsync(ct);
            await MainRunsAsync(ct);
            await TusSingleRunsAsync(ct);
            await SinglePutRunsAsync(ct);
            await SharedStoresAsync(ct);
            await RssRunsAsync(ct);
            await TailRunsAsync(ct);
            await TestGetAsync(ct);
            await SmallFilesAsync(ct);
        }
        catch (Exception e) when (e is BenchException or HttpRequestException or OperationCanceledException or IOException or InvalidOperationException
            or TimeoutException or JsonException or FormatException or UnauthorizedAccessException)
        {
            exitCode = 1;
            _failed = true;
            _notes.Add(ct.IsCancellationRequested ? "CANCELLED (SIGINT/SIGTERM): the table holds the runs finished before." : $"FAILED: {e.GetType().Name}: {e.Message}");
            await Console.Error.WriteLineAsync($"benchmark failed: {e}");
            foreach (var server in _servers.Values)
            {
                await Console.Error.WriteLineAsync($"--- last lines of {server.LogPath}\n{ServerProcess.Tail(server.LogPath)}");
            }
        }

        var table = _report.Render(_results, _notes);
        Console.WriteLine();
        Console.WriteLine(table);
        if (_o.ResultsPath is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(_o.ResultsPath)!);
            await File.WriteAllTextAsync(_o.ResultsPath, table, CancellationToken.None);
            await File.WriteAllTextAsync(_o.ResultsPath + ".json", JsonSerializer.Serialize(_results, ResultJson.Options), CancellationToken.None);
            Console.WriteLine($"results written to {_o.ResultsPath} and {_o.ResultsPath}.json");
        }

        return exitCode;
    }

    private void Prepare()
    {
        if (_o.Targets.Any(t => t.StartsWith(TargetNames.ChunkUpload, StringComparison.Ordinal)) && !File.Exists(_o.ServerDll))
        {
            throw new BenchException($"ChunkUpload.Server.dll not found (--server-dll {_o.ServerDll})");
        }

        if (_o.Targets.Any(t => t.StartsWith(TargetNames.Raw, StringComparison.Ordinal)) && !File.Exists(_o.RawPutDll))
        {
            throw new BenchException($"RawPut.dll not found (--rawput-dll {_o.RawPutDll})");
        }

        if ((_o.Targets.Contains(TargetNames.Tus) || _o.Targets.Contains(TargetNames.Baseline))
            && !Directory.Exists(Path.Combine(_o.BenchDir, "node_modules", "@tus", "server")))
        {
            throw new BenchException($"{_o.BenchDir}/node_modules is missing: run npm ci --prefix bench");
        }

        Directory.CreateDirectory(_o.WorkDir);
        Directory.CreateDirectory(Path.Combine(_o.WorkDir, "logs"));

        var sizes = new List<long> { _o.SizeMiB * MiB, Math.Min(_o.SizeMiB, 64) * MiB };
        sizes.AddRange(_o.TailSizesMiB.Select(s => s * MiB));
        var testGetBytes = (_o.TestGetChunks + 1L) * _o.TestGetChunkKiB * 1024;
        var smallBytes = _o.SmallFileKiB * 1024L * 2;
        var length = Math.Max(sizes.Max(), Math.Max(testGetBytes, smallBytes));
        var path = Path.Combine(_o.WorkDir, "source.bin");
        Log($"writing {length / (double)MiB:F0} MiB of random bytes to {path}");
        _source = SourceFile.Create(path, length, sizes);
        _sourceHandle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);

        _http = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            MaxConnectionsPerServer = Math.Max(16, 2 * Math.Max(_o.Inflight, _o.RssInflight)),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    private async Task StartServersAsync(CancellationToken ct)
    {
        var logs = Path.Combine(_o.WorkDir, "logs");
        var storage = Path.Combine(_o.WorkDir, "storage");

        ServerProcess StartChunkUpload(string name, IEnumerable<string> extra)
        {
            var port = ServerProcess.FreePort();
            var dir = Path.Combine(storage, name);
            string[] args = [_o.ServerDll!, "--urls", $"http://127.0.0.1:{port}", $"--Upload:StorageRoot={dir}", .. _o.ServerArgs, .. extra];
            return ServerProcess.Start(name, "dotnet", args, port, dir, logs);
        }

        var starts = new List<(ServerProcess Server, string ReadyPath)>();
        foreach (var target in _o.Targets)
        {
            ServerProcess? server = null;
            switch (target)
            {
                case TargetNames.ChunkUpload:
                    server = StartChunkUpload(target, []);
                    break;
                case TargetNames.ChunkUploadRelaxed:
                    server = StartChunkUpload(target, _o.RelaxedArgs ?? []);
                    break;
                case TargetNames.ChunkUploadTus or TargetNames.ChunkUploadTusRelaxed or TargetNames.ChunkUploadGoogle or TargetNames.ChunkUploadNginx:
                    // ChunkUpload's other endpoints are served by the same process as its resumable.js endpoint.
                    var twin = target == TargetNames.ChunkUploadTusRelaxed ? TargetNames.ChunkUploadRelaxed : TargetNames.ChunkUpload;
                    if (!_servers.TryGetValue(twin, out var process))
                    {
                        process = StartChunkUpload(twin, twin == TargetNames.ChunkUploadRelaxed ? _o.RelaxedArgs ?? [] : []);
                        _servers[twin + "-process"] = process;
                        starts.Add((process, "healthz"));
                    }

                    _servers[target] = process;
                    continue;
                case TargetNames.ChunkUploadBefore:
                    var beforePort = ServerProcess.FreePort();
                    var beforeDir = Path.Combine(storage, target);
                    string[] beforeArgs = [_o.BeforeServerDll!, "--urls", $"http://127.0.0.1:{beforePort}", $"--Upload:StorageRoot={beforeDir}", .. _o.ServerArgs];
                    server = ServerProcess.Start(target, "dotnet", beforeArgs, beforePort, beforeDir, logs);
                    break;
                case TargetNames.Raw or TargetNames.RawFsync:
                    if (_servers.TryGetValue(TargetNames.Raw, out var shared) || _servers.TryGetValue(TargetNames.RawFsync, out shared))
                    {
                        _servers[target] = shared;
                        continue;
                    }

                    var rawPort = ServerProcess.FreePort();
                    var rawDir = Path.Combine(storage, "raw");
                    server = ServerProcess.Start("rawput", "dotnet", [_o.RawPutDll!, "--urls", $"http://127.0.0.1:{rawPort}", "--storage", rawDir], rawPort, rawDir, logs);
                    break;
                case TargetNames.Tus:
                    var tusPort = ServerProcess.FreePort();
                    var tusDir = Path.Combine(storage, "tus");
                    server = ServerProcess.Start("tus", "node", [Path.Combine(_o.BenchDir, "peers", "tus-server.mjs"), tusPort.ToString(CultureInfo.InvariantCulture), tusDir], tusPort, tusDir, logs);
                    break;
                case TargetNames.Baseline:
                    var basePort = ServerProcess.FreePort();
                    var baseDir = Path.Combine(storage, "baseline");
                    server = ServerProcess.Start("baseline", "node", [Path.Combine(_o.BenchDir, "peers", "resumable-baseline.mjs"), basePort.ToString(CultureInfo.InvariantCulture), baseDir], basePort, baseDir, logs);
                    break;
                default:
                    break;
            }

            if (server is not null)
            {
                _servers[target] = server;
                starts.Add((server, "healthz"));
            }
        }

        foreach (var (server, path) in starts)
        {
            await server.WaitReadyAsync(Http, path, TimeSpan.FromSeconds(60));
            Log($"{server.Name} ready on 127.0.0.1:{server.Port} (pid {server.Pid})");
        }

        ct.ThrowIfCancellationRequested();
    }

    private async Task MainRunsAsync(CancellationToken ct)
    {
        foreach (var chunkMiB in _o.ChunkMiB)
        {
            var chunk = chunkMiB * MiB;
            for (var w = 0; w < _o.Warmup; w++)
            {
                foreach (var target in _o.Targets.Where(t => t != TargetNames.ChunkUploadGoogle))
                {
                    var warm = Math.Min(_o.SizeMiB, 64) * MiB;
                    var r = await RunOnceAsync("warmup", target, warm, chunk, _o.Inflight, -1, ct);
                    Log($"warm-up {TargetNames.Display(target),-24} {chunkMiB} MiB chunks: {r.MiBps,8:F1} MiB/s");
                }
            }

            for (var run = 1; run <= _o.Runs; run++)
            {
                // The Google-style target sends the whole file in one PUT whatever the chunk size: see SinglePutRunsAsync.
                foreach (var target in _o.Targets.Where(t => t != TargetNames.ChunkUploadGoogle))
                {
                    var r = await RunOnceAsync("main", target, _o.SizeMiB * MiB, chunk, _o.Inflight, run, ct);
                    _results.Add(r);
                    Log($"run {run}/{_o.Runs} {TargetNames.Display(target),-24} {chunkMiB} MiB chunks: {r.MiBps,8:F1} MiB/s, tail {r.TailSeconds * 1000,7:F1} ms, peak RSS {r.PeakRssBytes / (double)MiB,6:F1} MiB");
                }
            }
        }
    }

    /// <summary>The whole file as one tus PATCH (tus-js-client's default chunkSize: Infinity), every tus target interleaved.</summary>
    private async Task TusSingleRunsAsync(CancellationToken ct)
    {
        var targets = _o.Targets.Where(TargetNames.IsTus).ToList();
        if (!_o.TusSingle || targets.Count == 0)
        {
            return;
        }

        var size = _o.SizeMiB * MiB;
        for (var run = 1; run <= _o.Runs; run++)
        {
            foreach (var target in targets)
            {
                var r = await RunOnceAsync("tus-single", target, size, size, 1, run, ct);
                _results.Add(r);
                Log($"single PATCH run {run}/{_o.Runs} {TargetNames.Display(target),-24}: {r.MiBps,8:F1} MiB/s, peak RSS {r.PeakRssBytes / (double)MiB,6:F1} MiB");
            }
        }
    }

    /// <summary>The whole file as one PUT: ChunkUpload's Google-style endpoint against the raw Kestrel PUT sink, interleaved.</summary>
    private async Task SinglePutRunsAsync(CancellationToken ct)
    {
        var targets = _o.Targets.Where(t => t is TargetNames.ChunkUploadGoogle or TargetNames.Raw or TargetNames.RawFsync).ToList();
        if (!_o.SinglePut || !targets.Contains(TargetNames.ChunkUploadGoogle))
        {
            return;
        }

        var size = _o.SizeMiB * MiB;
        for (var run = 1; run <= _o.Runs; run++)
        {
            foreach (var target in targets)
            {
                var r = await RunOnceAsync("single-put", target, size, size, 1, run, ct);
                _results.Add(r);
                Log($"single PUT run {run}/{_o.Runs} {TargetNames.Display(target),-24}: {r.MiBps,8:F1} MiB/s, peak RSS {r.PeakRssBytes / (double)MiB,6:F1} MiB");
            }
        }
    }

    private async Task SharedStoresAsync(CancellationToken ct)
    {
        if (_o.PostgresConnection is null || _o.S3Url is null)
        {
            return;
        }

        var stores = new SharedStores(_o.PostgresConnection, _o.S3Url, _o.S3Key ?? "", _o.S3Secret ?? "");
        var scenario = new SharedStoresScenario(_o, stores, Http, SourceHandle, Source.Path, Source.Sha256OfPrefix, Log);
        _results.AddRange(await scenario.RunAsync(ct));
        _report.AckLatenciesMs = scenario.AckLatenciesMs;
    }

    private async Task RssRunsAsync(CancellationToken ct)
    {
        if (_o.RssInflight <= 0 || !HasChunkUpload)
        {
            return;
        }

        foreach (var chunkMiB in _o.ChunkMiB)
        {
            var r = await RunOnceAsync("rss", TargetNames.ChunkUpload, _o.SizeMiB * MiB, chunkMiB * MiB, _o.RssInflight, 1, ct);
            _results.Add(r);
            Log($"ChunkUpload {_o.RssInflight} in flight, {chunkMiB} MiB chunks: {r.MiBps:F1} MiB/s, peak RSS {r.PeakRssBytes / (double)MiB:F1} MiB");
        }
    }

    private async Task TailRunsAsync(CancellationToken ct)
    {
        if (_o.TailSizesMiB.Count == 0 || !HasChunkUpload)
        {
            return;
        }

        var chunk = _o.ChunkMiB.Max() * MiB;
        for (var run = 1; run <= _o.TailRuns; run++)
        {
            foreach (var sizeMiB in _o.TailSizesMiB)
            {
                var r = await RunOnceAsync("tail", TargetNames.ChunkUpload, sizeMiB * MiB, chunk, _o.Inflight, run, ct);
                _results.Add(r);
                Log($"tail run {run}/{_o.TailRuns}, {sizeMiB} MiB: {r.MiBps:F1} MiB/s, tail {r.TailSeconds * 1000:F1} ms");
            }
        }
    }

    /// <summary>Uploads one target once, checks what arrived, deletes it, and measures peak RSS.</summary>
    private async Task<RunResult> RunOnceAsync(string scenario, string target, long size, long chunk, int inflight, int run, CancellationToken ct)
    {
        var server = _servers[target];
        var before = Snapshot(server.Storage);
        ResetRss(server);
        var cpu = CpuMark.Start(server);
        var id = $"bench-{Guid.NewGuid():N}";
        UploadTiming timing;
        string? storedPath = null;
        switch (target)
        {
            case TargetNames.ChunkUpload or TargetNames.ChunkUploadRelaxed or TargetNames.ChunkUploadBefore:
                timing = await new ResumableClient(Http, server.BaseUri, _o.PollMs, _o.TestChunks).UploadAsync(SourceHandle, size, chunk, inflight, id, FileName, Bound, ct);
                CheckServerSha(target, timing.ServerSha256, Source.Sha256OfPrefix(size));
                break;
            case TargetNames.ChunkUploadTus or TargetNames.ChunkUploadTusRelaxed:
                // Timed until the last PATCH is answered; ChunkUpload answers it once the file is complete and hashed.
                (timing, var uploadId) = await new TusClient(Http, server.BaseUri, "tus").UploadAsync(SourceHandle, 0, size, chunk, FileName, Bound, ct);
                CheckServerSha(target, await new ResumableClient(Http, server.BaseUri, _o.PollMs).WaitCompleteAsync(uploadId, ct), Source.Sha256OfPrefix(size));
                break;
            case TargetNames.ChunkUploadGoogle:
                timing = await new GoogleClient(Http, server.BaseUri).UploadAsync(SourceHandle, size, id, Bound, ct);
                CheckServerSha(target, await new ResumableClient(Http, server.BaseUri, _o.PollMs).WaitCompleteAsync(id, ct), Source.Sha256OfPrefix(size));
                break;
            case TargetNames.ChunkUploadNginx:
                timing = await new NginxClient(Http, server.BaseUri).UploadAsync(SourceHandle, size, chunk, inflight, id, FileName, Bound, ct);
                CheckServerSha(target, await new ResumableClient(Http, server.BaseUri, _o.PollMs).WaitCompleteAsync(id, ct), Source.Sha256OfPrefix(size));
                break;
            case TargetNames.Raw or TargetNames.RawFsync:
                timing = await new RawPutClient(Http, server.BaseUri).UploadAsync(SourceHandle, size, id, target == TargetNames.RawFsync, Bound, ct);
                storedPath = Path.Combine(server.Storage, id);
                break;
            case TargetNames.Tus:
                (timing, var tusId) = await new TusClient(Http, server.BaseUri).UploadAsync(SourceHandle, 0, size, chunk, FileName, Bound, ct);
                storedPath = Path.Combine(server.Storage, tusId);
                break;
            case TargetNames.Baseline:
                timing = await new ResumableClient(Http, server.BaseUri, _o.PollMs, _o.TestChunks).UploadAsync(SourceHandle, size, chunk, inflight, id, FileName, Bound, ct);
                storedPath = Path.Combine(server.Storage, "files", $"{id}-benchbin");
                break;
            default:
                throw new BenchException($"unknown target {target}");
        }

        var (serverCpu, clientCpu) = cpu.Stop();
        var rss = server.PeakRssBytes();
        if (storedPath is not null)
        {
            var actual = SourceFile.HashFile(storedPath);
            if (actual != Source.Sha256OfPrefix(size))
            {
                throw new BenchException($"{TargetNames.Display(target)} stored {storedPath} with SHA-256 {actual}, expected {Source.Sha256OfPrefix(size)}");
            }
        }

        DeleteNew(server.Storage, before);
        SyncDisk();
        return new RunResult(scenario, target, size, chunk, inflight, run, timing.Seconds, timing.TailSeconds, rss, timing.Retries, serverCpu, clientCpu);
    }

    private void CheckServerSha(string target, string? reported, string expected)
    {
        if (reported is null)
        {
            if (!_shaMissingNoted)
            {
                _shaMissingNoted = true;
                _notes.Add($"{TargetNames.Display(target)}: GET /uploads/{{id}} had no \"sha256\" field, so its bytes were not verified.");
            }

            return;
        }

        if (!SourceFile.SameSha256(reported, expected))
        {
            throw new BenchException($"{TargetNames.Display(target)} reports sha256 {reported}, expected {expected}");
        }
    }

    private async Task TestGetAsync(CancellationToken ct)
    {
        if (_o.TestGetChunks <= 0 || !HasChunkUpload)
        {
            return;
        }

        var server = _servers[TargetNames.ChunkUpload];
        var before = Snapshot(server.Storage);
        var client = new ResumableClient(Http, server.BaseUri, _o.PollMs);
        long chunk = _o.TestGetChunkKiB * 1024L;
        long stored = _o.TestGetChunks;
        var size = (stored + 1) * chunk;
        var id = $"bench-testget-{Guid.NewGuid():N}";
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Bound);

        // Every chunk but the last: the session stays incomplete, as during a resume.
        Log($"chunk test GET: storing {stored} chunks of {_o.TestGetChunkKiB} KiB");
        long next = 0;
        var start = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, _o.Inflight).Select(_ => Task.Run(
            async () =>
            {
                long n;
                while ((n = Interlocked.Increment(ref next)) <= stored)
                {
                    await client.PostChunkAsync(SourceHandle, n, size, chunk, id, FileName, timeout.Token);
                }
            },
            timeout.Token)));
        var storeSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;

        var random = new Random(4);
        var warm = Math.Min(1000, _o.TestGetRequests);
        for (var i = 0; i < warm; i++)
        {
            await client.TestChunkAsync(random.NextInt64(1, stored + 2), size, chunk, id, FileName, timeout.Token);
        }

        var latencies = new double[_o.TestGetRequests];
        var wrong = 0;
        var throttled = 0;
        for (var i = 0; i < latencies.Length; i++)
        {
            var n = random.NextInt64(1, stored + 2);
            var t0 = Stopwatch.GetTimestamp();
            var status = await client.TestChunkAsync(n, size, chunk, id, FileName, timeout.Token);
            latencies[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            var present = status is HttpStatusCode.OK or HttpStatusCode.Created;
            if (status == HttpStatusCode.TooManyRequests)
            {
                throttled++;
            }
            else if (present != (n <= stored))
            {
                wrong++;
            }
        }

        _report.TestGet = new TestGetResult(stored, chunk, stored / storeSeconds, latencies, wrong, throttled);
        Log($"chunk test GET: p50 {Stats.Percentile(latencies, 50):F3} ms, p99 {Stats.Percentile(latencies, 99):F3} ms, wrong answers {wrong}, throttled (429) {throttled}");
        DeleteNew(server.Storage, before);
        SyncDisk();
    }

    private async Task SmallFilesAsync(CancellationToken ct)
    {
        if (_o.SmallFiles <= 0)
        {
            return;
        }

        var targets = new[] { TargetNames.ChunkUpload, TargetNames.Tus }.Where(_o.Targets.Contains).ToArray();
        if (targets.Length == 0)
        {
            return;
        }

        for (var run = 1; run <= _o.Runs; run++)
        {
            foreach (var target in targets)
            {
                var r = await SmallFilesOnceAsync(target, run, ct);
                _results.Add(r);
                Log($"small files run {run}/{_o.Runs} {TargetNames.Display(target),-24}: {_o.SmallFiles / r.Seconds:F0} files/s");
            }
        }
    }

    private async Task<RunResult> SmallFilesOnceAsync(string target, int run, CancellationToken ct)
    {
        var server = _servers[target];
        var before = Snapshot(server.Storage);
        ResetRss(server);
        long bytes = _o.SmallFileKiB * 1024L;
        var slots = Math.Max(1, (Source.Length - bytes) / bytes);
        var prefix = Guid.NewGuid().ToString("N");
        var reported = new string?[_o.SmallFiles];
        var resumable = new ResumableClient(Http, server.BaseUri, _o.PollMs);
        var tus = new TusClient(Http, server.BaseUri);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Bound);
        var next = -1;
        var cpu = CpuMark.Start(server);
        var start = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, _o.Inflight).Select(_ => Task.Run(
            async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < _o.SmallFiles)
                {
                    var offset = i % slots * bytes;
                    if (target == TargetNames.Tus)
                    {
                        await tus.UploadAsync(SourceHandle, offset, bytes, bytes, $"small-{i}.bin", Bound, timeout.Token);
                    }
                    else
                    {
                        // resumable.js's default 1 MiB chunk size: a 64 KiB file is one chunk.
                        var id = $"small-{prefix}-{i}";
                        await resumable.PostChunkAsync(SourceHandle, 1, bytes, MiB, id, $"small-{i}.bin", timeout.Token, offset);
                        reported[i] = await resumable.WaitCompleteAsync(id, timeout.Token);
                    }
                }
            },
            timeout.Token)));
        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var (serverCpu, clientCpu) = cpu.Stop();
        var rss = server.PeakRssBytes();

        if (target == TargetNames.ChunkUpload)
        {
            var buffer = new byte[bytes];
            for (var i = 0; i < reported.Length; i++)
            {
                RandomAccess.Read(SourceHandle, buffer, i % slots * bytes);
                CheckServerSha(target, reported[i], Convert.ToHexStringLower(SHA256.HashData(buffer)));
            }
        }

        DeleteNew(server.Storage, before);
        SyncDisk();
        return new RunResult("small", target, bytes * _o.SmallFiles, bytes, _o.Inflight, run, seconds, 0, rss, 0, serverCpu, clientCpu);
    }

    private void ResetRss(ServerProcess server)
    {
        if (!server.ResetPeakRss() && _rssResettable)
        {
            _rssResettable = false;
            _notes.Add("The kernel refused /proc/PID/clear_refs: peak RSS is the peak since the server started.");
        }
    }

    /// <summary>Files under a storage root before a run, so that only what the run added is deleted afterwards.</summary>
    private static HashSet<string> Snapshot(string root) =>
        Directory.Exists(root) ? [.. Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories)] : [];

    /// <summary>Deletes files and folders the run created, sparing anything that looks like a database or lock.</summary>
    private static void DeleteNew(string root, HashSet<string> before)
    {
        if (!Directory.Exists(root))
        {
            return;
        }

        // Best effort: the server may still be tidying its own files (e.g. removing a finished session) meanwhile.
        foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).ToList())
        {
            var name = Path.GetFileName(file);
            var keep = name.Contains(".db", StringComparison.OrdinalIgnoreCase)
                || name.Contains(".sqlite", StringComparison.OrdinalIgnoreCase)
                || name.EndsWith(".lock", StringComparison.OrdinalIgnoreCase);
            if (!before.Contains(file) && !keep)
            {
                Try(() => File.Delete(file));
            }
        }

        foreach (var dir in Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).ToList())
        {
            Try(() =>
            {
                if (!before.Contains(dir) && !Directory.EnumerateFileSystemEntries(dir).Any())
                {
                    Directory.Delete(dir);
                }
            });
        }

        static void Try(Action action)
        {
            try
            {
                action();
            }
            catch (IOException)
            {
                // gone already, or refilled by the server: left for the end of the benchmark
            }
        }
    }

    /// <summary>Writes dirty pages back between runs (outside the timed part) so one run's writeback does not land in the next.</summary>
    private void SyncDisk()
    {
        if (!_o.Sync)
        {
            return;
        }

        using var sync = Process.Start(new ProcessStartInfo("sync") { UseShellExecute = false });
        if (sync is not null && !sync.WaitForExit(120_000))
        {
            _notes.Add("sync(1) took over 120 s once; later runs may see writeback.");
        }
    }

    private static void Log(string message) =>
        Console.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}");

    private void StopServers()
    {
        lock (_servers)
        {
            foreach (var server in _servers.Values.Distinct())
            {
                server.Dispose();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        StopServers();

        _http?.Dispose();
        _sourceHandle?.Dispose();
        if (!_o.KeepWork && Directory.Exists(_o.WorkDir))
        {
            try
            {
                if (_failed)
                {
                    // Keep the server logs for the post-mortem, drop the bulky data.
                    foreach (var entry in Directory.EnumerateFileSystemEntries(_o.WorkDir).Where(e => Path.GetFileName(e) != "logs"))
                    {
                        if (Directory.Exists(entry))
                        {
                            Directory.Delete(entry, recursive: true);
                        }
                        else
                        {
                            File.Delete(entry);
                        }
                    }

                    await Console.Error.WriteLineAsync($"server logs kept in {Path.Combine(_o.WorkDir, "logs")}");
                }
                else
                {
                    Directory.Delete(_o.WorkDir, recursive: true);
                }
            }
            catch (IOException e)
            {
                await Console.Error.WriteLineAsync($"could not delete {_o.WorkDir}: {e.Message}");
            }
        }
    }
}

/// <summary>CPU seconds used by the server and by this client between Start and Stop.</summary>
internal readonly struct CpuMark
{
    private readonly ServerProcess _server;
    private readonly TimeSpan _server0;
    private readonly TimeSpan _client0;

    private CpuMark(ServerProcess server)
    {
        _server = server;
        _server0 = server.CpuTime();
        _client0 = Process.GetCurrentProcess().TotalProcessorTime;
    }

    public static CpuMark Start(ServerProcess server) => new(server);

    public (double Server, double Client) Stop() =>
        ((_server.CpuTime() - _server0).TotalSeconds, (Process.GetCurrentProcess().TotalProcessorTime - _client0).TotalSeconds);
}

internal static class ResultJson
{
    public static readonly JsonSerializerOptions Options = new() { WriteIndented = true };
}
