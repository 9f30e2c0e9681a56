using System.Buffers;
using System.Runtime.InteropServices;
using ChunkUpload.Core;
using ChunkUpload.Core.Local;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Server.Hosting;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Tests;

/// <summary>
/// The receive path's two economies: Kestrel receives into 64 KiB blocks, and local staging files are reused (their
/// pages stay cached) without a reused file ever lending a piece bytes it did not receive.
/// </summary>
public sealed class ReceivePathTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void The_Server_Gives_Kestrel_A_Pool_Of_64_KiB_Blocks_That_Reuses_What_Is_Returned()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot);
        using var pool = app.Services.GetRequiredService<IMemoryPoolFactory<byte>>().Create();
        Assert.Equal(ReceiveBufferPool.BlockSize, pool.MaxBufferSize);

        var first = pool.Rent(2048);
        Assert.Equal(64 * 1024, first.Memory.Length);
        Assert.True(MemoryMarshal.TryGetArray<byte>(first.Memory, out var firstArray));
        first.Dispose();
        first.Dispose(); // a second dispose returns nothing twice
        using var second = pool.Rent();
        using var third = pool.Rent();
        Assert.True(MemoryMarshal.TryGetArray<byte>(second.Memory, out var secondArray));
        Assert.True(MemoryMarshal.TryGetArray<byte>(third.Memory, out var thirdArray));
        Assert.Same(firstArray.Array, secondArray.Array);
        Assert.NotSame(secondArray.Array, thirdArray.Array);
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(ReceiveBufferPool.BlockSize + 1));
    }

    [Fact]
    public async Task A_Reused_Staging_File_Gives_Each_Piece_Only_Its_Own_Bytes_And_Spare_Files_Stay_Bounded()
    {
        var options = new UploadOptions { StorageRoot = _dir.StorageRoot, SegmentSize = 1024 * 1024 };
        var layout = new LocalLayout(options.ResolveStorageRoot());
        using var store = new LocalDataStore(layout, Options.Create(options));
        await store.OpenAsync(CancellationToken.None);
        var record = new UploadRecord { Owner = "o", Id = "reuse", Protocol = "test", Length = 4 * 1024 * 1024 };

        // A long piece, then a short one in the same (reused) file: reading the short one ends at its own length.
        using (var longPiece = store.Stage(record, 0))
            await longPiece.WriteAsync(Enumerable.Repeat((byte)0xAA, 1024 * 1024).ToArray(), CancellationToken.None);
        Assert.Single(Directory.GetFiles(layout.SpareStaging));
        using (var shortPiece = store.Stage(record, 0))
        {
            await shortPiece.WriteAsync(Enumerable.Repeat((byte)0x55, 100).ToArray(), CancellationToken.None);
            Assert.Single(Directory.GetFiles(layout.SpareStaging)); // the spare file was taken: no new file
            Assert.Empty(Directory.GetFiles(layout.Temp));
            var buffer = new byte[4096];
            Assert.Equal(100, shortPiece.Read(0, buffer));
            Assert.All(buffer[..100], b => Assert.Equal(0x55, b));
            Assert.Equal(0, shortPiece.Read(100, buffer));
        }

        // Many pieces at once: what comes back is kept up to 64 MiB of spare files (64 here), the rest deleted.
        var many = new List<ChunkUpload.Core.Contracts.IStagedPiece>();
        for (int i = 0; i < 80; i++)
        {
            var piece = store.Stage(record, 0);
            await piece.WriteAsync(new byte[1], CancellationToken.None);
            many.Add(piece);
        }

        foreach (var piece in many)
            piece.Dispose();
        Assert.Equal(64, Directory.GetFiles(layout.SpareStaging).Length);
        Assert.Empty(Directory.GetFiles(layout.Temp));
        store.Dispose();
        Assert.Empty(Directory.GetFiles(layout.SpareStaging));
    }
}
