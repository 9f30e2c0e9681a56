using System.Globalization;
using System.Text;

namespace ChunkUpload.Bench;

internal sealed record TestGetResult(long StoredChunks, long ChunkBytes, double StoreChunksPerSecond, double[] LatenciesMs, int WrongAnswers, int Throttled);

internal static class Stats
{
    public static double Median(IReadOnlyCollection<double> values) => Percentile(values, 50);

    /// <summary>Nearest-rank percentile (p99 of 10,000 samples is the 9,900th smallest); the median interpolates.</summary>
    public static double Percentile(IReadOnlyCollection<double> values, double p)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToArray();
        if (p == 50)
        {
            var mid = sorted.Length / 2;
            return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
        }

        var rank = (int)Math.Ceiling(p / 100 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}

/// <summary>Renders the results as a markdown table (also readable in a terminal).</summary>
internal sealed class Report
{
    private const double MiB = 1024 * 1024;
    private readonly BenchOptions _o;

    public Report(BenchOptions options) => _o = options;

    public TestGetResult? TestGet { get; set; }

    /// <summary>Chunk acknowledgement latencies (ms) with PostgreSQL metadata under four concurrent uploads.</summary>
    public double[]? AckLatenciesMs { get; set; }

    /// <summary>The 1-minute load average when the benchmark started: other work on the machine shows up here.</summary>
    public string StartLoad { get; } = LoadAverage();

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }

