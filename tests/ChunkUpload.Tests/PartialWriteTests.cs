using ChunkUpload.Core.Engine;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>The engine's streaming writes (KeepPartial): a body that breaks off keeps every byte that arrived.</summary>
public sealed class PartialWriteTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(1)]
    [InlineData(123_457)] // inside the first read buffer
    [InlineData(262_144)] // exactly one buffer
    [InlineData(1_048_577)] // one byte into a buffer after whole pieces
    public async Task A_Body_That_Breaks_Off_Keeps_Exactly_The_Bytes_That_Arrived(int arrived)
    {
        using var harness = new EngineHarness(_dir.StorageRoot + "-" + arrived);
        var data = UploadClient.RandomBytes(1_500_000, arrived);
        var caller = EngineHarness.Caller;
        await harness.Engine.CreateAsync(caller, new() { Id = "partial", Protocol = EngineHarness.Protocol, Length = data.Length }, CancellationToken.None);
        var options = new WriteOptions { Protocol = EngineHarness.Protocol, Append = true, KeepPartial = true, ExpectedLength = data.Length };

        await Assert.ThrowsAsync<IOException>(() => harness.Engine.WriteAsync(caller, "partial", 0, new BreakingStream(data, arrived), options, CancellationToken.None));

        var snapshot = (await harness.Engine.FindAsync(caller, "partial", CancellationToken.None))!;
        Assert.Equal(arrived, snapshot.Offset);
        await harness.Engine.WriteAsync(caller, "partial", arrived, new MemoryStream(data[arrived..]), options with { ExpectedLength = data.Length - arrived }, CancellationToken.None);
        var complete = await harness.Engine.WaitForCompletionAsync(caller, "partial", TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.Equal(UploadClient.Sha256Hex(data), complete!.Record.Sha256);
    }

    /// <summary>Hands out its first bytes in small reads, then fails as a dropped connection does.</summary>
    private sealed class BreakingStream(byte[] data, int breakAt) : Stream
    {
        private int _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position >= breakAt)
                throw new IOException("The connection broke (test).");
            int n = Math.Min(Math.Min(buffer.Length, 10_000), breakAt - _position);
            data.AsMemory(_position, n).CopyTo(buffer);
            _position += n;
            return ValueTask.FromResult(n);
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
