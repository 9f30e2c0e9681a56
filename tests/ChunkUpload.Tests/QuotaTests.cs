using System.Net;
using System.Text.Json;
using ChunkUpload.Core.Engine;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>
/// Finished files count against the client that made them: a quota on their number and one on their bytes, refused
/// with a permanent 403 (retrying cannot free anything; deleting files or their retention does), and a default
/// retention that removes finished files after 30 days.
/// </summary>
public sealed class QuotaTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly ManualTimeProvider _clock = new(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Returns_403_For_A_New_Upload_Once_The_Client_Keeps_As_Many_Finished_Files_As_It_May()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?> { ["Upload:MaxCompletedFilesPerClient"] = "2" });
        var client = new UploadClient(app.CreateClient());

        // Zero-byte files complete at once: they must count as much as any other.
        foreach (var id in new[] { "kept-1", "kept-2" })
        {
            await client.UploadAllAsync(TestFile.Random(id, 0, 1000));
            await client.WaitForCompleteAsync(id);
        }

        var third = TestFile.Random("kept-3", 1000, 1000);
        using (var refused = await client.PostChunkAsync(third, 1))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode); // permanent for resumable.js: retrying cannot help
            await ResumableContractTests.AssertProblemAsync(refused, "completed_files_quota_exceeded");
            Assert.Null(refused.Headers.RetryAfter);
        }

        var tus = TusClient.Of(app);
        using (var creation = await tus.CreateAsync(10))
        {
            Assert.Equal(HttpStatusCode.Forbidden, creation.StatusCode); // tus-js-client stops on a 4xx other than 409/423
            await ResumableContractTests.AssertProblemAsync(creation, "completed_files_quota_exceeded");
        }

        // Deleting a finished file frees its place.
        using (var delete = await client.Http.DeleteAsync("/uploads/kept-1"))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        await client.UploadAllAsync(third);
        await client.WaitForCompleteAsync(third.Identifier);
    }

    [Fact]
    public async Task Returns_403_For_A_File_That_Would_Take_The_Client_Past_Its_Finished_Bytes()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?> { ["Upload:MaxCompletedBytesPerClient"] = "5000" });
        var client = new UploadClient(app.CreateClient());
        var first = TestFile.Random("bytes-1", 3000, 1000);
        await client.UploadAllAsync(first);
        await client.WaitForCompleteAsync(first.Identifier);

        // 3000 kept + 3000 declared > 5000: refused before a byte of it is sent.
        using (var refused = await client.PostChunkAsync(TestFile.Random("bytes-2", 3000, 1000, seed: 2), 1))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            await ResumableContractTests.AssertProblemAsync(refused, "completed_bytes_quota_exceeded");
        }

        var fits = TestFile.Random("bytes-3", 2000, 1000, seed: 3);
        await client.UploadAllAsync(fits);
        await client.WaitForCompleteAsync(fits.Identifier);
        Assert.Equal(2, Directory.EnumerateFiles(Path.Combine(_dir.StorageRoot, "completed")).Count());
    }

    [Fact]
    public async Task Finished_Files_Are_Kept_For_30_Days_By_Default_Then_Removed()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, null, services => services.AddSingleton<TimeProvider>(_clock));
        var client = new UploadClient(app.CreateClient());
        var engine = app.Services.GetRequiredService<UploadEngine>();
        var file = TestFile.Random("retained-1", 2000, 1000);
        await client.UploadAllAsync(file);
        var status = await client.WaitForCompleteAsync(file.Identifier);
        var completedAt = status.GetProperty("completedAt").GetDateTimeOffset();
        Assert.Equal(completedAt.AddDays(30), status.GetProperty("expiresAt").GetDateTimeOffset());

        _clock.Advance(TimeSpan.FromDays(29));
        Assert.Equal(0, (await engine.SweepAsync(CancellationToken.None)).RetiredFiles);
        Assert.Equal(file.Data, await client.Http.GetByteArrayAsync("/files/retained-1"));

        _clock.Advance(TimeSpan.FromDays(1) + TimeSpan.FromMinutes(1));
        Assert.Equal(1, (await engine.SweepAsync(CancellationToken.None)).RetiredFiles);
        using var gone = await client.Http.GetAsync("/files/retained-1");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task An_Empty_Completed_Retention_Keeps_Finished_Files()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?> { ["Upload:CompletedRetention"] = "" },
            services => services.AddSingleton<TimeProvider>(_clock));
        var client = new UploadClient(app.CreateClient());
        var file = TestFile.Random("forever-1", 1000, 1000);
        await client.UploadAllAsync(file);
        var status = await client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(JsonValueKind.Null, status.GetProperty("expiresAt").ValueKind);
        _clock.Advance(TimeSpan.FromDays(3650));
        Assert.Equal(0, (await app.Services.GetRequiredService<UploadEngine>().SweepAsync(CancellationToken.None)).Total);
        Assert.Equal(file.Data, await client.Http.GetByteArrayAsync("/files/forever-1"));
    }
}
