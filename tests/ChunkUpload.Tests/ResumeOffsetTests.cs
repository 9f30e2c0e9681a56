using System.Security.Cryptography;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// The offset a resuming client is told (tus HEAD) while its earlier request is still open on the server, as a
/// request whose connection just dropped is for a moment: the engine ends that request first and answers with
/// everything it stored.
/// </summary>
public sealed class ResumeOffsetTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task FindSettled_Ends_A_Writer_Still_Receiving_And_Reports_What_It_Stored()
    {
        using var harness = new EngineHarness(_dir.StorageRoot, o => o.SegmentSize = 64 * 1024);
        var engine = harness.Engine;
        var caller = EngineHarness.Caller;
        await engine.CreateAsync(caller, new UploadSpec { Id = "settle-1", Protocol = EngineHarness.Protocol, Length = 1024 * 1024, FileName = "settle.bin" }, CancellationToken.None);
        var body = new StallingBody(RandomNumberGenerator.GetBytes(256 * 1024));
        var writer = engine.WriteAsync(caller, "settle-1", 0, body,
            new WriteOptions { Protocol = EngineHarness.Protocol, Append = true, KeepPartial = true }, CancellationToken.None);
        await body.Stalled.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(writer.IsCompleted);

        var settled = await engine.FindSettledAsync(caller, "settle-1", CancellationToken.None);

        Assert.True(writer.IsCompleted, "FindSettledAsync answered while the writer still held the upload");
        var superseded = await Assert.ThrowsAsync<UploadException>(() => writer);
        Assert.Equal(UploadErrors.Superseded.Code, superseded.Error.Code);
        Assert.Equal(256 * 1024, settled!.Offset);
        Assert.Equal(settled.Offset, superseded.Offset);
    }

    /// <summary>A request body that delivers its bytes, then neither ends nor sends more (a vanished client).</summary>
    private sealed class StallingBody(byte[] data) : Stream
    {
        private readonly TaskCompletionSource _stalled = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _position;

        public Task Stalled => _stalled.Task;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position < data.Length)
            {
                int n = Math.Min(buffer.Length, data.Length - _position);
                data.AsSpan(_position, n).CopyTo(buffer.Span);
                _position += n;
                return n;
            }

            _stalled.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
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
