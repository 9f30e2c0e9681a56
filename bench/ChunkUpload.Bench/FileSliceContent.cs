using System.Buffers;
using System.Net;
using Microsoft.Win32.SafeHandles;

namespace ChunkUpload.Bench;

/// <summary>
/// A byte range of a file as a request body: streamed with positional reads into one pooled buffer,
/// never the whole slice in memory. Content-Length is known, so no chunked transfer encoding.
/// </summary>
internal sealed class FileSliceContent : HttpContent
{
    private const int BufferSize = 256 * 1024;

    private readonly SafeFileHandle _file;
    private readonly long _offset;
    private readonly long _length;

    public FileSliceContent(SafeFileHandle file, long offset, long length)
    {
        _file = file;
        _offset = offset;
        _length = length;
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(BufferSize, Math.Max(_length, 1)));
        try
        {
            for (long done = 0; done < _length;)
            {
                var want = (int)Math.Min(buffer.Length, _length - done);

                // The source file sits in the page cache: a synchronous pread is a memcpy, cheaper than a thread-pool hop.
                var read = RandomAccess.Read(_file, buffer.AsSpan(0, want), _offset + done);
                if (read <= 0)
                {
                    throw new EndOfStreamException($"source file ended at {_offset + done}");
                }

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
