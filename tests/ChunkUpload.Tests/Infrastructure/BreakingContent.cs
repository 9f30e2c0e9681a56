using System.Net;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>
/// A request body that sends its first <c>breakAfter</c> bytes, then stalls until the test calls <see cref="Break"/>
/// and fails. Content-Length announces the whole body. (In-process, the server learns of the break through the
/// request being aborted: see <see cref="ProtocolServer.SendBrokenAsync"/>.)
/// </summary>
public sealed class BreakingContent(ReadOnlyMemory<byte> data, int breakAfter) : HttpContent
{
    private readonly TaskCompletionSource _broken = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Break() => _broken.TrySetResult();

    /// <summary>Whether <see cref="Break"/> was called (until then the body stays stalled after its first bytes).</summary>
    public bool IsBroken => _broken.Task.IsCompleted;

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        await stream.WriteAsync(data[..breakAfter]);
        await stream.FlushAsync();
        await _broken.Task;
        throw new IOException("The connection broke (test).");
    }

    protected override bool TryComputeLength(out long length)
    {
        length = data.Length;
        return true;
    }
}
