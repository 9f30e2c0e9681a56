using System.Net;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>Out-of-order, duplicate and racing chunks (PROTOCOLS.md 9.3): one correct file, assembled exactly once.</summary>
public sealed class OrderingTests : ServerTest
{
    private const int AssembledEvent = 1004;
    [Fact]
    public async Task Chunks_In_Reverse_Order_Assemble_Correctly()
    {
        var file = TestFile.Random("reverse-1", 10 * 1000 + 700, 1000);
        await Client.UploadAllAsync(file, order: Enumerable.Range(1, file.TotalChunks).Reverse());
        var status = await Client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(file.Sha256, status.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task Duplicate_Chunks_Before_And_After_Completion_Return_200_And_Leave_The_File_Unchanged()
    {
        var file = TestFile.Random("dup-1", 5000, 1000);
        await Client.UploadAllAsync(file, order: [1, 1, 3, 2, 3, 4, 5]);
        await Client.WaitForCompleteAsync(file.Identifier);

        // A client that lost the answer re-sends the last chunk; even different bytes must not touch the file.
        var tampered = file with { Data = new byte[5000] };
        using (var resend = await Client.PostChunkAsync(tampered, 5))
            Assert.Equal(HttpStatusCode.OK, resend.StatusCode);
        using (var resend = await Client.PostChunkAsync(file, 1, ClientKind.FlowOctet))
            Assert.Equal(HttpStatusCode.OK, resend.StatusCode);

        Assert.Equal(file.Data, await Client.Http.GetByteArrayAsync("/files/dup-1"));
        Assert.Equal(1, App.Logs.Count(AssembledEvent, "Upload dup-1 assembled"));
    }

    [Fact]
    public async Task Concurrent_Final_Chunks_Give_Exactly_One_Assembly()
    {
        // forceChunkSize variant of PROTOCOLS.md section 10: 1,048,576 / 1,048,576 / 362,025, all at once, each twice.
        var file = TestFile.Random("race-1", 2_459_177, 1_048_576, force: true);
        Assert.Equal(3, file.TotalChunks);
        var posts = Enumerable.Range(1, file.TotalChunks).Concat(Enumerable.Range(1, file.TotalChunks))
            .Select(async n =>
            {
                using var response = await Client.PostChunkAsync(file, n);
                return response.StatusCode;
            });
        var statuses = await Task.WhenAll(posts);
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));

        var status = await Client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(file.Sha256, status.GetProperty("sha256").GetString());
        Assert.Equal(1, App.Logs.Count(AssembledEvent, "Upload race-1 assembled"));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Dir.StorageRoot, "tmp")));
    }

    [Fact]
    public async Task Many_Files_In_Parallel_Each_Assemble_Once()
    {
        var files = Enumerable.Range(0, 8).Select(i => TestFile.Random($"par-{i}", 20_000 + (i * 777), 4096, seed: i)).ToList();
        await Task.WhenAll(files.Select(f => Task.WhenAll(
            Enumerable.Range(1, f.TotalChunks).Select(async n =>
            {
                using var response = await Client.PostChunkAsync(f, n, n % 2 == 0 ? ClientKind.FlowMultipart : ClientKind.ResumableOctet);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }))));
        foreach (var file in files)
        {
            var status = await Client.WaitForCompleteAsync(file.Identifier);
            Assert.Equal(file.Sha256, status.GetProperty("sha256").GetString());
            Assert.Equal(1, App.Logs.Count(AssembledEvent, $"Upload {file.Identifier} assembled"));
        }
    }
}
