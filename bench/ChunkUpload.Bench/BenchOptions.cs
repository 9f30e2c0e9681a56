using System.Globalization;

namespace ChunkUpload.Bench;

/// <summary>Command-line options of the benchmark; <c>--help</c> prints them with their defaults.</summary>
internal sealed class BenchOptions
{
    public const string Usage = """
        ChunkUpload side-by-side upload benchmark (issue 4). Normally started by bench/run.sh.

        Main measurement
          --size-mib N            file size in MiB (default 1024)
          --chunk-mib LIST        chunk sizes in MiB, comma separated (default 8,1)
          --inflight C            chunks in flight for resumable uploads (default 4)
          --runs R                measured runs per target and chunk size (default 5)
          --warmup W              unrecorded warm-up rounds per chunk size, 64 MiB at most (default 1)
          --targets LIST          any of chunkupload,chunkupload-tus,chunkupload-google,chunkupload-nginx,raw,
                                  raw-fsync,tus,baseline (default: all); chunkupload-tus, -google and -nginx are
                                  ChunkUpload's tus, Google-style and nginx-module endpoints, same server
          --single-put            also upload the file as ONE Google-style PUT, against the raw Kestrel PUT sink
                                  (default on; --no-single-put switches it off)
          --tus-single            also upload the file as ONE tus PATCH to every tus target (default on;
                                  --no-tus-single switches it off)
          --test-chunks           resumable clients send a test GET before every chunk, as resumable.js
                                  does by default (testChunks: true); off by default

        Extra measurements (0 or empty switches one off)
          --rss-inflight N        one ChunkUpload upload per chunk size with N in flight, peak RSS (default 8)
          --tail-sizes LIST       ChunkUpload tail at these file sizes in MiB, largest chunk size (default 256,2048)
          --tail-runs R           runs per tail size (default 3)
          --test-get-chunks N     stored chunks for the chunk test GET latency (default 10000)
          --test-get-chunk-kib K  chunk size of that session in KiB (default 4)
          --test-get-requests N   timed test GETs, one at a time (default 10000)
          --small-files N         many-small-files count (default 1000)
          --small-file-kib K      size of each small file in KiB (default 64)

        Shared stores (issue 10; bench/run.sh starts PostgreSQL and a Ceph RADOS Gateway with BENCH_S3=1)
          --pg-conn CONN          PostgreSQL for ChunkUpload's metadata (with the S3 options: the S3 scenario)
          --s3-url URL            an S3-compatible endpoint; --s3-key KEY, --s3-secret SECRET its credentials

        Servers and files
          --server-dll PATH       ChunkUpload.Server.dll (Release build)
          --rawput-dll PATH       RawPut.dll (Release build)
          --bench-dir PATH        the bench/ folder (peers/ and node_modules/)
          --work-dir PATH         data and logs (default /tmp/chunkupload-bench-PID); deleted at the end
          --keep-work             keep the work dir
          --label TEXT            printed under the title (run.sh: the commit measured)
          --results PATH          also write the table (markdown) and raw results (PATH.json)
          --server-arg ARG        extra argument for ChunkUpload.Server (repeatable)
          --relaxed-args "ARGS"   adds target chunkupload-relaxed after chunkupload: a second ChunkUpload
                                  with these space-separated extra arguments (run.sh passes
                                  "--Upload:FlushToDisk=false"; "" switches it off); with chunkupload-tus
                                  also chunkupload-tus-relaxed (the same relaxed server's tus endpoint)
          --before-server-dll PATH adds target chunkupload-before: an earlier ChunkUpload.Server.dll (say,
                                  main before a change) uploaded exactly like chunkupload, interleaved,
                                  for a before/after ratio measured in one run
          --poll-ms MS            status poll interval after the last chunk is acknowledged (default 2)
          --timeout-s S           bound on any single upload (default 600)
          --no-sync               do not call sync(1) between runs
        """;

