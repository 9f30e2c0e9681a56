using ChunkUpload.Core.Errors;

namespace ChunkUpload.Server.Protocol;

/// <summary>
/// Wraps a request body (or a multipart section of it) so that a body that breaks off is told apart from a storage
/// fault: the store sees an <see cref="UploadException"/> (400) for a truncated body instead of an IOException that
/// would read as a disk problem (503). A client that disconnected surfaces as cancellation.
/// </summary>
public sealed class RequestBodyStream(Stream inner, CancellationToken requestAborted, UploadError? truncated = null) : ForwardReadStream
{

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







    internal Exception Translate(Exception ex) =>
        requestAborted.IsCancellationRequested
            ? new OperationCanceledException("The client disconnected.", ex, requestAborted)
            : new UploadException(truncated ?? UploadErrors.MalformedMultipart, "The request body ended before the chunk was complete: " + ex.Message, ex);
}
