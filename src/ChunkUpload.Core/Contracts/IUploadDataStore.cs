using ChunkUpload.Core.Ranges;
using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Core.Contracts;

/// <summary>
/// Where an upload's bytes live: a staging area that receives request bodies, the upload's data into which staged
/// pieces are committed at their offsets (the assembly), and the finished file that downloads read.
/// </summary>
/// <remarks>
/// Errors: <see cref="IOException"/> for storage faults (a full volume is recognised by <see cref="StorageFaults.IsDiskFull"/>);
/// nothing committed before a fault is lost.
/// </remarks>
public interface IUploadDataStore
{
    /// <summary>
    /// Pieces of <paramref name="upload"/> are cut at multiples of this many bytes of the file: an object store's part
    /// size for that upload, so that a whole piece can be a whole part.
    /// </summary>
    long PieceAlignmentFor(UploadRecord upload);

    /// <summary>
    /// True when committed data can be read before the file is published (a local file can; the parts of an object
    /// store's multipart upload cannot): the engine then hashes as bytes arrive, otherwise it hashes the published file.
    /// </summary>
    bool ReadsBeforePublish { get; }

    /// <summary>
    /// Prepares storage for a new upload (an object store starts its multipart upload and picks its part size) and
    /// returns state for <see cref="UploadRecord.StorageState"/>, which every node then shares through the record.
    /// Nothing is reserved. When the record is not kept (another request created the upload first), the engine calls
    /// <see cref="DiscardPreparedAsync"/> with it.
    /// </summary>
    Task<string?> PrepareAsync(UploadRecord upload, CancellationToken cancellationToken);

    /// <summary>Releases only what <see cref="PrepareAsync"/> made for this record (never the data of an upload with the same key).</summary>
    Task DiscardPreparedAsync(UploadRecord upload, CancellationToken cancellationToken);

    /// <summary>
    /// Prepares the store, removes staging left by an earlier process (never acknowledged) and returns the key hashes
    /// of uploads that have data not yet published (being assembled, or completed just before a crash).
    /// </summary>
    Task<IReadOnlyList<string>> OpenAsync(CancellationToken cancellationToken);

    /// <summary>True when the store holds the data that the journal of a recovered upload describes.</summary>
    Task<bool> HasDataAsync(UploadRecord upload, CancellationToken cancellationToken);

    /// <summary>Starts a piece of <paramref name="upload"/> that will cover bytes from <paramref name="offset"/> on.</summary>
    IStagedPiece Stage(UploadRecord upload, long offset);

    /// <summary>
    /// Writes each commit's bytes into the upload's data at its offset and makes them durable before returning (one
    /// flush for the whole batch: a group commit). After a fault none of them may be acknowledged.
    /// </summary>
    Task CommitAsync(UploadRecord upload, IReadOnlyList<PieceCommit> commits, CancellationToken cancellationToken);

    /// <summary>Opens the upload's committed data for reading before it is published (only when <see cref="ReadsBeforePublish"/>).</summary>
    IDataReader OpenData(UploadRecord upload);

    /// <summary>
    /// Makes the whole finished file of <paramref name="source"/> part of <paramref name="target"/>'s data at an offset,
    /// durably (a local store copies it; an object store may take it at publication, from the finished object).
    /// </summary>
    Task CopyCompletedAsync(UploadRecord source, UploadRecord target, long targetOffset, CancellationToken cancellationToken);

    /// <summary>Makes the complete data the finished file (idempotent: after a crash it runs again).</summary>
    Task PublishAsync(UploadRecord upload, CancellationToken cancellationToken);

    /// <summary>The finished file, or null when the store does not have it.</summary>
    Task<CompletedData?> OpenCompletedAsync(UploadRecord upload, CancellationToken cancellationToken);

    /// <summary>Removes everything of the upload (data, finished file). Idempotent.</summary>
    Task DeleteAsync(UploadRecord upload, CancellationToken cancellationToken);

    /// <summary>Removes staging and orphaned data older than <paramref name="cutoff"/>; <paramref name="isKnown"/> says whether a key hash still has a record.</summary>
    Task<int> SweepAsync(DateTimeOffset cutoff, Func<string, CancellationToken, Task<bool>> isKnown, CancellationToken cancellationToken);
}

/// <summary>Bytes of one request body on their way into an upload: written in order, then sealed.</summary>
public interface IStagedPiece : IDisposable
{
    /// <summary>Offset in the file of the piece's first byte.</summary>
    long Offset { get; }

    /// <summary>Bytes written so far.</summary>
    long Length { get; }

    ValueTask WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken);

    /// <summary>No more bytes will come; the piece may be committed.</summary>
    void Seal();

    /// <summary>
    /// Reads the sealed piece's bytes from <paramref name="position"/> (0 is its first byte); 0 at its end. The engine
    /// hashes committed pieces with it when the store cannot read its data back before publication.
    /// </summary>
    int Read(long position, Span<byte> buffer);
}

/// <summary>Part of a staged piece to write into the upload's data: the piece's bytes of <see cref="Range"/>.</summary>
public readonly record struct PieceCommit(IStagedPiece Piece, ByteRange Range);

/// <summary>Random-access reads of an upload's committed data.</summary>
public interface IDataReader : IDisposable
{
    /// <summary>Reads up to buffer.Length bytes at <paramref name="offset"/>; 0 at the end of the data.</summary>
    int Read(long offset, Span<byte> buffer);
}

/// <summary>
/// A finished file ready to be served: a local path (ranges served by the host), or a stream opener for a byte range,
/// and optionally a URL clients may be redirected to instead (an object store's presigned GET).
/// </summary>
public sealed record CompletedData(long Length, string? PhysicalPath, Func<long, long, CancellationToken, Task<Stream>>? OpenRange = null, Uri? RedirectUrl = null);