    public long SizeMiB { get; private set; } = 1024;
    public IReadOnlyList<int> ChunkMiB { get; private set; } = [8, 1];
    public int Inflight { get; private set; } = 4;
    public int Runs { get; private set; } = 5;
    public int Warmup { get; private set; } = 1;
    public IReadOnlyList<string> Targets { get; private set; } = [.. TargetNames.All];
    public int RssInflight { get; private set; } = 8;
    public IReadOnlyList<int> TailSizesMiB { get; private set; } = [256, 2048];
    public int TailRuns { get; private set; } = 3;
    public int TestGetChunks { get; private set; } = 10_000;
    public int TestGetChunkKiB { get; private set; } = 4;
    public int TestGetRequests { get; private set; } = 10_000;
    public int SmallFiles { get; private set; } = 1000;
    public int SmallFileKiB { get; private set; } = 64;
    public string? ServerDll { get; private set; }
    public string? PostgresConnection { get; private set; }
    public Uri? S3Url { get; private set; }
    public string? S3Key { get; private set; }
    public string? S3Secret { get; private set; }
    public string? BeforeServerDll { get; private set; }
    public bool TusSingle { get; private set; } = true;
    public bool SinglePut { get; private set; } = true;
    public string? RawPutDll { get; private set; }
    public string BenchDir { get; private set; } = Path.GetFullPath(".");
    public string WorkDir { get; private set; } = Path.Combine(Path.GetTempPath(), $"chunkupload-bench-{Environment.ProcessId}");
    public bool KeepWork { get; private set; }
    public string? ResultsPath { get; private set; }
    public List<string> ServerArgs { get; } = [];
    public IReadOnlyList<string>? RelaxedArgs { get; private set; }
    public int PollMs { get; private set; } = 2;
    public int TimeoutSeconds { get; private set; } = 600;
    public bool Sync { get; private set; } = true;
    public bool TestChunks { get; private set; }
    public string? Label { get; private set; }
    public bool Help { get; private set; }

    public static BenchOptions Parse(string[] args)
    {
        var o = new BenchOptions();
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{name} needs a value");
            switch (name)
            {
                case "-h" or "--help": o.Help = true; break;
                case "--size-mib": o.SizeMiB = Positive(name, Next()); break;
                case "--chunk-mib": o.ChunkMiB = IntList(name, Next(), allowEmpty: false); break;
                case "--inflight": o.Inflight = (int)Positive(name, Next()); break;
                case "--runs": o.Runs = (int)Positive(name, Next()); break;
                case "--warmup": o.Warmup = (int)NonNegative(name, Next()); break;
                case "--targets": o.Targets = TargetList(Next()); break;
                case "--rss-inflight": o.RssInflight = (int)NonNegative(name, Next()); break;
                case "--tail-sizes": o.TailSizesMiB = IntList(name, Next(), allowEmpty: true); break;
                case "--tail-runs": o.TailRuns = (int)Positive(name, Next()); break;
                case "--test-get-chunks": o.TestGetChunks = (int)NonNegative(name, Next()); break;
                case "--test-get-chunk-kib": o.TestGetChunkKiB = (int)Positive(name, Next()); break;
                case "--test-get-requests": o.TestGetRequests = (int)Positive(name, Next()); break;
                case "--small-files": o.SmallFiles = (int)NonNegative(name, Next()); break;
                case "--small-file-kib": o.SmallFileKiB = (int)Positive(name, Next()); break;
                case "--server-dll": o.ServerDll = Path.GetFullPath(Next()); break;
                case "--pg-conn": o.PostgresConnection = Next(); break;
                case "--s3-url": o.S3Url = new Uri(Next()); break;
                case "--s3-key": o.S3Key = Next(); break;
                case "--s3-secret": o.S3Secret = Next(); break;
                case "--before-server-dll": o.BeforeServerDll = Path.GetFullPath(Next()); break;
                case "--tus-single": o.TusSingle = true; break;
                case "--no-tus-single": o.TusSingle = false; break;
                case "--single-put": o.SinglePut = true; break;
                case "--no-single-put": o.SinglePut = false; break;
                case "--rawput-dll": o.RawPutDll = Path.GetFullPath(Next()); break;
                case "--bench-dir": o.BenchDir = Path.GetFullPath(Next()); break;
                case "--work-dir": o.WorkDir = Path.GetFullPath(Next()); break;
                case "--keep-work": o.KeepWork = true; break;
                case "--results": o.ResultsPath = Path.GetFullPath(Next()); break;
                case "--server-arg": o.ServerArgs.Add(Next()); break;
                case "--relaxed-args": o.RelaxedArgs = Next().Split(' ', StringSplitOptions.RemoveEmptyEntries); break;
                case "--poll-ms": o.PollMs = (int)Positive(name, Next()); break;
                case "--timeout-s": o.TimeoutSeconds = (int)Positive(name, Next()); break;
                case "--no-sync": o.Sync = false; break;
                case "--test-chunks": o.TestChunks = true; break;
                case "--label": o.Label = Next(); break;
                default: throw new ArgumentException($"unknown option {name} (see --help)");
            }
        }