    public string Render(IReadOnlyList<RunResult> results, IReadOnlyList<string> notes)
    {
        var sb = new StringBuilder();
        sb.AppendLine(Inv($"## ChunkUpload benchmark: {_o.SizeMiB} MiB file, {_o.Inflight} chunks in flight, {_o.Runs} runs per target, interleaved"));
        sb.AppendLine();
        if (_o.Label is not null)
        {
            sb.Append(Inv($"Measured: {_o.Label}. "));
        }

        sb.AppendLine(Inv($"{Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average at start {StartLoad}, at end {LoadAverage()}."));
        sb.AppendLine("Cells: median (min-max). \"CU / target\": ChunkUpload's MiB/s divided by the target's, per interleaved run.");

        foreach (var chunk in results.Where(r => r.Scenario == "main").Select(r => r.ChunkBytes).Distinct())
        {
            var main = results.Where(r => r.Scenario == "main" && r.ChunkBytes == chunk).ToList();
            sb.AppendLine();
            sb.AppendLine(Inv($"### {chunk / MiB:0.##} MiB chunks"));
            sb.AppendLine();
            sb.AppendLine("| target | MiB/s | CU / target | tail ms | peak RSS MiB | CPU cores server / client |");
            sb.AppendLine("| --- | --- | --- | --- | --- | --- |");
            var cu = main.Where(r => r.Target == TargetNames.ChunkUpload).ToDictionary(r => r.Run, r => r.MiBps);
            foreach (var target in main.Select(r => r.Target).Distinct())
            {
                var rows = main.Where(r => r.Target == target).ToList();
                var ratios = rows.Where(r => cu.ContainsKey(r.Run)).Select(r => cu[r.Run] / r.MiBps).ToList();
                var hasTail = target is TargetNames.ChunkUpload or TargetNames.ChunkUploadRelaxed or TargetNames.Baseline;
                var retries = rows.Sum(r => r.Retries);
                sb.Append(Inv($"| {TargetNames.Display(target)}{(retries > 0 ? $" ({retries} retries)" : "")} "));
                sb.Append(Inv($"| {Cell(rows.Select(r => r.MiBps).ToList(), "F0")} "));
                sb.Append(target == TargetNames.ChunkUpload || ratios.Count == 0 ? "| 1 " : Inv($"| {Cell(ratios, "F2")} "));
                sb.Append(hasTail ? Inv($"| {Cell(rows.Select(r => r.TailSeconds * 1000).ToList(), "F1")} ") : "| - ");
                sb.AppendLine(Inv($"| {rows.Max(r => r.PeakRssBytes) / MiB:F0} | {Cores(rows)} |"));
            }
        }

        RenderTus(sb, results);
        RenderSinglePut(sb, results);
        RenderSharedStores(sb, results);
        RenderBeforeAfter(sb, results);

        var rss = results.Where(r => r.Scenario == "rss").ToList();
        if (rss.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine(Inv($"### ChunkUpload peak RSS with {rss[0].Inflight} chunks in flight (one run each)"));
            sb.AppendLine();
            sb.AppendLine("| chunk size | MiB/s | peak RSS MiB | CPU cores server / client |");
            sb.AppendLine("| --- | --- | --- | --- |");
            foreach (var r in rss)
            {
                sb.AppendLine(Inv($"| {r.ChunkBytes / MiB:0.##} MiB | {r.MiBps:F0} | {r.PeakRssBytes / MiB:F0} | {Cores([r])} |"));
            }
        }

        var tail = results.Where(r => r.Scenario == "tail").ToList();
        if (tail.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine(Inv($"### ChunkUpload tail by file size ({tail[0].ChunkBytes / MiB:0.##} MiB chunks, {tail[0].Inflight} in flight)"));
            sb.AppendLine();
            sb.AppendLine("| file MiB | MiB/s | tail ms | tail / smallest size's tail (medians) |");
            sb.AppendLine("| --- | --- | --- | --- |");
            var sizes = tail.Select(r => r.SizeBytes).Distinct().Order().ToList();
            var smallest = Stats.Median(tail.Where(r => r.SizeBytes == sizes[0]).Select(r => r.TailSeconds).ToList());
            foreach (var size in sizes)
            {
                var rows = tail.Where(r => r.SizeBytes == size).ToList();
                var median = Stats.Median(rows.Select(r => r.TailSeconds).ToList());
                sb.AppendLine(Inv($"| {size / MiB:F0} | {Cell(rows.Select(r => r.MiBps).ToList(), "F0")} | {Cell(rows.Select(r => r.TailSeconds * 1000).ToList(), "F1")} | {median / smallest:F2} |"));
            }
        }

        if (TestGet is { } tg)
        {
            sb.AppendLine();
            sb.AppendLine(Inv($"### ChunkUpload chunk test GET, session with {tg.StoredChunks:N0} stored chunks of {tg.ChunkBytes / 1024} KiB (one request at a time)"));
            sb.AppendLine();
            sb.AppendLine("| requests | p50 ms | p90 ms | p99 ms | max ms | wrong answers | throttled (429) | storing the chunks, chunks/s |");
            sb.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- |");
            var l = tg.LatenciesMs;
            sb.AppendLine(Inv($"| {l.Length:N0} | {Stats.Percentile(l, 50):F3} | {Stats.Percentile(l, 90):F3} | {Stats.Percentile(l, 99):F3} | {l.Max():F3} | {tg.WrongAnswers} | {tg.Throttled} | {tg.StoreChunksPerSecond:F0} |"));
        }

        var small = results.Where(r => r.Scenario == "small").ToList();
        if (small.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine(Inv($"### Many small files: {_o.SmallFiles:N0} files of {small[0].ChunkBytes / 1024} KiB, {small[0].Inflight} in flight"));
            sb.AppendLine();
            sb.AppendLine("| target | files/s | CU / target | peak RSS MiB | CPU cores server / client |");
            sb.AppendLine("| --- | --- | --- | --- | --- |");
            var cu = small.Where(r => r.Target == TargetNames.ChunkUpload).ToDictionary(r => r.Run, r => _o.SmallFiles / r.Seconds);
            foreach (var target in small.Select(r => r.Target).Distinct())
            {
                var rows = small.Where(r => r.Target == target).ToList();
                var ratios = rows.Where(r => cu.ContainsKey(r.Run)).Select(r => cu[r.Run] / (_o.SmallFiles / r.Seconds)).ToList();
                sb.AppendLine(Inv($"| {TargetNames.Display(target)} | {Cell(rows.Select(r => _o.SmallFiles / r.Seconds).ToList(), "F0")} | {(target == TargetNames.ChunkUpload || ratios.Count == 0 ? "1" : Cell(ratios, "F2"))} | {rows.Max(r => r.PeakRssBytes) / MiB:F0} | {Cores(rows)} |"));
            }
        }

        RenderTargets(sb, results);

        if (notes.Count > 0)
        {
            sb.AppendLine();
            foreach (var note in notes)
            {
                sb.AppendLine(Inv($"- {note}"));
            }
        }

        return sb.ToString();
    }

