using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>
/// Watches request bodies on the server side, for requests tagged with <see cref="Header"/>: how many bytes the server
/// has read, and when it has finished with the request. Lets a test break a body at a known point and look at the
/// result only after the server is done, without sleeping.
/// </summary>
public sealed class BodyObserver : IStartupFilter
{
    public const string Header = "X-Test-Watch";
    private readonly ConcurrentDictionary<string, WatchedRequest> _watched = new(StringComparer.Ordinal);

    /// <summary>Watches the request tagged <paramref name="tag"/>; <see cref="WatchedRequest.Read"/> completes once it has read <paramref name="bytes"/>.</summary>
    public WatchedRequest Watch(string tag, long bytes)
    {
        var watched = new WatchedRequest(bytes);
        Assert.True(_watched.TryAdd(tag, watched), $"{tag} is watched already.");
        return watched;
    }

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(async (context, nextMiddleware) =>
        {
            if (!context.Request.Headers.TryGetValue(Header, out var tag) || !_watched.TryGetValue(tag.ToString(), out var watched))
            {
                await nextMiddleware(context);
                return;
            }

            context.Request.Body = new CountingStream(context.Request.Body, watched);
            try
            {
                await nextMiddleware(context);
            }
            finally
            {
                watched.Done();
            }
        });
        next(app);
    };

    public sealed class WatchedRequest(long threshold)
    {
        private readonly TaskCompletionSource _read = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private long _bytes;

        /// <summary>Completes when the server has read the threshold (fails the test after 30 s).</summary>
        public Task Read => _read.Task.WaitAsync(TimeSpan.FromSeconds(30));

        /// <summary>Completes when the server's pipeline has finished with the request (fails the test after 30 s).</summary>
        public Task Finished => _finished.Task.WaitAsync(TimeSpan.FromSeconds(30));

        public long Bytes => Interlocked.Read(ref _bytes);

        internal void Add(int count)
        {
            if (Interlocked.Add(ref _bytes, count) >= threshold)
                _read.TrySetResult();
        }

        internal void Done()
        {
            _read.TrySetResult();
            _finished.TrySetResult();
        }
    }

    private sealed class CountingStream(Stream inner, WatchedRequest watched) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int read = await inner.ReadAsync(buffer, cancellationToken);
            watched.Add(read);
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
