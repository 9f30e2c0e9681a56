using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ChunkUpload.Bench;
using ChunkUpload.FaultTests.Infrastructure;
using Microsoft.Win32.SafeHandles;
using Xunit.Abstractions;

namespace ChunkUpload.FaultTests;

/// <summary>
/// Issue 5, crash safety: the real server process is SIGKILLed at random moments (seeded; the seed is printed)
/// while chunks are written, right after a file's last chunk is acknowledged (assembly), and during start-up
/// recovery, at least 20 times during the upload of two 256 MiB files in 4 MiB chunks, 4 in flight, multipart as
/// resumable.js sends it. After each restart the client resumes as resumable.js does: a test GET per chunk
/// (200 skip, 204 send). Alongside, a 64 MiB file goes up over tus (PROTOCOLS.md section 10): one POST, then PATCHes
/// of a few MiB and some larger than the engine's 8 MiB piece, so kills land mid-body; after each restart the client
/// HEADs and PATCHes on from the offset, which must never be below what a 204 acknowledged nor above what the client
/// sent. Every file must end byte-identical, no acknowledged chunk may ever be asked for again, and no temp or
/// orphaned file may remain. Set CHUNKUPLOAD_CRASH_SEED to replay a run.
/// </summary>
public sealed class CrashRecoveryTests(ITestOutputHelper output)
{
    private const long FileSize = 256L * 1024 * 1024;
    private const long ChunkSize = 4L * 1024 * 1024;
    private const int FileCount = 2;
    private const int InFlight = 4;
    private const long TusFileSize = 64L * 1024 * 1024;
    private const long PieceSize = 8L * 1024 * 1024; // Upload:SegmentSize, the engine's piece
    private const string TusVersion = "1.0.0";
    private const int TargetKills = 30;
    private const int MaxEpochs = 150;
    private static readonly TimeSpan TestBudget = TimeSpan.FromMinutes(12);
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan HealthTimeout = TimeSpan.FromSeconds(90);

    private readonly Figures _figures = new(output);

    [Fact]
    public async Task SigKill_At_Random_Moments_Loses_Nothing_Acknowledged_And_Files_End_Byte_Identical()
    {
        int seed = Environment.GetEnvironmentVariable("CHUNKUPLOAD_CRASH_SEED") is { Length: > 0 } s
            ? int.Parse(s, CultureInfo.InvariantCulture)
            : Random.Shared.Next(1, int.MaxValue);
        var run = new CrashRun(seed, _figures);
        try
        {
            await run.ExecuteAsync();
        }
        finally
        {
            run.Report();
            _figures.Save("crash-figures.txt");
            run.Dispose();
        }

        Assert.True(run.Failures.Count == 0, "Crash test failures:\n" + string.Join('\n', run.Failures));
    }

    private sealed class SourceFile : IDisposable
    {
        public required string Path { get; init; }
        public required string Identifier { get; init; }
        public required string Name { get; init; }
        public required string Sha256 { get; init; }
        public required SafeFileHandle Handle { get; init; }
        public required int Index { get; init; }
        public long Size { get; } = FileSize;
        public int TotalChunks { get; } = (int)Math.Max(FileSize / ChunkSize, 1);
        public bool[] Acked { get; } = new bool[(int)Math.Max(FileSize / ChunkSize, 1) + 1];
        public bool AssemblyKillDone { get; set; }

        /// <summary>The server run in which the last missing chunk was acknowledged (-1 until then).</summary>
        public int AllAckedInRun { get; set; } = -1;

        /// <summary>When (test clock) the last missing chunk was acknowledged.</summary>
        public TimeSpan AllAckedAt { get; set; }

        public bool AllAcked
        {
            get
            {
                for (int n = 1; n <= TotalChunks; n++)
                {
                    if (!Acked[n])
                        return false;
                }

                return true;
            }
        }

        public long Offset(int chunk) => Math.Min((chunk - 1) * ChunkSize, Size);

        public long Length(int chunk) => chunk == TotalChunks ? Size - Offset(chunk) : ChunkSize;

        public void Dispose() => Handle.Dispose();
    }

    /// <summary>The tus upload as its client knows it: what a 204 acknowledged and the most the server can have.</summary>
    private sealed class TusUpload : IDisposable
    {
        public required string Path { get; init; }
        public required string Name { get; init; }
        public required string Sha256 { get; init; }
        public required SafeFileHandle Handle { get; init; }
        public long Size { get; } = TusFileSize;

        /// <summary>The upload URL's path from the creation's Location (null until a 201 arrived).</summary>
        public string? Location { get; set; }

        public string Identifier => Location is { } location ? location[(location.LastIndexOf('/') + 1)..] : "";

        /// <summary>The highest Upload-Offset a 204 acknowledged: it must never be lost.</summary>
        public long Acked { get; set; }

        /// <summary>The highest offset a HEAD reported (durable too: a later HEAD must not report less).</summary>
        public long Reported { get; set; }

        public long Durable => Math.Max(Acked, Reported);

        /// <summary>The end of the bytes handed to a connection so far (counted before each write): the most the server can hold.</summary>
        public long SentEnd { get; set; }

        public bool AllAcked => Location is not null && Durable == Size;

        /// <summary>The PATCH in flight (start -1 when none), and how much of its body has been handed over.</summary>
        public long PatchStart { get; set; } = -1;

