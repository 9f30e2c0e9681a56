using System.Threading.Channels;

namespace ChunkUpload.Core.Storage;

/// <summary>Sessions with stored chunks waiting to be written into their file. Each session is queued at most once at a time.</summary>
public sealed class AssemblyQueue
{
    private readonly Channel<UploadSession> _channel = Channel.CreateUnbounded<UploadSession>(
        new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });

    internal void Enqueue(UploadSession session)
    {
        if (Interlocked.Exchange(ref session.Queued, 1) == 0)
            _channel.Writer.TryWrite(session);
    }

    internal async ValueTask<UploadSession> DequeueAsync(CancellationToken cancellationToken)
    {
        var session = await _channel.Reader.ReadAsync(cancellationToken);
        Volatile.Write(ref session.Queued, 0);
        return session;
    }
}
