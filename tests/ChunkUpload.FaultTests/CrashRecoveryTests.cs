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
/// sent. A 48 MiB file goes up Google-style (PROTOCOLS.md section 6) with its total unknown until the last request:
/// one initiation, PUTs of <c>bytes a-b/*</c>, the last one <c>bytes a-b/T</c>; after each restart the status query
/// (<c>bytes */*</c>) must answer a 308 Range neither below what earlier 308s acknowledged nor above what was sent.
/// Every file must end byte-identical, no acknowledged chunk may ever be asked for again, and no temp or
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
    private const long GoogleFileSize = 48L * 1024 * 1024;
    private const int ResumeIncomplete = 308;
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

    /// <summary>
    /// A tus or Google-style upload as its client knows it: what the server acknowledged (204s, 308s) and the most it
    /// can have, and what the kills did to its requests.
    /// </summary>
    private sealed class SequentialUpload : IDisposable
    {
        public required string Protocol { get; init; }

        /// <summary>The request that carries bytes (PATCH, PUT), the answer that acknowledges them (204, 308) and the
        /// request that asks for the offset (HEAD, the status query).</summary>
        public required string Request { get; init; }

        public required string Ack { get; init; }

        public required string Query { get; init; }

        public required string Path { get; init; }
        public required string Name { get; init; }
        public required string Sha256 { get; init; }
        public required SafeFileHandle Handle { get; init; }
        public required long Size { get; init; }

        /// <summary>The upload URL's path from the creation's or initiation's Location (null until it arrived).</summary>
        public string? Location { get; set; }

        public string Identifier => Location is { } location ? location[(location.LastIndexOf('/') + 1)..] : "";

        /// <summary>The highest offset an acknowledgement (204 Upload-Offset, 308 Range) named: it must never be lost.</summary>
        public long Acked { get; set; }

        /// <summary>The highest offset a query reported (durable too: a later query must not report less).</summary>
        public long Reported { get; set; }

        public long Durable => Math.Max(Acked, Reported);

        /// <summary>The end of the bytes handed to a connection so far (counted before each write): the most the server can hold.</summary>
        public long SentEnd { get; set; }

        public bool AllAcked => Location is not null && Durable == Size;

        /// <summary>The request in flight (start -1 when none), and how much of its body has been handed over.</summary>
        public long RequestStart { get; set; } = -1;

        public long RequestLength { get; set; }

        public long RequestWritten { get; set; }

        /// <summary>The request a kill interrupted (Start -1 when none), until a query after the restart shows what was kept of it.</summary>
        public (long Start, long Length) Interrupted { get; set; } = (-1, 0);

        // Figures, counted under the run's lock or by the upload's own worker.
        public int Creations;
        public int Requests;
        public int LargeRequests;
        public long BytesSent;
        public int KillsDuringRequest;
        public int KillsBodyHandedOver;
        public int LastRequests;
        public int KillsDuringLastRequest;
        public int InterruptedNothingKept;
        public int InterruptedPrefixKept;
        public int InterruptedLargePrefixKept;
        public int InterruptedAllKept;
        public int InterruptedAcknowledged;
        public int Conflicts;
        public int QueriesAfterRestart;
        public int QueryAtAcked;
        public int QueryAboveAcked;
        public long KeptUnacknowledged;
        public int QueryBelowAcked;
        public int QueryAboveSent;

        public void Dispose() => Handle.Dispose();
    }

    /// <summary>A file range as a PATCH or PUT body that reports, before each write, how far into the body the client is.</summary>
    private sealed class FileRangeBody(SafeFileHandle file, long offset, long length, Action<long> sending) : HttpContent
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
                    throw new EndOfStreamException($"the source ended at {offset + done}");
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
        private readonly Random _googleRng = new(unchecked(seed * 37) ^ 0x676f6f); // PUT sizes; used by the Google worker only
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
        private SequentialUpload? _tus;
        private SequentialUpload? _google;

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
            figures.Line($"Sources: {FileCount} files of {FileSize / (1024 * 1024)} MiB in {_clock.Elapsed.TotalSeconds:F1} s; chunk {ChunkSize / (1024 * 1024)} MiB, {InFlight} in flight; tus: {TusFileSize / (1024 * 1024)} MiB in PATCHes of 1-6 MiB and 9-16 MiB; Google-style: {GoogleFileSize / (1024 * 1024)} MiB, total unknown until the last PUT, PUTs of 1-6 MiB and 9-16 MiB");

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
                bool allAcked = _files.All(f => f.AllAcked) && _tus!.AllAcked && _google!.AllAcked;
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
            _tus = new SequentialUpload
            {
                Protocol = "tus",
                Request = "PATCH",
                Ack = "204",
                Query = "HEAD",
                Size = TusFileSize,
                Path = tusPath,
                Name = "crash-tus.bin",
                Sha256 = tusSha256,
                Handle = File.OpenHandle(tusPath, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous),
            };

            string googlePath = Path.Combine(dir, "source-google.bin");
            string googleSha256 = await WriteSourceAsync(googlePath, GoogleFileSize, new Random(unchecked(seed + 1299709)));
            _google = new SequentialUpload
            {
                Protocol = "google",
                Request = "PUT",
                Ack = "308",
                Query = "status query",
                Size = GoogleFileSize,
                Path = googlePath,
                Name = $"crash-google-{seed}.bin",
                Sha256 = googleSha256,
                Handle = File.OpenHandle(googlePath, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous),
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
            string sequential;
            lock (_sync)
            {
                _stop = true;
                _server!.Kill();
                inFlight = _inFlight.Count;
                foreach (var item in _inFlight)
                    _inFlightAtKill.Add(item);
                _killsByPhase[phase] = _killsByPhase.GetValueOrDefault(phase) + 1;
                sequential = AtKill(_tus!) + ", " + AtKill(_google!);
            }

            string acked = string.Join(" + ", _files.Select(f => $"{f.Acked.Count(a => a)}/{f.TotalChunks}"));
            string line = $"kill {Kills,2}: run {epoch,3}, PID {_server.Pid}, {phase}, {when}, {inFlight} chunk POSTs in flight, acknowledged {acked}, {sequential}, t={_clock.Elapsed.TotalSeconds:F1} s";
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
            // A 308 is Google's "Resume Incomplete", never a redirect to follow.
            using var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(10), PooledConnectionLifetime = TimeSpan.FromMinutes(5), AllowAutoRedirect = false };
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
                .Append(Task.Run(() => TusWorkerAsync(http, epoch)))
                .Append(Task.Run(() => GoogleWorkerAsync(http, epoch))));
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
            return Failures.Count == 0 && _files.All(f => f.AllAcked) && _tus!.AllAcked && _google!.AllAcked;
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

        // Under _sync: what the kill interrupted of a tus or Google-style upload (and the figures for it).
        private static string AtKill(SequentialUpload upload)
        {
            if (upload.RequestStart < 0)
                return upload.AllAcked ? $"{upload.Protocol} complete" : $"{upload.Protocol} at {Mib(upload.Durable)}, no {upload.Request} in flight";
            upload.Interrupted = (upload.RequestStart, upload.RequestLength);
            upload.KillsDuringRequest++;
            if (upload.RequestStart + upload.RequestLength == upload.Size)
                upload.KillsDuringLastRequest++;
            string request = $"{upload.Protocol} {upload.Request} of {Mib(upload.RequestLength)} at {Mib(upload.RequestStart)} in flight";
            if (upload.RequestWritten < upload.RequestLength)
                return request + $" ({Mib(upload.RequestWritten)} of it handed to the socket)";

            // Loopback socket buffers take MiBs: the client is done writing long before the server has read the body.
            upload.KillsBodyHandedOver++;
            return request + " (all of it handed to the socket)";
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
                        Interlocked.Increment(ref tus.Creations);
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

                CheckOffset(tus, offset, epoch, afterRestart: firstHead && epoch > 0);
                firstHead = false;
                while (offset < tus.Size)
                {
                    // A few MiB, or now and then (and always first) more than one engine piece, never piece-aligned.
                    long length = tus.Requests == 0 || _tusRng.Next(4) == 0
                        ? (_tusRng.Next(9, 16) * 1024L * 1024) + _tusRng.Next(1, 1024 * 1024)
                        : (_tusRng.Next(1, 6) * 1024L * 1024) + _tusRng.Next(1, 1024 * 1024);
                    length = Math.Min(length, tus.Size - offset);
                    lock (_sync)
                    {
                        if (_stop)
                            return false;
                        (tus.RequestStart, tus.RequestLength, tus.RequestWritten) = (offset, length, 0);
                        tus.Requests++;
                        if (length > PieceSize)
                            tus.LargeRequests++;
                    }

                    HttpStatusCode status;
                    long? acknowledged;
                    string answer;
                    try
                    {
                        long start = offset;
                        using var patch = TusRequest(HttpMethod.Patch, tus.Location);
                        patch.Headers.Add("Upload-Offset", start.ToString(CultureInfo.InvariantCulture));
                        patch.Content = new FileRangeBody(tus.Handle, start, length, written => Sending(tus, start, written));
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
                            tus.RequestStart = -1;
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
                    Interlocked.Increment(ref tus.Conflicts);
                    break;
                }

                if (offset >= tus.Size)
                    return true;
            }

            Fail("tus: still refused after 20 attempts without progress.");
            return false;
        }

        // Under _sync, from a request body: the client is about to hand over its first `written` bytes.
        private void Sending(SequentialUpload upload, long start, long written)
        {
            lock (_sync)
            {
                upload.BytesSent += written - upload.RequestWritten;
                upload.RequestWritten = written;
                upload.SentEnd = Math.Max(upload.SentEnd, start + written);
            }
        }

        // The durable offset a HEAD or status query reports: never below what was acknowledged (a 204's Upload-Offset,
        // a 308's Range, an earlier query), never beyond what the client sent.
        private void CheckOffset(SequentialUpload upload, long offset, int epoch, bool afterRestart)
        {
            lock (_sync)
            {
                long durable = upload.Durable;
                string seen = $"{upload.Query} offset {offset}, acknowledged {upload.Acked} by {upload.Ack}s ({durable} with earlier {upload.Query} answers), sent up to {upload.SentEnd}";
                if (offset < durable)
                {
                    upload.QueryBelowAcked++;
                    Failures.Add($"{upload.Protocol}: server run {epoch} lost acknowledged bytes after {Kills} kills: {seen}.");
                }

                if (offset > upload.SentEnd)
                {
                    upload.QueryAboveSent++;
                    Failures.Add($"{upload.Protocol}: server run {epoch} reports more than the client sent: {seen}.");
                }

                upload.Reported = Math.Max(upload.Reported, offset);
                if (!afterRestart)
                    return;
                upload.QueriesAfterRestart++;
                string kept = "";
                var (start, length) = upload.Interrupted;
                string request = upload.Request;
                if (start >= 0)
                {
                    // What the server kept of the request the kill interrupted: none, a prefix (the kill landed mid-body as
                    // the server saw it), or all of it (only its acknowledgement was lost).
                    upload.Interrupted = (-1, 0);
                    if (start + length <= upload.Acked)
                    {
                        // Its acknowledgement had been read just before the kill, while the client was still leaving SendAsync.
                        upload.InterruptedAcknowledged++;
                        kept = $"; the {request} of {length} at {start} in flight at the kill had its {upload.Ack} after all";
                    }
                    else if (offset <= start)
                    {
                        upload.InterruptedNothingKept++;
                        kept = $"; nothing kept of the interrupted {request} of {length} at {start}";
                    }
                    else if (offset < start + length)
                    {
                        upload.InterruptedPrefixKept++;
                        if (length > PieceSize)
                            upload.InterruptedLargePrefixKept++;
                        kept = $"; {offset - start} of the interrupted {request} of {length} at {start} kept";
                    }
                    else
                    {
                        upload.InterruptedAllKept++;
                        kept = $"; all of the interrupted {request} of {length} at {start} kept";
                    }
                }

                if (offset == durable)
                {
                    upload.QueryAtAcked++;
                }
                else if (offset > durable)
                {
                    upload.QueryAboveAcked++;
                    upload.KeptUnacknowledged += offset - durable;
                }

                figures.Line($"{upload.Protocol} after restart (run {epoch,3}): {seen}{kept}");
            }
        }

        /// <summary>
        /// Google-style for the Google file in one server run, its total unknown until the last request: initiate once
        /// (again only when a kill cut the initiation), then the status query (bytes */*), checked like the tus HEAD, and
        /// PUTs of bytes a-b/* from its offset, the last one naming the total (bytes a-b/T). Every PUT but the last must
        /// be answered 308 with its end as the Range, the last 200. True once every byte is acknowledged.
        /// </summary>
        private async Task<bool> GoogleWorkerAsync(HttpClient http, int epoch)
        {
            var google = _google!;
            if (google.AllAcked)
                return true;
            bool firstQuery = true;
            for (int attempt = 1; attempt <= 20; attempt++)
            {
                if (Volatile.Read(ref _stop))
                    return false;
                if (google.Location is null)
                {
                    try
                    {
                        // No X-Upload-Content-Length: the total is not known yet.
                        using var initiate = new HttpRequestMessage(HttpMethod.Post, new Uri($"/upload/{google.Name}?uploadType=resumable", UriKind.Relative))
                        {
                            Content = new StringContent(JsonSerializer.Serialize(new { name = google.Name }), Encoding.UTF8, "application/json"),
                        };
                        Interlocked.Increment(ref google.Creations);
                        using var initiated = await http.SendAsync(initiate);
                        if (await TransientAsync(initiated))
                            continue;
                        if (initiated.StatusCode != HttpStatusCode.OK || initiated.Headers.Location is null)
                        {
                            Fail($"Google-style initiation answered {(int)initiated.StatusCode}: {await initiated.Content.ReadAsStringAsync()}");
                            return false;
                        }

                        // The session URL is absolute; the next server run listens on another port.
                        lock (_sync)
                            google.Location = initiated.Headers.Location.AbsolutePath;
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                    {
                        return Lost(ex, "Google-style initiation");
                    }
                }

                long offset;
                try
                {
                    using var query = GooglePut(google.Location, new ByteArrayContent([]), "bytes */*");
                    using var answer = await http.SendAsync(query);
                    if (await TransientAsync(answer))
                        continue;
                    if (answer.StatusCode == HttpStatusCode.OK)
                        offset = google.Size;
                    else if ((int)answer.StatusCode == ResumeIncomplete && StoredOf(answer) is { } stored)
                        offset = stored;
                    else
                    {
                        Fail($"Google-style status query of {google.Location} answered {(int)answer.StatusCode} (Range {RangeOf(answer)}) after {Kills} kills (acknowledged up to {google.Acked}).");
                        return false;
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                {
                    return Lost(ex, "Google-style status query");
                }

                CheckOffset(google, offset, epoch, afterRestart: firstQuery && epoch > 0);
                firstQuery = false;
                while (offset < google.Size)
                {
                    long length = google.Requests == 0 || _googleRng.Next(4) == 0
                        ? (_googleRng.Next(9, 16) * 1024L * 1024) + _googleRng.Next(1, 1024 * 1024)
                        : (_googleRng.Next(1, 6) * 1024L * 1024) + _googleRng.Next(1, 1024 * 1024);
                    length = Math.Min(length, google.Size - offset);
                    bool last = offset + length == google.Size;
                    lock (_sync)
                    {
                        if (_stop)
                            return false;
                        (google.RequestStart, google.RequestLength, google.RequestWritten) = (offset, length, 0);
                        google.Requests++;
                        if (last)
                            google.LastRequests++;
                        if (length > PieceSize)
                            google.LargeRequests++;
                    }

                    HttpStatusCode status;
                    long? stored;
                    string answer;
                    try
                    {
                        long start = offset;
                        var body = new FileRangeBody(google.Handle, start, length, written => Sending(google, start, written));
                        body.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                        string total = last ? google.Size.ToString(CultureInfo.InvariantCulture) : "*";
                        using var put = GooglePut(google.Location, body, $"bytes {start}-{start + length - 1}/{total}");
                        using var response = await http.SendAsync(put);
                        status = response.StatusCode;
                        stored = StoredOf(response);
                        answer = (int)status == ResumeIncomplete ? $"Range {RangeOf(response)}" : await response.Content.ReadAsStringAsync();
                        if (await TransientAsync(response))
                        {
                            Interlocked.Increment(ref google.Conflicts);
                            break;
                        }
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                    {
                        return Lost(ex, $"Google-style PUT of {length} bytes at {offset}");
                    }
                    finally
                    {
                        lock (_sync)
                            google.RequestStart = -1;
                    }

                    // A whole body is stored whole before the answer: 308 up to its end while the total is unknown, 200 for the last.
                    bool acknowledged = last ? status == HttpStatusCode.OK : (int)status == ResumeIncomplete && stored == offset + length;
                    if (!acknowledged)
                    {
                        Fail($"Google-style PUT of {length} bytes at {offset} ({(last ? "the last, naming the total" : "total unknown")}) answered {(int)status}: {answer}");
                        return false;
                    }

                    lock (_sync)
                        google.Acked = offset += length;
                    attempt = 1;
                }

                if (offset >= google.Size)
                    return true;
            }

            Fail("Google-style: still refused after 20 attempts without progress.");
            return false;
        }

        // A Google-style PUT; Content-Range goes unvalidated (HttpClient's parser rejects "bytes */*").
        private static HttpRequestMessage GooglePut(string location, HttpContent content, string range)
        {
            content.Headers.TryAddWithoutValidation("Content-Range", range);
            return new HttpRequestMessage(HttpMethod.Put, new Uri(location, UriKind.Relative)) { Content = content };
        }

        private static string RangeOf(HttpResponseMessage response) =>
            response.Headers.TryGetValues("Range", out var values) ? string.Join(", ", values) : "none";

        // What a 308 says is stored: Range: bytes=0-N is N+1 bytes, no Range none; null for anything else.
        private static long? StoredOf(HttpResponseMessage response)
        {
            if (!response.Headers.TryGetValues("Range", out var values))
                return 0;
            string range = values.Single();
            return range.StartsWith("bytes=0-", StringComparison.Ordinal)
                && long.TryParse(range.AsSpan("bytes=0-".Length), NumberStyles.None, CultureInfo.InvariantCulture, out long last)
                    ? last + 1
                    : null;
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

            var google = _google!;
            if (await VerifyFileAsync(http, google.Name, google.Identifier, google.Sha256, GoogleFileSize) is null)
                return;
            using (var query = GooglePut(google.Location!, new ByteArrayContent([]), "bytes */*"))
            using (var answer = await http.SendAsync(query))
            {
                if (answer.StatusCode != HttpStatusCode.OK)
                    Failures.Add($"After completion, the Google-style status query answers {(int)answer.StatusCode}, expected 200.");
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
            if (completed != FileCount + 2)
                Failures.Add($"Storage {when}: {completed} files in completed/, expected {FileCount + 2} ({FileCount} resumable.js, 1 tus, 1 Google-style).");
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
            ReportSequential(_tus!, $"{TusFileSize / (1024 * 1024)} MiB, PATCHes of 1-6 MiB and 9-16 MiB (engine piece {PieceSize / (1024 * 1024)} MiB)",
                "creations (POST)", "409/423 answers (HEAD again)");
            ReportSequential(_google!, $"{GoogleFileSize / (1024 * 1024)} MiB, total unknown until the last PUT (bytes a-b/*, the last one bytes a-b/T), PUTs of 1-6 MiB and 9-16 MiB",
                "initiations (POST)", "503 answers (status query again)");
            figures.Line($"google PUTs naming the total (bytes a-b/T)    {_google!.LastRequests} of {_google.Requests} (the others bytes a-b/*), {_google.KillsDuringLastRequest} kills during one");
            figures.Line($"total time                                    {_clock.Elapsed.TotalSeconds:F1} s");
            figures.Line($"result                                        {(Failures.Count == 0 ? "PASS" : $"FAIL ({Failures.Count} failures)")}");
            foreach (string failure in Failures.Take(20))
                figures.Line("  failure: " + failure);
        }

        private void ReportSequential(SequentialUpload u, string file, string creations, string conflicts)
        {
            string p = u.Protocol, request = u.Request, query = u.Query, requests = request.EndsWith('H') ? request + "es" : request + "s";
            Row($"{p} file", file);
            Row($"{p} {creations}", $"{u.Creations}");
            Row($"{p} {requests} sent", $"{u.Requests} ({u.LargeRequests} larger than {PieceSize / (1024 * 1024)} MiB)");
            Row($"{p} bytes sent", $"{u.BytesSent} ({(double)u.BytesSent / u.Size:F2} x the file)");
            Row($"kills during {p} {requests}", $"{u.KillsDuringRequest} (in {u.KillsBodyHandedOver} the client had handed the whole body to the socket)");
            Row($"  then the {query} showed, of the interrupted {request}",
                $"nothing kept {u.InterruptedNothingKept}, a prefix kept (mid-body) {u.InterruptedPrefixKept} ({u.InterruptedLargePrefixKept} in a {request} > {PieceSize / (1024 * 1024)} MiB), all kept ({u.Ack} lost) {u.InterruptedAllKept}, acknowledged after all ({u.Ack} read as the kill landed) {u.InterruptedAcknowledged}");
            Row($"{p} {query} answers after restarts",
                $"{u.QueriesAfterRestart}: offset = acknowledged {u.QueryAtAcked}, > acknowledged {u.QueryAboveAcked} ({u.KeptUnacknowledged} unacknowledged bytes kept), < acknowledged {u.QueryBelowAcked}, > sent {u.QueryAboveSent}");
            figures.Line($"  (acknowledged: the highest offset a {u.Ack} or an earlier {query} reported; any {query} below it or above the bytes sent fails the test)");
            Row($"{p} {conflicts}", $"{u.Conflicts}");

            void Row(string label, string value) => figures.Line(label.Length < 46 ? $"{label,-46}{value}" : $"{label} {value}");
        }

        public void Dispose()
        {
            _server?.Dispose();
            foreach (var file in _files)
                file.Dispose();
            _tus?.Dispose();
            _google?.Dispose();
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
