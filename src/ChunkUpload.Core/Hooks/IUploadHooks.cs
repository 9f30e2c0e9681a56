using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Core.Hooks;

/// <summary>
/// What the engine tells the world, kept out of the stores: whether an upload may start and whether a finished file
/// may be kept (the authorization callback), and what happened (metrics, the webhook's wake-up). Authorization
/// throws <see cref="Errors.UploadException"/> to refuse (permanent) or to ask for a retry (transient).
/// </summary>
/// <remarks>
/// The notifications (everything but the two authorizations) are facts the engine reports after the fact; an
/// exception from one is logged by the engine and never changes the upload's outcome.
/// </remarks>
public interface IUploadHooks
{
    Task AuthorizeStartAsync(UploadRecord upload, CancellationToken cancellationToken);

    Task AuthorizeFinishAsync(UploadRecord upload, string sha256, CancellationToken cancellationToken);

    /// <summary>The upload is durably complete (its event, if any, is in the outbox).</summary>
    void Completed(UploadRecord upload);

    /// <summary>See <see cref="IUploadObserver.Started"/>.</summary>
    void Started(UploadRecord upload);

    /// <summary>See <see cref="IUploadObserver.BatchStored"/>.</summary>
    void BatchStored(UploadRecord upload, int pieces, long bytes, TimeSpan duration);

    /// <summary>See <see cref="IUploadObserver.WriteAcknowledged"/>.</summary>
    void WriteAcknowledged(UploadRecord upload, long bytes, TimeSpan afterBody);

    /// <summary>See <see cref="IUploadObserver.CompletionTimed"/>.</summary>
    void CompletionTimed(UploadRecord upload, TimeSpan sinceAllStored);

    /// <summary>See <see cref="IUploadObserver.Failed"/>.</summary>
    void Failed(UploadRecord upload, string reason);

    /// <summary>See <see cref="IUploadObserver.Deleted"/>.</summary>
    void Deleted(UploadRecord upload, DeletionReason reason);
}

/// <summary>The hooks as configured: the optional authorization callback, and observers of what happens.</summary>
public sealed class UploadHooks(IUploadAuthorizer? authorizer = null, IEnumerable<IUploadObserver>? observers = null) : IUploadHooks
{
    private readonly IUploadObserver[] _observers = [.. observers ?? []];

    public Task AuthorizeStartAsync(UploadRecord upload, CancellationToken cancellationToken) =>
        authorizer?.AuthorizeAsync(new UploadAuthorization(UploadEvent.Start, upload.Owner, upload.Id, upload.FileName, upload.Length ?? 0, null), cancellationToken)
        ?? Task.CompletedTask;

    public Task AuthorizeFinishAsync(UploadRecord upload, string sha256, CancellationToken cancellationToken) =>
        authorizer?.AuthorizeAsync(new UploadAuthorization(UploadEvent.Complete, upload.Owner, upload.Id, upload.FileName, upload.Length ?? 0, sha256), cancellationToken)
        ?? Task.CompletedTask;

    public void Completed(UploadRecord upload)
    {
        foreach (var observer in _observers)
            observer.Completed(upload);
    }

    public void Started(UploadRecord upload)
    {
        foreach (var observer in _observers)
            observer.Started(upload);
    }

    public void BatchStored(UploadRecord upload, int pieces, long bytes, TimeSpan duration)
    {
        foreach (var observer in _observers)
            observer.BatchStored(upload, pieces, bytes, duration);
    }

    public void WriteAcknowledged(UploadRecord upload, long bytes, TimeSpan afterBody)
    {
        foreach (var observer in _observers)
            observer.WriteAcknowledged(upload, bytes, afterBody);
    }

    public void CompletionTimed(UploadRecord upload, TimeSpan sinceAllStored)
    {
        foreach (var observer in _observers)
            observer.CompletionTimed(upload, sinceAllStored);
    }

    public void Failed(UploadRecord upload, string reason)
    {
        foreach (var observer in _observers)
            observer.Failed(upload, reason);
    }

    public void Deleted(UploadRecord upload, DeletionReason reason)
    {
        foreach (var observer in _observers)
            observer.Deleted(upload, reason);
    }
}

/// <summary>
/// Something that wants to know what the engine does (the webhook's wake-up, metrics). Called inline on the engine's
/// paths, so an implementation must be quick; an exception is logged and ignored. Only <see cref="Completed"/> must be
/// implemented.
/// </summary>
public interface IUploadObserver
{
    void Completed(UploadRecord upload);

    /// <summary>A new upload was recorded.</summary>
    void Started(UploadRecord upload)
    {
    }

    /// <summary>
    /// The assembler committed a batch for the upload: <paramref name="pieces"/> staged pieces, of which
    /// <paramref name="bytes"/> bytes were new, are durable and journaled; committing and journaling took
    /// <paramref name="duration"/>.
    /// </summary>
    void BatchStored(UploadRecord upload, int pieces, long bytes, TimeSpan duration)
    {
    }

    /// <summary>
    /// A write request's <paramref name="bytes"/> bytes were acknowledged as durable, <paramref name="afterBody"/> after
    /// its body ended (the wait for the assembler's group commit).
    /// </summary>
    void WriteAcknowledged(UploadRecord upload, long bytes, TimeSpan afterBody)
    {
    }

    /// <summary>The upload completed <paramref name="sinceAllStored"/> after its last byte was stored (hash, checks, publication).</summary>
    void CompletionTimed(UploadRecord upload, TimeSpan sinceAllStored)
    {
    }

    /// <summary>The upload failed for good (a checksum mismatch, a refused file, a lost part).</summary>
    void Failed(UploadRecord upload, string reason)
    {
    }

    /// <summary>The upload and its data were removed.</summary>
    void Deleted(UploadRecord upload, DeletionReason reason)
    {
    }
}

/// <summary>Why an upload was removed.</summary>
public enum DeletionReason
{
    /// <summary>A client asked (DELETE, tus termination, a cancelled page upload).</summary>
    Request,

    /// <summary>The sweeper removed an unfinished upload that stayed idle too long.</summary>
    Expired,

    /// <summary>The sweeper removed a completed file past <see cref="UploadOptions.CompletedRetention"/>.</summary>
    Retention,
}
