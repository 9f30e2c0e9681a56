using System.Net;
using ChunkUpload.Core;
using ChunkUpload.Core.Errors;
using ChunkUpload.Server.Protocol;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>Chunk geometry exactly as resumable.js and flow.js compute it (PROTOCOLS.md 2.2), in the engine and over HTTP.</summary>
public sealed class GeometryTests : ServerTest
{
    private static readonly UploadOptions Limits = new();
    [Theory]
    [InlineData(99_498, 1_048_576, null, 1, 99_498)] // chunk size larger than the file (resumable.js #155)
    [InlineData(2_459_177, 1_048_576, null, 2, 1_410_601)] // last chunk absorbs the remainder (#462)
    [InlineData(2_459_177, 1_048_576, 3, 3, 362_025)] // forceChunkSize
    [InlineData(2_097_152, 1_048_576, null, 2, 1_048_576)] // exact multiple
    [InlineData(0, 1_048_576, null, 1, 0)] // zero bytes (flow.js)
    [InlineData(3_000_000_000_000, 8_388_608, null, 357_627, 15_675_392)] // beyond 2^31: longs throughout
    public void Geometry_Matches_The_Clients(long size, long chunkSize, int? declared, int expectedChunks, long lastLength)
    {
        var limits = new UploadOptions { MaxFileSize = long.MaxValue };
        var geometry = ChunkGeometry.Create(size, chunkSize, declared, limits);
        Assert.Equal(expectedChunks, geometry.TotalChunks);
        Assert.Equal(lastLength, geometry.RangeOf(expectedChunks).Length);
        Assert.Equal((expectedChunks - 1) * chunkSize, geometry.RangeOf(expectedChunks).Offset);
        Assert.Equal(size, geometry.RangeOf(expectedChunks).End);
    }

    [Theory]
    [InlineData(2_459_177, 1_048_576, 4, "chunk_count_mismatch")]
    [InlineData(2_459_177, 1_048_576, 1, "chunk_count_mismatch")]
    [InlineData(-1, 1_048_576, null, "invalid_parameter")]
    [InlineData(10, 0, null, "invalid_parameter")]
    [InlineData(200L * 1024 * 1024 * 1024, 8_388_608, null, "file_too_large")]
    [InlineData(1024, 128L * 1024 * 1024, null, "chunk_size_too_large")]
    [InlineData(10L * 1024 * 1024 * 1024, 1, null, "too_many_chunks")]
    public void Impossible_Geometry_Is_Refused(long size, long chunkSize, int? declared, string code)
    {
        var ex = Assert.Throws<UploadException>(() => ChunkGeometry.Create(size, chunkSize, declared, Limits));
        Assert.Equal(code, ex.Error.Code);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public void Chunk_Numbers_Outside_The_File_Are_Refused(int number)
    {
        var geometry = ChunkGeometry.Create(2_459_177, 1_048_576, null, Limits);
        Assert.Equal("chunk_out_of_range", Assert.Throws<UploadException>(() => geometry.RangeOf(number)).Error.Code);
    }

    [Theory]
    [InlineData(1000, 4096, false)] // one chunk smaller than the chunk size
    [InlineData(4096, 1024, false)] // exact multiple
    [InlineData(2560, 1024, false)] // last chunk 1.5x the chunk size
    [InlineData(2560, 1024, true)] // forceChunkSize: three chunks, the last 512 bytes
    public async Task Files_Of_Every_Shape_Upload_Byte_Identical(int size, int chunkSize, bool force)
    {
        var file = TestFile.Random($"shape-{size}-{chunkSize}-{force}", size, chunkSize, force: force);
        await Client.UploadAllAsync(file, ClientKind.FlowMultipart);
        var status = await Client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(file.TotalChunks, status.GetProperty("totalChunks").GetInt32());
        Assert.Equal(file.Sha256, status.GetProperty("sha256").GetString());
        Assert.Equal(file.Data, await Client.Http.GetByteArrayAsync("/files/" + file.Identifier));
    }

    [Fact]
    public async Task Zero_Byte_File_From_Flow_Js_Is_Accepted()
    {
        var file = TestFile.Random("empty-1", 0, 1_048_576);
        using (var test = await Client.TestChunkAsync(file, 1, ClientKind.FlowMultipart))
            Assert.Equal(HttpStatusCode.NoContent, test.StatusCode);
        await Client.UploadAllAsync(file, ClientKind.FlowMultipart);
        var status = await Client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(UploadClient.Sha256Hex([]), status.GetProperty("sha256").GetString());
        Assert.Empty(await Client.Http.GetByteArrayAsync("/files/empty-1"));
        using var again = await Client.TestChunkAsync(file, 1, ClientKind.FlowMultipart);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
    }
}
