using System.Net;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

public sealed class LargeFileTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_64_MiB_File_In_Shuffled_Chunks_Comes_Back_Byte_Identical()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot);
        var client = new UploadClient(app.CreateClient());
        // 64 MiB + 300 KiB in 1 MiB chunks: the last chunk is 1.3 MiB.
        var file = TestFile.Random("big-1", (64 * 1024 * 1024) + (300 * 1024), 1024 * 1024, seed: 42);
        var order = Enumerable.Range(1, file.TotalChunks).ToArray();
        new Random(7).Shuffle(order);

        using var gate = new SemaphoreSlim(4);
        await Task.WhenAll(order.Select(async n =>
        {
            await gate.WaitAsync();
            try
            {
                using var response = await client.PostChunkAsync(file, n, n % 3 == 0 ? ClientKind.ResumableOctet : ClientKind.ResumableMultipart);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
            finally
            {
                gate.Release();
            }
        }));

        var status = await client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(file.Sha256, status.GetProperty("sha256").GetString());
        Assert.Equal(file.Data, await client.Http.GetByteArrayAsync("/files/big-1"));
    }
}
