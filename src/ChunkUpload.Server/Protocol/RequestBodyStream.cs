using ChunkUpload.Core.Errors;

namespace ChunkUpload.Server.Protocol;

/// <summary>
/// Wraps a request body (or a multipart section of it) so that a body that breaks off is told apart from a storage
/// fault: the store sees an <see cref="UploadException"/> (400) for a truncated body instead of an IOException that
/// would read as a disk problem (503). A client that disconnected surfaces as cancellation.
/// </summary>
public sealed class RequestBodyStream(Stream inner, CancellationToken requestAborted, UploadError? truncated = null) : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            return await inner.ReadAsync(buffer, cancellationToken);
        }
        catch (IOException ex) when (ex is not BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge })
        {
            // BadHttpRequestException is an IOException too (a body that ends early); only "too large" passes through.
            throw Translate(ex);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("Read the request body asynchronously.");

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    internal Exception Translate(Exception ex) =>
        requestAborted.IsCancellationRequested
            ? new OperationCanceledException("The client disconnected.", ex, requestAborted)
            : new UploadException(truncated ?? UploadErrors.MalformedMultipart, "The request body ended before the chunk was complete: " + ex.Message, ex);
}