    /// <summary>tus targets against @tus/server, per PATCH size: the whole file in one PATCH, and each chunk size.</summary>
    private static void RenderTus(StringBuilder sb, IReadOnlyList<RunResult> results)
    {
        var tus = results.Where(r => TargetNames.IsTus(r.Target) && r.Scenario is "main" or "tus-single").ToList();
        if (tus.Select(r => r.Target).Distinct().Count() < 2)
        {
            return;
        }

        sb.AppendLine();
        sb.AppendLine("### tus: ChunkUpload's /tus against @tus/server 2.4.5 with @tus/file-store (sequential PATCHes, interleaved)");
        sb.AppendLine();
        sb.AppendLine("| PATCH size | target | MiB/s | target / @tus/server | peak RSS MiB | CPU cores server / client |");
        sb.AppendLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var group in tus.GroupBy(r => (r.Scenario, r.ChunkBytes)).OrderBy(g => g.Key.Scenario == "tus-single" ? 0 : 1).ThenByDescending(g => g.Key.ChunkBytes))
        {
            var rows = group.ToList();
            var peer = rows.Where(r => r.Target == TargetNames.Tus).ToDictionary(r => r.Run, r => r.MiBps);
            string size = group.Key.Scenario == "tus-single" ? "whole file (1 PATCH)" : Inv($"{group.Key.ChunkBytes / MiB:0.##} MiB");
            foreach (var target in rows.Select(r => r.Target).Distinct())
            {
                var mine = rows.Where(r => r.Target == target).ToList();
                var ratios = mine.Where(r => peer.ContainsKey(r.Run)).Select(r => r.MiBps / peer[r.Run]).ToList();
                sb.AppendLine(Inv($"| {size} | {TargetNames.Display(target)} | {Cell(mine.Select(r => r.MiBps).ToList(), "F0")} | {(target == TargetNames.Tus || ratios.Count == 0 ? "1" : Cell(ratios, "F2"))} | {mine.Max(r => r.PeakRssBytes) / MiB:F0} | {Cores(mine)} |"));
            }
        }
    }

    /// <summary>The whole file in one PUT: ChunkUpload's Google-style endpoint against the raw Kestrel PUT sink.</summary>
    private static void RenderSinglePut(StringBuilder sb, IReadOnlyList<RunResult> results)
    {
        var rows = results.Where(r => r.Scenario == "single-put").ToList();
        if (!rows.Any(r => r.Target == TargetNames.ChunkUploadGoogle))
        {
            return;
        }

        sb.AppendLine();
        sb.AppendLine("### The whole file in one PUT: ChunkUpload's Google-style endpoint against the raw Kestrel PUT sink (interleaved)");
        sb.AppendLine();
        sb.AppendLine("| target | MiB/s | ChunkUpload Google-style / target | peak RSS MiB | CPU cores server / client |");
        sb.AppendLine("| --- | --- | --- | --- | --- |");
        var google = rows.Where(r => r.Target == TargetNames.ChunkUploadGoogle).ToDictionary(r => r.Run, r => r.MiBps);
        foreach (var target in rows.Select(r => r.Target).Distinct())
        {
            var mine = rows.Where(r => r.Target == target).ToList();
            var ratios = mine.Where(r => google.ContainsKey(r.Run)).Select(r => google[r.Run] / r.MiBps).ToList();
            sb.AppendLine(Inv($"| {TargetNames.Display(target)} | {Cell(mine.Select(r => r.MiBps).ToList(), "F0")} | {(target == TargetNames.ChunkUploadGoogle || ratios.Count == 0 ? "1" : Cell(ratios, "F2"))} | {mine.Max(r => r.PeakRssBytes) / MiB:F0} | {Cores(mine)} |"));
        }
    }

    /// <summary>ChunkUpload on PostgreSQL + S3 (one node, two nodes) against the AWS SDK's multipart upload to the same gateway.</summary>
    private void RenderSharedStores(StringBuilder sb, IReadOnlyList<RunResult> results)
    {
        var rows = results.Where(r => r.Scenario == "s3").ToList();
        if (rows.Count == 0)
        {
            return;
        }

        sb.AppendLine();
        sb.AppendLine(Inv($"### Shared stores: PostgreSQL metadata + S3 data (Ceph RGW), {rows[0].ChunkBytes / MiB:0.##} MiB chunks / parts, {rows[0].Inflight} in flight, interleaved"));
        sb.AppendLine();
        sb.AppendLine("| target | MiB/s | target / AWS SDK TransferUtility | node CPU cores / client |");
        sb.AppendLine("| --- | --- | --- | --- |");
        var sdk = rows.Where(r => r.Target == SharedStoresScenario.Sdk).ToDictionary(r => r.Run, r => r.MiBps);
        foreach (var target in rows.Select(r => r.Target).Distinct())
        {
            var mine = rows.Where(r => r.Target == target).ToList();
            var ratios = mine.Where(r => sdk.ContainsKey(r.Run)).Select(r => r.MiBps / sdk[r.Run]).ToList();
            string name = target switch
            {
                SharedStoresScenario.OneNode => "ChunkUpload, 1 node",
                SharedStoresScenario.TwoNodes => "ChunkUpload, 2 nodes (chunks in turn)",
                _ => "AWS SDK TransferUtility",
            };
            sb.AppendLine(Inv($"| {name} | {Cell(mine.Select(r => r.MiBps).ToList(), "F0")} | {(target == SharedStoresScenario.Sdk || ratios.Count == 0 ? "1" : Cell(ratios, "F2"))} | {Cores(mine)} |"));
        }

        if (AckLatenciesMs is { Length: > 0 } l)
        {
            sb.AppendLine();
            sb.AppendLine(Inv($"Chunk acknowledgement (POST sent to 200) with PostgreSQL metadata, four concurrent uploads, one chunk in flight each: {l.Length} chunks, p50 {Stats.Percentile(l, 50):F1} ms, p90 {Stats.Percentile(l, 90):F1} ms, p99 {Stats.Percentile(l, 99):F1} ms, max {l.Max():F1} ms."));
        }
    }

    /// <summary>The resumable.js upload against an earlier build of the server (--before-server-dll), interleaved.</summary>
    private static void RenderBeforeAfter(StringBuilder sb, IReadOnlyList<RunResult> results)
    {
        var main = results.Where(r => r.Scenario == "main" && r.Target is TargetNames.ChunkUpload or TargetNames.ChunkUploadBefore).ToList();
        if (!main.Any(r => r.Target == TargetNames.ChunkUploadBefore))
        {
            return;
        }

        sb.AppendLine();
        sb.AppendLine("### resumable.js upload: this build against the earlier build (--before-server-dll), interleaved");
        sb.AppendLine();
        sb.AppendLine("| chunk size | before MiB/s | after MiB/s | after / before | tail ms before / after | peak RSS MiB before / after |");
        sb.AppendLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var group in main.GroupBy(r => r.ChunkBytes).OrderByDescending(g => g.Key))
        {
            var before = group.Where(r => r.Target == TargetNames.ChunkUploadBefore).ToList();
            var after = group.Where(r => r.Target == TargetNames.ChunkUpload).ToList();
            var b = before.ToDictionary(r => r.Run, r => r.MiBps);
            var ratios = after.Where(r => b.ContainsKey(r.Run)).Select(r => r.MiBps / b[r.Run]).ToList();
            if (ratios.Count == 0)
            {
                continue;
            }

            sb.AppendLine(Inv($"| {group.Key / MiB:0.##} MiB | {Cell(before.Select(r => r.MiBps).ToList(), "F0")} | {Cell(after.Select(r => r.MiBps).ToList(), "F0")} | {Cell(ratios, "F2")} | {Stats.Median(before.Select(r => r.TailSeconds * 1000).ToList()):F1} / {Stats.Median(after.Select(r => r.TailSeconds * 1000).ToList()):F1} | {before.Max(r => r.PeakRssBytes) / MiB:F0} / {after.Max(r => r.PeakRssBytes) / MiB:F0} |"));
        }
    }

    /// <summary>Issue 4's targets against this run's medians (they are defined for a 1 GiB file and 5 runs).</summary>
    private void RenderTargets(StringBuilder sb, IReadOnlyList<RunResult> results)
    {
        var rows = new List<(string Target, string Measured, bool Met)>();

        double? Ratio(long chunk, string peer)
        {
            var main = results.Where(r => r.Scenario == "main" && r.ChunkBytes == chunk).ToList();
            var cu = main.Where(r => r.Target == TargetNames.ChunkUpload).ToDictionary(r => r.Run, r => r.MiBps);
            var ratios = main.Where(r => r.Target == peer && cu.ContainsKey(r.Run)).Select(r => cu[r.Run] / r.MiBps).ToList();
            return ratios.Count > 0 ? Stats.Median(ratios) : null;
        }

        void Add(string target, double? value, string format, Func<double, bool> met)
        {
            if (value is { } v)
            {
                rows.Add((target, v.ToString(format, CultureInfo.InvariantCulture), met(v)));
            }
        }

        const long Chunk8 = 8 * 1024 * 1024;
        const long Chunk1 = 1024 * 1024;
        Add("8 MiB chunks: ChunkUpload / raw Kestrel PUT >= 0.85", Ratio(Chunk8, TargetNames.Raw), "F3", v => v >= 0.85);
        Add("8 MiB chunks: ChunkUpload / @tus/server >= 1.5", Ratio(Chunk8, TargetNames.Tus), "F3", v => v >= 1.5);
        Add("1 MiB chunks: ChunkUpload / @tus/server >= 2", Ratio(Chunk1, TargetNames.Tus), "F3", v => v >= 2);

        // Issue 8: ChunkUpload's tus against @tus/server, durable (default) and relaxed (FlushToDisk=false).
        double? TusRatio(string scenario, long? chunk, string target)
        {
            var rows = results.Where(r => r.Scenario == scenario && (chunk is null || r.ChunkBytes == chunk)).ToList();
            var peer = rows.Where(r => r.Target == TargetNames.Tus).ToDictionary(r => r.Run, r => r.MiBps);
            var ratios = rows.Where(r => r.Target == target && peer.ContainsKey(r.Run)).Select(r => r.MiBps / peer[r.Run]).ToList();
            return ratios.Count > 0 ? Stats.Median(ratios) : null;
        }

        Add("tus single PATCH: ChunkUpload tus / @tus/server >= 1.2", TusRatio("tus-single", null, TargetNames.ChunkUploadTus), "F3", v => v >= 1.2);
        Add("tus 8 MiB PATCHes: ChunkUpload tus / @tus/server >= 1.2", TusRatio("main", Chunk8, TargetNames.ChunkUploadTus), "F3", v => v >= 1.2);
        Add("tus single PATCH, FlushToDisk=false: / @tus/server >= 1.5", TusRatio("tus-single", null, TargetNames.ChunkUploadTusRelaxed), "F3", v => v >= 1.5);
        Add("tus 8 MiB PATCHes, FlushToDisk=false: / @tus/server >= 1.5", TusRatio("main", Chunk8, TargetNames.ChunkUploadTusRelaxed), "F3", v => v >= 1.5);
        var single = results.Where(r => r.Scenario == "tus-single" && r.Target == TargetNames.ChunkUploadTus).ToList();
        if (single.Count > 0)
        {
            Add("tus single PATCH: ChunkUpload peak RSS < 150 MiB (MiB)", single.Max(r => r.PeakRssBytes) / MiB, "F0", v => v < 150);
        }

        double? AfterBefore(long chunk)
        {
            var main = results.Where(r => r.Scenario == "main" && r.ChunkBytes == chunk).ToList();
            var before = main.Where(r => r.Target == TargetNames.ChunkUploadBefore).ToDictionary(r => r.Run, r => r.MiBps);
            var ratios = main.Where(r => r.Target == TargetNames.ChunkUpload && before.ContainsKey(r.Run)).Select(r => r.MiBps / before[r.Run]).ToList();
            return ratios.Count > 0 ? Stats.Median(ratios) : null;
        }

        // Issue 9: a single Google-style PUT against the raw Kestrel PUT sink; nginx-style 8 MiB segments likewise.
        double? AgainstRaw(string scenario, long? chunk, string target)
        {
            var rows = results.Where(r => r.Scenario == scenario && (chunk is null || r.ChunkBytes == chunk)).ToList();
            var raw = rows.Where(r => r.Target == TargetNames.Raw).ToDictionary(r => r.Run, r => r.MiBps);
            var ratios = rows.Where(r => r.Target == target && raw.ContainsKey(r.Run)).Select(r => r.MiBps / raw[r.Run]).ToList();
            return ratios.Count > 0 ? Stats.Median(ratios) : null;
        }

        Add("Google-style single PUT: ChunkUpload / raw Kestrel PUT >= 0.85", AgainstRaw("single-put", null, TargetNames.ChunkUploadGoogle), "F3", v => v >= 0.85);
        Add("nginx-style 8 MiB segments: ChunkUpload / raw Kestrel PUT (reported)", AgainstRaw("main", Chunk8, TargetNames.ChunkUploadNginx), "F3", _ => true);

        // Issue 10: ChunkUpload through S3 against the AWS SDK's own multipart upload to the same gateway.
        double? AgainstSdk(string target)
        {
            var rows = results.Where(r => r.Scenario == "s3").ToList();
            var sdk = rows.Where(r => r.Target == SharedStoresScenario.Sdk).ToDictionary(r => r.Run, r => r.MiBps);
            var ratios = rows.Where(r => r.Target == target && sdk.ContainsKey(r.Run)).Select(r => r.MiBps / sdk[r.Run]).ToList();
            return ratios.Count > 0 ? Stats.Median(ratios) : null;
        }

        Add("S3, 1 node: ChunkUpload / AWS SDK TransferUtility >= 0.8", AgainstSdk(SharedStoresScenario.OneNode), "F3", v => v >= 0.8);
        Add("S3, 2 nodes: ChunkUpload / AWS SDK TransferUtility >= 0.8", AgainstSdk(SharedStoresScenario.TwoNodes), "F3", v => v >= 0.8);

        // "Not worse": within this machine's run-to-run noise (a few per cent) of the earlier build.
        Add("resumable.js 8 MiB chunks: after / before >= 0.95", AfterBefore(Chunk8), "F3", v => v >= 0.95);
        Add("resumable.js 1 MiB chunks: after / before >= 0.95", AfterBefore(Chunk1), "F3", v => v >= 0.95);

        var cuMain = results.Where(r => r.Scenario == "main" && r.Target == TargetNames.ChunkUpload).ToList();
        if (cuMain.Count > 0)
        {
            Add(Inv($"tail < 100 ms ({_o.SizeMiB} MiB file, median, worst chunk size)"),
                cuMain.GroupBy(r => r.ChunkBytes).Max(g => Stats.Median(g.Select(r => r.TailSeconds * 1000).ToList())), "F1", v => v < 100);
        }

        var tail = results.Where(r => r.Scenario == "tail").ToList();
        var sizes = tail.Select(r => r.SizeBytes).Distinct().Order().ToList();
        if (sizes.Count > 1)
        {
            double TailOf(long size) => Stats.Median(tail.Where(r => r.SizeBytes == size).Select(r => r.TailSeconds).ToList());
            Add(Inv($"tail at {sizes[^1] / MiB:F0} MiB <= 1.5 x tail at {sizes[0] / MiB:F0} MiB"), TailOf(sizes[^1]) / TailOf(sizes[0]), "F2", v => v <= 1.5);
        }

        var rss = results.Where(r => r.Scenario == "rss").ToList();
        if (rss.Count > 0)
        {
            Add(Inv($"peak RSS < 150 MiB with {rss[0].Inflight} in flight (MiB)"), rss.Max(r => r.PeakRssBytes) / MiB, "F0", v => v < 150);
        }

        if (TestGet is { } tg)
        {
            Add(Inv($"chunk test GET p99 < 2 ms ({tg.StoredChunks:N0} stored chunks)"), Stats.Percentile(tg.LatenciesMs, 99), "F3", v => v < 2);
        }

        var small = results.Where(r => r.Scenario == "small").ToList();
        var cuSmall = small.Where(r => r.Target == TargetNames.ChunkUpload).ToDictionary(r => r.Run, r => r.Seconds);
        var smallRatios = small.Where(r => r.Target == TargetNames.Tus && cuSmall.ContainsKey(r.Run)).Select(r => r.Seconds / cuSmall[r.Run]).ToList();
        if (smallRatios.Count > 0)
        {
            Add("small files: ChunkUpload files/s / @tus/server files/s >= 1", Stats.Median(smallRatios), "F3", v => v >= 1);
        }

        if (rows.Count == 0)
        {
            return;
        }

        sb.AppendLine();
        sb.AppendLine("### Targets of issues 4, 8, 9 and 10 (set for a 1 GiB file, 4 in flight, 5 runs; smaller runs are indicative only)");
        sb.AppendLine();
        sb.AppendLine("| target | this run | |");
        sb.AppendLine("| --- | --- | --- |");
        foreach (var (target, measured, met) in rows)
        {
            sb.AppendLine(Inv($"| {target} | {measured} | {(met ? "met" : "missed")} |"));
        }
    }

    /// <summary>Median CPU seconds per wall-clock second of the server and of the client (2.00 = both cores busy).</summary>
    private static string Cores(List<RunResult> rows) =>
        Inv($"{Stats.Median(rows.Select(r => r.ServerCpuSeconds / r.Seconds).ToList()):F2} / {Stats.Median(rows.Select(r => r.ClientCpuSeconds / r.Seconds).ToList()):F2}");

    private static string Cell(List<double> values, string format) =>
        values.Count == 1
            ? values.First().ToString(format, CultureInfo.InvariantCulture)
            : Inv($"{Stats.Median(values).ToString(format, CultureInfo.InvariantCulture)} ({values.Min().ToString(format, CultureInfo.InvariantCulture)}-{values.Max().ToString(format, CultureInfo.InvariantCulture)})");

    private static string Inv(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
