using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>A data store that passes every call to another; fault-injecting test stores override what they break.</summary>
public abstract class DelegatingDataStore(IUploadDataStore inner) : IUploadDataStore
{
    protected IUploadDataStore Inner { get; } = inner;

    public virtual bool ReadsBeforePublish => Inner.ReadsBeforePublish;

    public virtual long PieceAlignmentFor(UploadRecord upload) => Inner.PieceAlignmentFor(upload);

    public virtual Task<IReadOnlyList<string>> OpenAsync(CancellationToken cancellationToken) => Inner.OpenAsync(cancellationToken);

    public virtual Task<bool> HasDataAsync(UploadRecord upload, CancellationToken cancellationToken) => Inner.HasDataAsync(upload, cancellationToken);

    public virtual Task<string?> PrepareAsync(UploadRecord upload, CancellationToken cancellationToken) => Inner.PrepareAsync(upload, cancellationToken);

    public virtual Task DiscardPreparedAsync(UploadRecord upload, CancellationToken cancellationToken) => Inner.DiscardPreparedAsync(upload, cancellationToken);

    public virtual IStagedPiece Stage(UploadRecord upload, long offset) => Inner.Stage(upload, offset);

    public virtual Task CommitAsync(UploadRecord upload, IReadOnlyList<PieceCommit> commits, CancellationToken cancellationToken) =>
        Inner.CommitAsync(upload, commits, cancellationToken);

    public virtual IDataReader OpenData(UploadRecord upload) => Inner.OpenData(upload);

    public virtual Task CopyCompletedAsync(UploadRecord source, UploadRecord target, long targetOffset, CancellationToken cancellationToken) =>
        Inner.CopyCompletedAsync(source, target, targetOffset, cancellationToken);

    public virtual Task PublishAsync(UploadRecord upload, CancellationToken cancellationToken) => Inner.PublishAsync(upload, cancellationToken);

    public virtual Task<CompletedData?> OpenCompletedAsync(UploadRecord upload, CancellationToken cancellationToken) =>
        Inner.OpenCompletedAsync(upload, cancellationToken);

    public virtual Task DeleteAsync(UploadRecord upload, CancellationToken cancellationToken) => Inner.DeleteAsync(upload, cancellationToken);

    public virtual Task<int> SweepAsync(DateTimeOffset cutoff, Func<string, CancellationToken, Task<bool>> isKnown, CancellationToken cancellationToken) =>
        Inner.SweepAsync(cutoff, isKnown, cancellationToken);
}
