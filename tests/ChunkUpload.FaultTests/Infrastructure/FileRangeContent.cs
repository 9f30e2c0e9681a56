using System.Buffers;
using System.Net;
using Microsoft.Win32.SafeHandles;

namespace ChunkUpload.FaultTests.Infrastructure;

/// <summary>A byte range of a file on disk as request content, streamed with a pooled buffer (no chunk-sized arrays).</summary>
public sealed class FileRangeContent : HttpContent
{
    private const int BufferSize = 256 * 1024;
    private readonly SafeFileHandle _file;
    private readonly long _offset;
    private readonly long _length;

    public FileRangeContent(SafeFileHandle file, long offset, long length)
    {
        _file = file;
        _offset = offset;
        _length = length;
        Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            long done = 0;
            while (done < _length)
            {
                int want = (int)Math.Min(BufferSize, _length - done);
                int read = await RandomAccess.ReadAsync(_file, buffer.AsMemory(0, want), _offset + done, cancellationToken);
                if (read == 0)
                    throw new EndOfStreamException("The source file is shorter than the chunk.");
                await stream.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                done += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = _length;
        return true;
    }
}