        // The relaxed-durability variants run right after their durable twin, whenever it runs; the earlier build
        // right after ChunkUpload.
        var list = o.Targets.ToList();
        void After(string twin, string added)
        {
            if (list.Contains(twin) && !list.Contains(added))
                list.Insert(list.IndexOf(twin) + 1, added);
        }

        if (o.RelaxedArgs is { Count: > 0 })
        {
            After(TargetNames.ChunkUpload, TargetNames.ChunkUploadRelaxed);
            After(TargetNames.ChunkUploadTus, TargetNames.ChunkUploadTusRelaxed);
        }

        if (o.BeforeServerDll is not null)
            After(TargetNames.ChunkUpload, TargetNames.ChunkUploadBefore);
        o.Targets = list;

        return o;
    }

    private static long Positive(string name, string value)
    {
        var n = NonNegative(name, value);
        return n > 0 ? n : throw new ArgumentException($"{name} must be > 0");
    }

    private static long NonNegative(string name, string value) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            ? n
            : throw new ArgumentException($"{name}: '{value}' is not a non-negative integer");

    private static int[] IntList(string name, string value, bool allowEmpty)
    {
        var items = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(v => (int)Positive(name, v))
            .ToArray();
        return items.Length > 0 || allowEmpty ? items : throw new ArgumentException($"{name} needs at least one value");
    }

    private static string[] TargetList(string value)
    {
        var items = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var item in items)
        {
            if (!TargetNames.All.Contains(item) && item is not (TargetNames.ChunkUploadRelaxed or TargetNames.ChunkUploadTusRelaxed))
            {
                throw new ArgumentException($"unknown target '{item}'; known: {string.Join(',', TargetNames.All)}");
            }
        }

        return items.Length > 0 ? items : throw new ArgumentException("--targets needs at least one target");
    }
}

internal static class TargetNames
{
    public const string ChunkUpload = "chunkupload";
    public const string ChunkUploadRelaxed = "chunkupload-relaxed";
    public const string ChunkUploadTus = "chunkupload-tus";
    public const string ChunkUploadTusRelaxed = "chunkupload-tus-relaxed";
    public const string ChunkUploadBefore = "chunkupload-before";
    public const string ChunkUploadGoogle = "chunkupload-google";
    public const string ChunkUploadNginx = "chunkupload-nginx";
    public const string Raw = "raw";
    public const string RawFsync = "raw-fsync";
    public const string Tus = "tus";
    public const string Baseline = "baseline";

    public static readonly string[] All = [ChunkUpload, ChunkUploadTus, ChunkUploadGoogle, ChunkUploadNginx, Raw, RawFsync, Tus, Baseline];

    /// <summary>ChunkUpload's other front doors, served by the same process as the resumable.js one.</summary>
    public static bool IsChunkUploadEndpoint(string target) => target is ChunkUploadTus or ChunkUploadGoogle or ChunkUploadNginx;

    /// <summary>Targets that speak tus (ChunkUpload's /tus endpoint, @tus/server).</summary>
    public static bool IsTus(string target) => target is Tus or ChunkUploadTus or ChunkUploadTusRelaxed;

    /// <summary>Targets uploaded the way resumable.js uploads (ChunkUpload builds and the sample-style baseline).</summary>
    public static bool IsResumable(string target) => target is ChunkUpload or ChunkUploadRelaxed or ChunkUploadBefore or Baseline;

    public static string Display(string target) => target switch
    {
        ChunkUpload => "ChunkUpload",
        ChunkUploadRelaxed => "ChunkUpload (relaxed)",
        ChunkUploadTus => "ChunkUpload tus",
        ChunkUploadTusRelaxed => "ChunkUpload tus (relaxed)",
        ChunkUploadBefore => "ChunkUpload before",
        ChunkUploadGoogle => "ChunkUpload Google-style",
        ChunkUploadNginx => "ChunkUpload nginx-style",
        Raw => "raw Kestrel PUT",
        RawFsync => "raw Kestrel PUT+fsync",
        Tus => "@tus/server 2.4.5",
        Baseline => "resumable.js baseline",
        _ => target,
    };
}
