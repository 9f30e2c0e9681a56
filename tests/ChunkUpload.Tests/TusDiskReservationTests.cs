using System.Globalization;
using System.Net;
using ChunkUpload.Core.Engine;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace ChunkUpload.Tests;

/// <summary>
/// Declaring a size reserves no disk: a hundred large tus creations that never send a byte leave the volume's free
/// space as it was, do not stop another client, and are swept once the unstarted-upload expiry passes. Runs alone
/// (no other test of this assembly writes meanwhile), as it measures the volume.
/// </summary>
[Collection(nameof(TusDiskReservationTests))]
[CollectionDefinition(nameof(TusDiskReservationTests), DisableParallelization = true)]
public sealed class TusDiskReservationTests(ITestOutputHelper output) : IDisposable
{
    private const long GiB = 1024L * 1024 * 1024;
    private const long MiB = 1024L * 1024;
    private readonly TempDirectory _dir = new();
    private readonly ManualTimeProvider _clock = new(new DateTimeOffset(2026, 11, 1, 12, 0, 0, TimeSpan.Zero));

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_Hundred_Large_Bodyless_Creations_Reserve_No_Disk_And_Are_Swept_When_Unstarted_Expiry_Passes()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?>
        {
            ["Auth:Enabled"] = "true",
            ["Auth:ApiKeys:0:Key"] = "hoarder-key-0123456789",
            ["Auth:ApiKeys:0:Owner"] = "hoarder",
            ["Auth:ApiKeys:1:Key"] = "someone-key-0123456789",
            ["Auth:ApiKeys:1:Owner"] = "someone",
            ["Upload:MaxFileSize"] = (1L << 50).ToString(CultureInfo.InvariantCulture), // so that only the free space limits a creation
        }, services => services.AddSingleton<TimeProvider>(_clock));
        var hoarder = Client(app, "hoarder-key-0123456789");
        var someone = Client(app, "someone-key-0123456789");
        _ = app.Services; // start the host: its storage folders exist before the first measure

        var drive = new DriveInfo(Path.GetPathRoot(Path.GetFullPath(_dir.StorageRoot))!);
        long before = new DriveInfo(drive.Name).AvailableFreeSpace;

        // A creation larger than the free space is refused by design (507): 40 GiB each where that leaves 8 GiB for
        // everything else on the volume, less where less is free.
        long declared = Math.Min(40 * GiB, Math.Max(before / 2, before - 8 * GiB));
        using (var tooLarge = await hoarder.CreateAsync(before + GiB))
        {
            Assert.Equal((HttpStatusCode)507, tooLarge.StatusCode);
            await ResumableContractTests.AssertProblemAsync(tooLarge, "insufficient_storage");
        }

        var locations = new List<string>();
        for (int i = 0; i < 100; i++)
        {
            using var created = await hoarder.CreateAsync(declared, TusClient.Metadata(("filename", $"big-{i}.bin")));
            Assert.True(created.StatusCode == HttpStatusCode.Created, $"Creation {i}: {(int)created.StatusCode}");
            locations.Add(created.Headers.Location!.OriginalString);
        }

        long after = new DriveInfo(drive.Name).AvailableFreeSpace;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"100 creations of {declared:N0} bytes ({declared / (double)GiB:F1} GiB) each, {100 * declared / (double)GiB:F0} GiB declared in all"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"free space before: {before:N0} bytes ({before / (double)GiB:F2} GiB)"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"free space after:  {after:N0} bytes ({after / (double)GiB:F2} GiB)"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"difference: {(before - after) / (double)MiB:F2} MiB"));
        long written = Directory.EnumerateFiles(_dir.StorageRoot, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"bytes in the storage root: {written:N0} (the upload records)"));

        long allocated = AllocatedBytes(_dir.StorageRoot);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"disk blocks allocated in the storage root: {allocated:N0} bytes"));

        // What the server wrote is its records (a few KiB each), by length and by allocated blocks (a reservation
        // that keeps the length, fallocate's KEEP_SIZE, shows only in the blocks): these two are exact, as everything
        // the server writes is under its storage root. The volume's figure also moves with whatever else runs on the
        // machine meanwhile (the other test assemblies run in parallel: cluster nodes staging 256 MiB files, the test
        // services' database and object store; once 110 MiB in the second this test took), so it only has to stay
        // under a quarter of one declared size: a server reserving 1/400 or more of each declaration would lose at least that.
        long volumeAllowance = Math.Max(GiB, declared / 4);
        Assert.True(written < 2 * MiB, $"The storage root holds {written} bytes after the creations.");
        Assert.True(allocated < 4 * MiB, $"The storage root has {allocated} bytes of disk allocated after the creations.");
        Assert.True(before - after < volumeAllowance,
            $"The volume lost {(before - after) / MiB} MiB during the creations (allowance {volumeAllowance / MiB} MiB).");
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_dir.StorageRoot, "parts")));

        foreach (var location in locations.Take(3))
        {
            using var head = await hoarder.HeadAsync(location);
            Assert.Equal(0, TusClient.OffsetOf(head));
            Assert.Equal(declared.ToString(CultureInfo.InvariantCulture), TusClient.Header(head, "Upload-Length"));
        }

        // Another client still uploads a file.
        byte[] data = UploadClient.RandomBytes(3 * 1024 * 1024, 41);
        string other = await someone.UploadAsync(data, TusClient.Metadata(("filename", "other.bin")));
        var status = await new UploadClient(someone.Http).WaitForCompleteAsync(TusClient.IdOf(other));
        Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());

        // Not a byte arrived: once Upload:UnstartedUploadExpiry (15 minutes) passes, the sweeper removes all of them.
        var engine = app.Services.GetRequiredService<UploadEngine>();
        _clock.Advance(TimeSpan.FromMinutes(14));
        Assert.Equal(0, (await engine.SweepAsync(CancellationToken.None)).ExpiredUploads);
        _clock.Advance(TimeSpan.FromMinutes(2));
        var swept = await engine.SweepAsync(CancellationToken.None);
        output.WriteLine($"swept after 16 minutes: {swept.ExpiredUploads} uploads");
        Assert.Equal(100, swept.ExpiredUploads);
        foreach (var location in locations)
        {
            using var head = await hoarder.HeadAsync(location);
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        }

        Assert.Single(Directory.EnumerateDirectories(Path.Combine(_dir.StorageRoot, "sessions"))); // the other client's file
        Assert.Equal(data, await someone.Http.GetByteArrayAsync("/files/" + TusClient.IdOf(other)));
    }

    private static TusClient Client(ChunkUploadApplication app, string apiKey) => TusClient.Of(app, apiKey);

    // Disk blocks the files under a folder occupy (du), whatever their lengths say.
    private static long AllocatedBytes(string folder)
    {
        using var du = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("du", ["-s", "--block-size=1", folder])
        {
            RedirectStandardOutput = true,
        })!;
        string output = du.StandardOutput.ReadToEnd();
        du.WaitForExit();
        Assert.Equal(0, du.ExitCode);
        return long.Parse(output.Split('\t')[0], CultureInfo.InvariantCulture);
    }
}
