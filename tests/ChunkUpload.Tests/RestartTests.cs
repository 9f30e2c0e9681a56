using System.Net;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>A new server over the same storage root knows everything the old one acknowledged.</summary>
public sealed class RestartTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Restarted_Server_Reports_Stored_Chunks_And_Finishes_The_Upload()
    {
        var file = TestFile.Random("restart-1", 10_000, 1000);
        int[] firstHalf = [1, 3, 5, 7, 9];
        using (var before = new ChunkUploadApplication(_dir.StorageRoot))
            await new UploadClient(before.CreateClient()).UploadAllAsync(file, order: firstHalf);

        using var after = new ChunkUploadApplication(_dir.StorageRoot);
        var client = new UploadClient(after.CreateClient());
        for (int n = 1; n <= file.TotalChunks; n++)
        {
            using var test = await client.TestChunkAsync(file, n);
            Assert.Equal(firstHalf.Contains(n) ? HttpStatusCode.OK : HttpStatusCode.NoContent, test.StatusCode);
        }

        var status = await client.StatusAsync(file.Identifier);
        Assert.Equal([2, 4, 6, 8, 10], status.GetProperty("missingChunks").EnumerateArray().Select(e => e.GetInt32()));

        await client.UploadAllAsync(file, order: [2, 4, 6, 8, 10]);
        var done = await client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(file.Sha256, done.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task Completed_Upload_Survives_Restart_And_Resent_Chunks_Change_Nothing()
    {
        var file = TestFile.Random("restart-2", 4500, 1000);
        using (var before = new ChunkUploadApplication(_dir.StorageRoot))
        {
            var first = new UploadClient(before.CreateClient());
            await first.UploadAllAsync(file);
            await first.WaitForCompleteAsync(file.Identifier);
        }

        using var after = new ChunkUploadApplication(_dir.StorageRoot);
        var client = new UploadClient(after.CreateClient());
        for (int n = 1; n <= file.TotalChunks; n++)
        {
            using var test = await client.TestChunkAsync(file, n, ClientKind.FlowOctet);
            Assert.Equal(HttpStatusCode.OK, test.StatusCode);
        }

        using (var resend = await client.PostChunkAsync(file with { Data = new byte[4500] }, 4))
            Assert.Equal(HttpStatusCode.OK, resend.StatusCode);
        var status = await client.StatusAsync(file.Identifier);
        Assert.Equal("complete", status.GetProperty("state").GetString());
        Assert.Equal(file.Sha256, status.GetProperty("sha256").GetString());
        Assert.Equal(file.Data, await client.Http.GetByteArrayAsync("/files/restart-2"));
        Assert.Equal(0, after.Logs.Count(1004, "restart-2"));
    }
}
