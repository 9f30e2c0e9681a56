using ChunkUpload.Core;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Ranges;

namespace ChunkUpload.Server.Protocol;

/// <summary>
/// How resumable.js and flow.js cut a file (../shared/PROTOCOLS.md 2.2): chunk n (1-based) starts at
/// (n-1)*chunkSize; every chunk but the last is chunkSize long; the last runs to the end of the file. The count is
/// max(floor(size/chunkSize), 1), so the last chunk may be up to 2*chunkSize-1 bytes, or with forceChunkSize
/// max(ceil(size/chunkSize), 1).
/// </summary>
public readonly record struct ChunkGeometry(long TotalSize, long ChunkSize, int TotalChunks)
{
    /// <summary>Builds the geometry a client describes, checking it against itself and the limits.</summary>
    /// <param name="declaredTotalChunks">The client's count, when sent; it selects between the floor and ceil layouts.</param>
    public static ChunkGeometry Create(long totalSize, long chunkSize, int? declaredTotalChunks, UploadOptions limits)
    {
        if (totalSize < 0)
            throw new UploadException(UploadErrors.InvalidParameter, "The total size must not be negative.");
        if (chunkSize < 1)
            throw new UploadException(UploadErrors.InvalidParameter, "The chunk size must be at least 1 byte.");
        if (totalSize > limits.MaxFileSize)
            throw new UploadException(UploadErrors.FileTooLarge,
                $"The file is {totalSize} bytes; this server accepts files up to {limits.MaxFileSize} bytes.");
        if (chunkSize > limits.MaxChunkSize)
            throw new UploadException(UploadErrors.ChunkSizeTooLarge,
                $"The chunk size is {chunkSize} bytes; this server accepts chunks up to {limits.MaxChunkSize} bytes. Use a smaller chunkSize.");

        long floor = Math.Max(totalSize / chunkSize, 1);
        long ceil = Math.Max((totalSize / chunkSize) + (totalSize % chunkSize == 0 ? 0 : 1), 1);
        long count;
        if (declaredTotalChunks is { } declared)
        {
            if (declared != floor && declared != ceil)
                throw new UploadException(UploadErrors.ChunkCountMismatch,
                    $"A file of {totalSize} bytes in chunks of {chunkSize} bytes has {floor} chunks ({ceil} with forceChunkSize), not {declared}.");
            count = declared;
        }
        else
        {
            count = floor;
        }

        if (count > limits.MaxChunksPerFile)
            throw new UploadException(UploadErrors.TooManyChunks,
                $"The file would have {count} chunks; this server accepts at most {limits.MaxChunksPerFile}. Use a larger chunkSize.");
        return new ChunkGeometry(totalSize, chunkSize, (int)count);
    }

    /// <summary>Offset of chunk <paramref name="number"/> in the file.</summary>
    public long OffsetOf(int number) => (number - 1) * ChunkSize;

    /// <summary>Length of chunk <paramref name="number"/>: the last one runs to the end of the file.</summary>
    public long LengthOf(int number) => number == TotalChunks ? TotalSize - OffsetOf(number) : ChunkSize;

    /// <summary>The byte range chunk <paramref name="number"/> covers; throws when the number is outside the file.</summary>
    public ByteRange RangeOf(int number)
    {
        if (number < 1 || number > TotalChunks)
            throw new UploadException(UploadErrors.ChunkOutOfRange,
                $"Chunk {number} does not exist: this file has chunks 1 to {TotalChunks}.");
        return new ByteRange(OffsetOf(number), LengthOf(number));
    }
}