        public long PatchLength { get; set; }

        public long PatchWritten { get; set; }

        /// <summary>The PATCH a kill interrupted (Start -1 when none), until a HEAD after the restart shows what was kept of it.</summary>
        public (long Start, long Length) Interrupted { get; set; } = (-1, 0);

        public void Dispose() => Handle.Dispose();
    }

    /// <summary>A file range as a PATCH body that reports, before each write, how far into the body the client is.</summary>
    private sealed class TusBody(SafeFileHandle file, long offset, long length, Action<long> sending) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            byte[] buffer = new byte[256 * 1024];
            for (long done = 0; done < length;)
            {
                int read = RandomAccess.Read(file, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - done)), offset + done);
                if (read <= 0)
                    throw new EndOfStreamException($"the tus source ended at {offset + done}");
                sending(done + read);
                await stream.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                done += read;
            }
        }

        protected override bool TryComputeLength(out long size)
        {
            size = length;
            return true;
        }
    }

    private sealed class CrashRun(int seed, Figures figures) : IDisposable
    {
        private readonly Random _rng = new(seed);
        private readonly Random _tusRng = new(unchecked(seed * 31) ^ 0x747573); // PATCH sizes; used by the tus worker only
        private readonly object _sync = new();
        private readonly Stopwatch _clock = new();
        private readonly List<SourceFile> _files = [];
        private readonly HashSet<(int File, int Chunk)> _inFlight = [];
        private readonly HashSet<(int File, int Chunk)> _inFlightAtKill = [];
        private readonly Dictionary<string, int> _killsByPhase = new(StringComparer.Ordinal);
        private readonly List<string> _killLog = [];
        private string _tempRoot = "";
        private string _storageRoot = "";
        private ServerProcess? _server;
        private int _restarts;
        private int _chunksSent;
        private int _testGets;
        private int _resentUnacknowledged;
        private int _inFlightFoundStored;
        private int _reRequestedAcknowledged;
        private int _transientRetries;
        private int _epochAcks;
        private int _startupMs = 800;
        private readonly List<int> _startups = [];
        private int _run;
        private bool _stop;
        private TusUpload? _tus;
        private int _tusCreations;
        private int _tusPatches;
        private int _tusLargePatches;
        private long _tusBytesSent;
        private int _tusKillsDuringPatch;
        private int _tusKillsBodyHandedOver;
        private int _tusInterruptedNothingKept;
        private int _tusInterruptedPrefixKept;
        private int _tusInterruptedLargePrefixKept;
        private int _tusInterruptedAllKept;
        private int _tusInterruptedAcknowledged;
        private int _tusConflicts;
        private int _tusHeadsAfterRestart;
        private int _tusHeadAtAcked;
        private int _tusHeadAboveAcked;
        private long _tusKeptUnacknowledged;
        private int _tusHeadBelowAcked;
        private int _tusHeadAboveSent;

        public List<string> Failures { get; } = [];

        private int Kills
        {
            get
            {
                lock (_sync)
                    return _killsByPhase.Values.Sum();
            }
        }

        public async Task ExecuteAsync()
        {
            _clock.Start();
            figures.Line($"Crash test seed: {seed} (replay with CHUNKUPLOAD_CRASH_SEED={seed})");
            _tempRoot = Directory.CreateTempSubdirectory("chunkupload-crash-").FullName;
            _storageRoot = Path.Combine(_tempRoot, "storage");
            Directory.CreateDirectory(_storageRoot);
            await CreateSourcesAsync();
            figures.Line($"Sources: {FileCount} files of {FileSize / (1024 * 1024)} MiB in {_clock.Elapsed.TotalSeconds:F1} s; chunk {ChunkSize / (1024 * 1024)} MiB, {InFlight} in flight; tus: {TusFileSize / (1024 * 1024)} MiB in PATCHes of 1-6 MiB and 9-16 MiB");

            bool finished = false;
            for (int epoch = 0; epoch < MaxEpochs && !finished; epoch++)
            {
                if (_clock.Elapsed > TestBudget)
                {
                    Failures.Add($"Time budget of {TestBudget} exceeded after {epoch} server runs.");
                    return;
                }

                if (epoch > 0)
                    _restarts++;
                _server = ServerProcess.Start(_storageRoot);
                bool allAcked = _files.All(f => f.AllAcked) && _tus!.AllAcked;
                bool startupKill = Kills < TargetKills && (allAcked || _rng.NextDouble() < 0.3);
                if (startupKill)
                {
                    await KillDuringStartupAsync(epoch);
                    continue;
                }

                var startup = Stopwatch.StartNew();
                if (!await _server.WaitHealthyAsync(HealthTimeout))
                {
                    Failures.Add($"Server run {epoch} did not answer /healthz within {HealthTimeout.TotalSeconds} s (exited: {_server.HasExited}):\n{_server.LogTail}");
                    return;
                }

                _startupMs = (int)startup.ElapsedMilliseconds;
                _startups.Add(_startupMs);

                finished = await RunEpochAsync(epoch);
                if (Failures.Count > 0)
                    return;
                if (!finished && _server is not null)
                {
                    // Every unfinished run ends with a kill; anything else would start the next server beside this one.
                    Failures.Add($"Server run {epoch} ended with uploads unfinished and without a kill.");
                    return;
                }

                if (finished && Kills < TargetKills)
                {
                    // Everything is acknowledged but kills are still due: this one lands while the last file may
                    // still be assembling; the runs after it are killed during start-up recovery.
                    Kill(epoch, "all acknowledged (assembling or idle)", "right after the last acknowledgement");
                    finished = false;
                }
            }

            if (!finished)
            {
                Failures.Add($"The uploads did not finish within {MaxEpochs} server runs.");
                return;
            }

            await VerifyAsync();
        }

        private async Task CreateSourcesAsync()
        {
            string dir = Path.Combine(_tempRoot, "sources");
            Directory.CreateDirectory(dir);
            byte[] block = new byte[1024 * 1024];
            for (int i = 0; i < FileCount; i++)
            {
                string path = Path.Combine(dir, $"source-{i}.bin");
                string sha256 = await WriteSourceAsync(path, FileSize, new Random(unchecked(seed + (i * 7919))));
                _files.Add(new SourceFile
                {
                    Path = path,
                    Index = i,
                    Name = $"crash-{i}.bin",
                    Identifier = $"{FileSize}-crash-{seed}-{i}",
                    Sha256 = sha256,
                    Handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous),
                });
            }

            string tusPath = Path.Combine(dir, "source-tus.bin");
            string tusSha256 = await WriteSourceAsync(tusPath, TusFileSize, new Random(unchecked(seed + 104729)));
            _tus = new TusUpload
            {
                Path = tusPath,
                Name = "crash-tus.bin",
                Sha256 = tusSha256,
                Handle = File.OpenHandle(tusPath, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous),
            };

            async Task<string> WriteSourceAsync(string path, long size, Random random)
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                await using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1024 * 1024, useAsync: false))
                {
                    for (long written = 0; written < size; written += block.Length)
                    {
                        random.NextBytes(block);
                        hash.AppendData(block);
                        stream.Write(block);
                    }
                }

                return Convert.ToHexStringLower(hash.GetHashAndReset());
            }
        }

        private async Task KillDuringStartupAsync(int epoch)
        {
            var server = _server!;
            string phase;
            if (_rng.NextDouble() < 0.6)
            {
                // A random moment within the last measured time to /healthz (plus 10%): before Kestrel listens, while
                // the store recovers (temp files, journals, unjournaled chunks, queued assembly), or just after.
                int delay = _rng.Next(0, Math.Max(50, _startupMs * 11 / 10));
                bool healthy = false;
                var window = Stopwatch.StartNew();
                using var http = new HttpClient { BaseAddress = server.BaseUri, Timeout = TimeSpan.FromSeconds(2) };
                while (window.ElapsedMilliseconds < delay && !server.HasExited)
                {
                    healthy = healthy || await ServerProcess.IsHealthyAsync(http);
                    await Task.Delay(Math.Clamp(delay - (int)window.ElapsedMilliseconds, 0, 20));
                }

                phase = healthy ? "start-up (/healthz had answered)" : "start-up (before /healthz answered)";
                Kill(epoch, phase, $"{delay} ms after start");
            }
            else
            {
                if (!await server.WaitHealthyAsync(HealthTimeout))
                {
                    Failures.Add($"Server run {epoch} did not answer /healthz:\n{server.LogTail}");
                    return;
                }

                int delay = _rng.Next(0, 30);
                await Task.Delay(delay);
                phase = "start-up (just after /healthz)";
                Kill(epoch, phase, $"{delay} ms after /healthz");
            }
        }

        private void Kill(int epoch, string phase, string when)
        {
            int inFlight;
            string tus;
            lock (_sync)
            {
                _stop = true;
                _server!.Kill();
                inFlight = _inFlight.Count;
                foreach (var item in _inFlight)
                    _inFlightAtKill.Add(item);
                _killsByPhase[phase] = _killsByPhase.GetValueOrDefault(phase) + 1;
                tus = TusAtKill();
            }

            string acked = string.Join(" + ", _files.Select(f => $"{f.Acked.Count(a => a)}/{f.TotalChunks}"));
            string line = $"kill {Kills,2}: run {epoch,3}, PID {_server.Pid}, {phase}, {when}, {inFlight} chunk POSTs in flight, acknowledged {acked}, {tus}, t={_clock.Elapsed.TotalSeconds:F1} s";
            _killLog.Add(line);
            figures.Line(line);
            _server.Dispose();
            _server = null;
        }

        /// <summary>One server run with uploads; true when every chunk is acknowledged and no kill ended the run.</summary>
        private async Task<bool> RunEpochAsync(int epoch)
        {
            var server = _server!;
            _stop = false;
            _epochAcks = 0;
            _run = epoch;
            bool killsLeft = Kills < TargetKills;
            int remaining = _files.Sum(f => f.Acked.Skip(1).Count(a => !a));
            int needed = Math.Max(TargetKills - Kills, 1);

            // Spread the writing kills over what is left to send: a kill after 1..5 acknowledgements (fewer when the
            // chunks left would not last for the kills still to make), then a random 0-60 ms more of writing.
            int killAfterAcks = Math.Max(1, Math.Min(_rng.Next(1, 6), remaining / (needed + 1)));
            int killDelay = _rng.Next(0, 60);
            int assemblyDelay = _rng.Next(0, 25);
            var trigger = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);

            var items = _files.SelectMany(f => Enumerable.Range(1, f.TotalChunks).Select(n => (File: f, Chunk: n))).ToList();
            int next = -1;
            using var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(10), PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
            using var http = new HttpClient(handler) { BaseAddress = server.BaseUri, Timeout = RequestTimeout };

            async Task Worker()
            {
                while (!Volatile.Read(ref _stop))
                {
                    int i = Interlocked.Increment(ref next);
                    if (i >= items.Count)
                        return;
                    var (file, chunk) = items[i];
                    if (!await SendChunkAsync(http, file, chunk, killsLeft ? killAfterAcks : int.MaxValue, trigger))
                        return;
                }
            }

            var workers = Task.WhenAll(Enumerable.Range(0, InFlight).Select(_ => Task.Run(Worker))
                .Append(Task.Run(() => TusWorkerAsync(http, epoch))));
            var first = await Task.WhenAny(workers, trigger.Task, Task.Delay(TimeSpan.FromMinutes(5)));
            if (first != workers && first != trigger.Task)
            {
                Failures.Add($"Server run {epoch}: the uploads stalled for 5 minutes:\n{server.LogTail}");
                lock (_sync)
                    _stop = true;
                server.Dispose();
                return false;
            }

            if (trigger.Task.IsCompleted)
            {
                bool lastChunk = trigger.Task.Result == "last chunk";
                int delay = lastChunk ? assemblyDelay : killDelay;
                await Task.Delay(delay);

                // A file whose last chunk was acknowledged in this run, before the kill (whichever trigger fired), is
                // being finished by the server: the kill is an assembly kill (the first one for each file).
                SourceFile? assembled;
                lock (_sync)
                {
                    assembled = _files.FirstOrDefault(f => !f.AssemblyKillDone && f.AllAckedInRun == epoch);
                    if (assembled is not null)
                        assembled.AssemblyKillDone = true;
                }

                if (assembled is not null)
                    Kill(epoch, "assembling (last chunk just acked)", $"{(_clock.Elapsed - assembled.AllAckedAt).TotalMilliseconds:F0} ms after the last chunk of {assembled.Name} was acknowledged");
                else
                    Kill(epoch, "writing chunks", $"{delay} ms after {killAfterAcks} acknowledgements");
                if (await Task.WhenAny(workers, Task.Delay(TimeSpan.FromSeconds(90))) != workers)
                    Failures.Add($"Server run {epoch}: requests did not end within 90 s of the kill.");
                return false;
            }

            await workers;
            return Failures.Count == 0 && _files.All(f => f.AllAcked) && _tus!.AllAcked;
        }

        /// <summary>resumable.js for one chunk: test GET, then the multipart POST when the test says 204. False to stop.</summary>
        private async Task<bool> SendChunkAsync(HttpClient http, SourceFile file, int chunk, int killAfterAcks, TaskCompletionSource<string> trigger)
        {
            var key = (file.Index, chunk);
            for (int attempt = 1; attempt <= 20; attempt++)
            {
                HttpStatusCode testStatus;
                try
                {
                    Interlocked.Increment(ref _testGets);
                    using var test = await http.GetAsync(new Uri("/upload?" + Query(file, chunk), UriKind.Relative));
                    testStatus = test.StatusCode;
                    if (!await TransientAsync(test) && testStatus is not (HttpStatusCode.OK or HttpStatusCode.NoContent))
                    {
                        Fail($"Test GET of {file.Name} chunk {chunk} answered {(int)testStatus}: {await test.Content.ReadAsStringAsync()}");
                        return false;
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                {
                    return Lost(ex, $"test GET of {file.Name} chunk {chunk}");
                }

                if (testStatus is not (HttpStatusCode.OK or HttpStatusCode.NoContent))
                    continue;

                lock (_sync)
                {
                    if (testStatus == HttpStatusCode.OK)
                    {
                        file.Acked[chunk] = true;
                        if (file.AllAckedInRun < 0 && file.AllAcked)
                            (file.AllAckedInRun, file.AllAckedAt) = (_run, _clock.Elapsed);
                        if (_inFlightAtKill.Remove(key))
                            _inFlightFoundStored++;
                        return true;
                    }

                    if (file.Acked[chunk])
                    {
                        _reRequestedAcknowledged++;
                        Failures.Add($"Acknowledged chunk {chunk} of {file.Name} was re-requested (test GET 204) after {Kills} kills.");
                    }

                    if (_stop)
                        return false;
                    if (_inFlightAtKill.Remove(key))
                        _resentUnacknowledged++;
                    _inFlight.Add(key);
                    _chunksSent++;
                }

                HttpStatusCode postStatus;
                try
                {
                    using var post = await http.PostAsync(new Uri("/upload?" + Query(file, chunk), UriKind.Relative), Multipart(file, chunk));
                    postStatus = post.StatusCode;
                    if (!await TransientAsync(post) && postStatus != HttpStatusCode.OK)
                    {
                        Fail($"POST of {file.Name} chunk {chunk} answered {(int)postStatus}: {await post.Content.ReadAsStringAsync()}");
                        return false;
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                {
                    return Lost(ex, $"POST of {file.Name} chunk {chunk}");
                }
                finally
                {
                    lock (_sync)
                        _inFlight.Remove(key);
                }

                if (postStatus != HttpStatusCode.OK)
                    continue;

                lock (_sync)
                {
                    file.Acked[chunk] = true;
                    _inFlightAtKill.Remove(key);
                    _epochAcks++;
                    if (file.AllAckedInRun < 0 && file.AllAcked)
                        (file.AllAckedInRun, file.AllAckedAt) = (_run, _clock.Elapsed);
                    if (!file.AssemblyKillDone && file.AllAckedInRun == _run)
                        trigger.TrySetResult("last chunk");
                    else if (_epochAcks >= killAfterAcks)
                        trigger.TrySetResult("acknowledgements");
                }

                return true;
            }

            Fail($"{file.Name} chunk {chunk}: still refused as transient after 20 attempts.");
            return false;
        }

        // Under _sync: what the kill interrupted of the tus upload (and the figures for it).
        private string TusAtKill()
        {
            var tus = _tus!;
            if (tus.PatchStart < 0)
                return tus.AllAcked ? "tus complete" : $"tus at {Mib(tus.Durable)}, no PATCH in flight";
            tus.Interrupted = (tus.PatchStart, tus.PatchLength);
            _tusKillsDuringPatch++;
            string patch = $"tus PATCH of {Mib(tus.PatchLength)} at {Mib(tus.PatchStart)} in flight";
            if (tus.PatchWritten < tus.PatchLength)
                return patch + $" ({Mib(tus.PatchWritten)} of it handed to the socket)";

            // Loopback socket buffers take MiBs: the client is done writing long before the server has read the body.
            _tusKillsBodyHandedOver++;
            return patch + " (all of it handed to the socket)";
        }

        private static string Mib(long bytes) => $"{bytes / (1024.0 * 1024):F1} MiB";

        /// <summary>
        /// tus for the tus file in one server run: POST once (ever), then HEAD, checked against what 204s acknowledged and
        /// what was sent, and PATCHes from that offset. True once the whole file is acknowledged; false when the run ends.
        /// </summary>
        private async Task<bool> TusWorkerAsync(HttpClient http, int epoch)
        {
            var tus = _tus!;
            if (tus.AllAcked)
                return true;
            bool firstHead = true;
            for (int attempt = 1; attempt <= 20; attempt++)
            {
                if (Volatile.Read(ref _stop))
                    return false;
                if (tus.Location is null)
                {
                    try
                    {
                        using var create = TusRequest(HttpMethod.Post, "/tus");
                        create.Headers.Add("Upload-Length", TusFileSize.ToString(CultureInfo.InvariantCulture));
                        create.Headers.Add("Upload-Metadata", "filename " + Convert.ToBase64String(Encoding.UTF8.GetBytes(tus.Name)));
                        Interlocked.Increment(ref _tusCreations);
                        using var created = await http.SendAsync(create);
                        if (await TransientAsync(created))
                            continue;
                        if (created.StatusCode != HttpStatusCode.Created || created.Headers.Location is null)
                        {
                            Fail($"tus POST answered {(int)created.StatusCode}: {await created.Content.ReadAsStringAsync()}");
                            return false;
                        }

                        lock (_sync)
                            tus.Location = created.Headers.Location.OriginalString;
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                    {
                        return Lost(ex, "tus POST");
                    }
                }

                long offset;
                try
                {
                    using var head = await http.SendAsync(TusRequest(HttpMethod.Head, tus.Location));
                    if (await TransientAsync(head))
                        continue;
                    if (head.StatusCode != HttpStatusCode.OK || UploadOffset(head) is not { } reported)
                    {
                        Fail($"tus HEAD {tus.Location} answered {(int)head.StatusCode} after {Kills} kills (acknowledged up to {tus.Acked}).");
                        return false;
                    }

                    offset = reported;
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                {
                    return Lost(ex, "tus HEAD");
                }

                CheckTusOffset(offset, epoch, afterRestart: firstHead && epoch > 0);
                firstHead = false;
                while (offset < tus.Size)
                {
                    // A few MiB, or now and then (and always first) more than one engine piece, never piece-aligned.
                    long length = _tusPatches == 0 || _tusRng.Next(4) == 0
                        ? (_tusRng.Next(9, 16) * 1024L * 1024) + _tusRng.Next(1, 1024 * 1024)
                        : (_tusRng.Next(1, 6) * 1024L * 1024) + _tusRng.Next(1, 1024 * 1024);
                    length = Math.Min(length, tus.Size - offset);
                    lock (_sync)
                    {
                        if (_stop)
                            return false;
                        (tus.PatchStart, tus.PatchLength, tus.PatchWritten) = (offset, length, 0);
                        _tusPatches++;
                        if (length > PieceSize)
                            _tusLargePatches++;
                    }

                    HttpStatusCode status;
                    long? acknowledged;
                    string answer;
                    try
                    {
                        long start = offset;
                        using var patch = TusRequest(HttpMethod.Patch, tus.Location);
                        patch.Headers.Add("Upload-Offset", start.ToString(CultureInfo.InvariantCulture));
                        patch.Content = new TusBody(tus.Handle, start, length, written =>
                        {
                            lock (_sync)
                            {
                                _tusBytesSent += written - tus.PatchWritten;
                                tus.PatchWritten = written;
                                tus.SentEnd = Math.Max(tus.SentEnd, start + written);
                            }
                        });
                        patch.Content.Headers.ContentType = new MediaTypeHeaderValue("application/offset+octet-stream");
                        using var response = await http.SendAsync(patch);
                        status = response.StatusCode;
                        acknowledged = UploadOffset(response);
                        answer = status == HttpStatusCode.NoContent ? "" : await response.Content.ReadAsStringAsync();
                        if (await TransientAsync(response))
                            break;
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                    {
                        return Lost(ex, $"tus PATCH of {length} bytes at {offset}");
                    }
                    finally
                    {
                        lock (_sync)
                            tus.PatchStart = -1;
                    }

                    if (status == HttpStatusCode.NoContent)
                    {
                        if (acknowledged != offset + length)
                        {
                            Fail($"tus PATCH of {length} bytes at {offset} answered 204 with Upload-Offset {acknowledged?.ToString(CultureInfo.InvariantCulture) ?? "none"}.");
                            return false;
                        }

                        lock (_sync)
                            tus.Acked = offset = acknowledged.Value;
                        attempt = 1;
                        continue;
                    }

                    if (status is not (HttpStatusCode.Conflict or HttpStatusCode.Locked))
                    {
                        Fail($"tus PATCH of {length} bytes at {offset} answered {(int)status}: {answer}");
                        return false;
                    }

                    // Not where the server is (409), or an earlier writer still holds the upload (423): HEAD again.
                    Interlocked.Increment(ref _tusConflicts);
                    break;
                }

                if (offset >= tus.Size)
                    return true;
            }

            Fail("tus: still refused after 20 attempts without progress.");
            return false;
        }

        // The durable offset a HEAD reports: never below what a 204 acknowledged, never beyond what the client sent.
        private void CheckTusOffset(long offset, int epoch, bool afterRestart)
        {
            var tus = _tus!;
            lock (_sync)
            {
                long durable = tus.Durable;
                string seen = $"HEAD offset {offset}, acknowledged {tus.Acked} by 204s ({durable} with earlier HEADs), sent up to {tus.SentEnd}";
                if (offset < durable)
                {
                    _tusHeadBelowAcked++;
                    Failures.Add($"tus: server run {epoch} lost acknowledged bytes after {Kills} kills: {seen}.");
                }

                if (offset > tus.SentEnd)
                {
                    _tusHeadAboveSent++;
                    Failures.Add($"tus: server run {epoch} reports more than the client sent: {seen}.");
                }

                tus.Reported = Math.Max(tus.Reported, offset);
                if (!afterRestart)
                    return;
                _tusHeadsAfterRestart++;
                string kept = "";
                var (start, length) = tus.Interrupted;
                if (start >= 0)
                {
                    // What the server kept of the PATCH the kill interrupted: none, a prefix (the kill landed mid-body as
                    // the server saw it), or all of it (only its 204 was lost).
                    tus.Interrupted = (-1, 0);
                    if (start + length <= tus.Acked)
                    {
                        // Its 204 had been read just before the kill, while the client was still leaving SendAsync.
                        _tusInterruptedAcknowledged++;
                        kept = $"; the PATCH of {length} at {start} in flight at the kill had its 204 after all";
                    }
                    else if (offset <= start)
                    {
                        _tusInterruptedNothingKept++;
                        kept = $"; nothing kept of the interrupted PATCH of {length} at {start}";
                    }
                    else if (offset < start + length)
                    {
                        _tusInterruptedPrefixKept++;
                        if (length > PieceSize)
                            _tusInterruptedLargePrefixKept++;
                        kept = $"; {offset - start} of the interrupted PATCH of {length} at {start} kept";
                    }
                    else
                    {
                        _tusInterruptedAllKept++;
                        kept = $"; all of the interrupted PATCH of {length} at {start} kept";
                    }
                }

                if (offset == durable)
                {
                    _tusHeadAtAcked++;
                }
                else if (offset > durable)
                {
                    _tusHeadAboveAcked++;
                    _tusKeptUnacknowledged += offset - durable;
                }

                figures.Line($"tus after restart (run {epoch,3}): {seen}{kept}");
            }
        }

        private static HttpRequestMessage TusRequest(HttpMethod method, string path)
        {
            var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
            request.Headers.Add("Tus-Resumable", TusVersion);
            return request;
        }

        private static long? UploadOffset(HttpResponseMessage response) =>
            response.Headers.TryGetValues("Upload-Offset", out var values)
            && long.TryParse(values.FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out long offset)
                ? offset
                : null;

        // A transport failure is expected only once this run's server has been killed.
        private bool Lost(Exception ex, string what)
        {
            lock (_sync)
            {
                if (!_stop)
                    Failures.Add($"{what} failed while the server was meant to be up: {ex.GetType().Name}: {ex.Message}");
                _stop = true;
            }

            return false;
        }

        private void Fail(string message)
        {
            lock (_sync)
            {
                Failures.Add(message);
                _stop = true;
            }
        }

        // 503/507/429 are answers to retry after Retry-After (capped, bounded by the caller's attempt count).
        private async Task<bool> TransientAsync(HttpResponseMessage response)
        {
            if (response.StatusCode is not (HttpStatusCode.ServiceUnavailable or HttpStatusCode.InsufficientStorage or HttpStatusCode.TooManyRequests))
                return false;
            Interlocked.Increment(ref _transientRetries);
            var wait = response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1);
            await Task.Delay(wait > TimeSpan.FromSeconds(3) ? TimeSpan.FromSeconds(3) : wait);
            return true;
        }

        private static string Query(SourceFile file, int chunk) => string.Join('&', Parameters(file, chunk)
            .Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value)}"));

        private static List<(string Name, string Value)> Parameters(SourceFile file, int chunk) =>
        [
            ("resumableChunkNumber", chunk.ToString(CultureInfo.InvariantCulture)),
            ("resumableChunkSize", ChunkSize.ToString(CultureInfo.InvariantCulture)),
            ("resumableCurrentChunkSize", file.Length(chunk).ToString(CultureInfo.InvariantCulture)),
            ("resumableTotalSize", FileSize.ToString(CultureInfo.InvariantCulture)),
            ("resumableType", "application/octet-stream"),
            ("resumableIdentifier", file.Identifier),
            ("resumableFilename", file.Name),
            ("resumableRelativePath", file.Name),
            ("resumableTotalChunks", file.TotalChunks.ToString(CultureInfo.InvariantCulture)),
        ];

        private static MultipartFormDataContent Multipart(SourceFile file, int chunk)
        {
            var content = new MultipartFormDataContent("----ChunkUploadCrash" + Guid.NewGuid().ToString("N"));
            foreach (var (name, value) in Parameters(file, chunk))
            {
                var field = new StringContent(value);
                field.Headers.ContentType = null;
                content.Add(field, name);
            }

            var part = new FileSliceContent(file.Handle, file.Offset(chunk), file.Length(chunk));
            part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            content.Add(part, "file", "blob");
            return content;
        }

        private async Task VerifyAsync()
        {
            var server = _server!;
            using var http = new HttpClient { BaseAddress = server.BaseUri, Timeout = TimeSpan.FromMinutes(3) };
            foreach (var file in _files)
            {
                bool? complete = await VerifyFileAsync(http, file.Name, file.Identifier, file.Sha256, FileSize);
                if (complete is null)
                    return;
                if (complete == false)
                    continue;

                // Every chunk, all acknowledged by now, must still be reported stored.
                for (int chunk = 1; chunk <= file.TotalChunks; chunk++)
                {
                    Interlocked.Increment(ref _testGets);
                    using var test = await http.GetAsync(new Uri("/upload?" + Query(file, chunk), UriKind.Relative));
                    if (test.StatusCode != HttpStatusCode.OK)
                    {
                        _reRequestedAcknowledged++;
                        Failures.Add($"After completion, {file.Name} chunk {chunk} tests as {(int)test.StatusCode}.");
                    }
                }
            }

            var tus = _tus!;
            if (await VerifyFileAsync(http, tus.Name, tus.Identifier, tus.Sha256, TusFileSize) is null)
                return;
            using (var head = await http.SendAsync(TusRequest(HttpMethod.Head, tus.Location!)))
            {
                if (UploadOffset(head) != TusFileSize)
                    Failures.Add($"After completion, tus HEAD answers {(int)head.StatusCode} with Upload-Offset {UploadOffset(head)}, expected {TusFileSize}.");
            }

            CheckStorage("after completion, server running");
            server.Dispose();
            _server = null;
            CheckStorage("after the final stop");
        }

        /// <summary>
        /// Polls the status until the upload is complete, then compares its sha256 and the downloaded bytes with the
        /// source. True when complete, false when it did not complete, null when the server does not know it.
        /// </summary>
        private async Task<bool?> VerifyFileAsync(HttpClient http, string name, string identifier, string sha256, long size)
        {
            // Completion is asynchronous: poll the status (bounded) until it is complete.
            var deadline = Stopwatch.StartNew();
            JsonElement status = default;
            string state = "";
            while (deadline.Elapsed < TimeSpan.FromMinutes(2))
            {
                using var response = await http.GetAsync(new Uri("/uploads/" + Uri.EscapeDataString(identifier), UriKind.Relative));
                string body = await response.Content.ReadAsStringAsync();
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    Failures.Add($"Status of {name}: {(int)response.StatusCode} {body}");
                    return null;
                }

                status = JsonDocument.Parse(body).RootElement.Clone();
                state = status.GetProperty("state").GetString() ?? "";
                if (state is "complete" or "failed")
                    break;
                await Task.Delay(100);
            }

            if (state != "complete")
            {
                Failures.Add($"{name} did not complete (state '{state}'): {status}");
                return false;
            }

            string? sha = status.GetProperty("sha256").GetString();
            if (!string.Equals(sha, sha256, StringComparison.OrdinalIgnoreCase))
                Failures.Add($"{name}: status sha256 {sha} differs from the source's {sha256}");

            using var download = await http.GetAsync(new Uri("/files/" + Uri.EscapeDataString(identifier), UriKind.Relative), HttpCompletionOption.ResponseHeadersRead);
            if (download.StatusCode != HttpStatusCode.OK)
            {
                Failures.Add($"Download of {name}: {(int)download.StatusCode}");
                return true;
            }

            await using var stream = await download.Content.ReadAsStreamAsync();
            long length = 0;
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] buffer = new byte[256 * 1024];
            int read;
            while ((read = await stream.ReadAsync(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                length += read;
            }

            string downloaded = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (length != size || downloaded != sha256)
                Failures.Add($"Download of {name}: {length} bytes, sha256 {downloaded}; expected {size} bytes, {sha256}");
            return true;
        }

        private void CheckStorage(string when)
        {
            var stray = new List<string>();
            foreach (string path in Directory.EnumerateFiles(_storageRoot, "*", SearchOption.AllDirectories))
            {
                string[] parts = Path.GetRelativePath(_storageRoot, path).Split(Path.DirectorySeparatorChar);
                bool allowed = (parts is ["sessions", _, "session.json"]) || (parts is ["completed", _]);
                if (!allowed)
                    stray.Add(Path.GetRelativePath(_storageRoot, path) + $" ({new FileInfo(path).Length} bytes)");
            }

            int completed = Directory.EnumerateFiles(Path.Combine(_storageRoot, "completed")).Count();
            figures.Line($"Storage {when}: {completed} completed files, {Directory.EnumerateFiles(_storageRoot, "session.json", SearchOption.AllDirectories).Count()} session.json, {stray.Count} other files");
            if (completed != FileCount + 1)
                Failures.Add($"Storage {when}: {completed} files in completed/, expected {FileCount + 1} ({FileCount} resumable.js, 1 tus).");
            if (stray.Count > 0)
                Failures.Add($"Storage {when}: temp or orphaned files remain: {string.Join(", ", stray)}");
        }

        public void Report()
        {
            figures.Line("");
            figures.Line("=== Crash test figures ===");
            figures.Line($"seed                                          {seed}");
            figures.Line($"files                                         {FileCount} x {FileSize / (1024 * 1024)} MiB, {ChunkSize / (1024 * 1024)} MiB chunks ({FileSize / ChunkSize} per file), {InFlight} in flight, multipart (resumable.js)");
            figures.Line($"kills (SIGKILL) total                         {Kills}");
            foreach (var (phase, count) in _killsByPhase.OrderBy(p => p.Key, StringComparer.Ordinal))
                figures.Line($"  {phase,-44}{count,3}");
            figures.Line($"restarts                                      {_restarts}");
            if (_startups.Count > 0)
                figures.Line($"start-up to /healthz (runs not killed in it)  mean {_startups.Average():F0} ms, max {_startups.Max()} ms (the machine's load shows here)");
            figures.Line($"chunk POSTs sent                              {_chunksSent} (the files have {FileCount * (FileSize / ChunkSize)} chunks)");
            figures.Line($"chunks re-sent (unacknowledged at a kill)     {_resentUnacknowledged}");
            figures.Line($"in flight at a kill, found stored on resume   {_inFlightFoundStored}");
            figures.Line($"test GETs                                     {_testGets}");
            figures.Line($"re-requested acknowledged chunks              {_reRequestedAcknowledged}");
            figures.Line($"transient answers retried (503/507/429)       {_transientRetries}");
            figures.Line($"tus file                                      {TusFileSize / (1024 * 1024)} MiB, PATCHes of 1-6 MiB and 9-16 MiB (engine piece {PieceSize / (1024 * 1024)} MiB)");
            figures.Line($"tus creations (POST)                          {_tusCreations}");
            figures.Line($"tus PATCHes sent                              {_tusPatches} ({_tusLargePatches} larger than {PieceSize / (1024 * 1024)} MiB)");
            figures.Line($"tus bytes sent                                {_tusBytesSent} ({(double)_tusBytesSent / TusFileSize:F2} x the file)");
            figures.Line($"kills during tus PATCHes                      {_tusKillsDuringPatch} (in {_tusKillsBodyHandedOver} the client had handed the whole body to the socket)");
            figures.Line($"  then HEAD showed, of the interrupted PATCH  nothing kept {_tusInterruptedNothingKept}, a prefix kept (mid-body) {_tusInterruptedPrefixKept} ({_tusInterruptedLargePrefixKept} in a PATCH > {PieceSize / (1024 * 1024)} MiB), all kept (204 lost) {_tusInterruptedAllKept}, acknowledged after all (204 read as the kill landed) {_tusInterruptedAcknowledged}");
            figures.Line($"tus HEADs after restarts                      {_tusHeadsAfterRestart}: offset = acknowledged {_tusHeadAtAcked}, > acknowledged {_tusHeadAboveAcked} ({_tusKeptUnacknowledged} unacknowledged bytes kept), < acknowledged {_tusHeadBelowAcked}, > sent {_tusHeadAboveSent}");
            figures.Line("  (acknowledged: the highest offset a 204 or an earlier HEAD reported; any HEAD below it or above the bytes sent fails the test)");
            figures.Line($"tus 409/423 answers (HEAD again)              {_tusConflicts}");
            figures.Line($"total time                                    {_clock.Elapsed.TotalSeconds:F1} s");
            figures.Line($"result                                        {(Failures.Count == 0 ? "PASS" : $"FAIL ({Failures.Count} failures)")}");
            foreach (string failure in Failures.Take(20))
                figures.Line("  failure: " + failure);
        }

        public void Dispose()
        {
            _server?.Dispose();
            foreach (var file in _files)
                file.Dispose();
            _tus?.Dispose();
            try
            {
                if (_tempRoot.Length > 0)
                    Directory.Delete(_tempRoot, recursive: true);
            }
            catch (IOException)
            {
                // best effort
            }
        }
    }
}
