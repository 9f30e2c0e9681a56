using System.Net;
using ChunkUpload.Core.Engine;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>The sweeper, driven by a controllable clock: idle uploads, retained files and orphans go away on time.</summary>
public sealed class ExpiryTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly ManualTimeProvider _clock = new(new DateTimeOffset(2026, 11, 1, 12, 0, 0, TimeSpan.Zero));

    public void Dispose() => _dir.Dispose();

    private ChunkUploadApplication Start(Dictionary<string, string?>? settings = null) =>
        new(_dir.StorageRoot, settings, services => services.AddSingleton<TimeProvider>(_clock));

    [Fact]
    public async Task Idle_Upload_Is_Kept_For_Seven_Days_Then_Answers_As_Unknown()
    {
        using var app = Start();
        var client = new UploadClient(app.CreateClient());
        var store = app.Services.GetRequiredService<UploadEngine>();
        var idle = TestFile.Random("idle-1", 3000, 1000);
        var active = TestFile.Random("active-1", 3000, 1000);
        await client.UploadAllAsync(idle, order: [1]);
        await client.UploadAllAsync(active, order: [1]);

        _clock.Advance(TimeSpan.FromDays(6));
        await client.UploadAllAsync(active, order: [2]); // activity restarts the clock for this one
        Assert.Equal(0, (await store.SweepAsync(CancellationToken.None)).ExpiredUploads);

        _clock.Advance(TimeSpan.FromDays(1) + TimeSpan.FromMinutes(1));
        var swept = await store.SweepAsync(CancellationToken.None);
        Assert.Equal(1, swept.ExpiredUploads);

        using (var test = await client.TestChunkAsync(idle, 1))
            Assert.Equal(HttpStatusCode.NoContent, test.StatusCode);
        using (var status = await client.Http.GetAsync("/uploads/idle-1"))
            Assert.Equal(HttpStatusCode.NotFound, status.StatusCode);
        using (var test = await client.TestChunkAsync(active, 2))
            Assert.Equal(HttpStatusCode.OK, test.StatusCode);
        Assert.Single(Directory.EnumerateDirectories(Path.Combine(_dir.StorageRoot, "sessions")));
    }

    [Fact]
    public async Task Completed_Files_Are_Kept_With_Retention_Off_And_Removed_Once_Past_A_Retention()
    {
        var file = TestFile.Random("kept-1", 2000, 1000);
        using (var app = Start(new() { ["Upload:CompletedRetention"] = "" }))
        {
            var client = new UploadClient(app.CreateClient());
            await client.UploadAllAsync(file);
            await client.WaitForCompleteAsync(file.Identifier);
            _clock.Advance(TimeSpan.FromDays(365));
            Assert.Equal(0, (await app.Services.GetRequiredService<UploadEngine>().SweepAsync(CancellationToken.None)).Total);
            Assert.Equal(file.Data, await client.Http.GetByteArrayAsync("/files/kept-1"));
        }

        using (var app = Start(new() { ["Upload:CompletedRetention"] = "30.00:00:00" }))
        {
            var client = new UploadClient(app.CreateClient());
            Assert.Equal(1, (await app.Services.GetRequiredService<UploadEngine>().SweepAsync(CancellationToken.None)).RetiredFiles);
            using var gone = await client.Http.GetAsync("/files/kept-1");
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(_dir.StorageRoot, "completed")));
        }
    }

    [Fact]
    public async Task Orphaned_Temp_Files_Are_Removed_Once_Old()
    {
        using var app = Start();
        var store = app.Services.GetRequiredService<UploadEngine>();
        string orphan = Path.Combine(_dir.StorageRoot, "tmp", "orphan");
        await File.WriteAllBytesAsync(orphan, new byte[10]);
        File.SetLastWriteTimeUtc(orphan, _clock.GetUtcNow().UtcDateTime);

        Assert.Equal(0, (await store.SweepAsync(CancellationToken.None)).OrphanedFiles);
        _clock.Advance(TimeSpan.FromDays(2));
        Assert.Equal(1, (await store.SweepAsync(CancellationToken.None)).OrphanedFiles);
        Assert.False(File.Exists(orphan));
    }
}
