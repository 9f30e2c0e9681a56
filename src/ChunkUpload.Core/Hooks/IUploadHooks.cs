using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Core.Hooks;

/// <summary>
/// What the engine tells the world, kept out of the stores: whether an upload may start and whether a finished file
/// may be kept (the authorization callback), and what happened (metrics, the webhook's wake-up). Authorization
/// throws <see cref="Errors.UploadException"/> to refuse (permanent) or to ask for a retry (transient).
/// </summary>
public interface IUploadHooks
{
    Task AuthorizeStartAsync(UploadRecord upload, CancellationToken cancellationToken);

    Task AuthorizeFinishAsync(UploadRecord upload, string sha256, CancellationToken cancellationToken);

    /// <summary>The upload is durably complete (its event, if any, is in the outbox).</summary>
    void Completed(UploadRecord upload);
}

/// <summary>The hooks as configured: the optional authorization callback, and observers of completions.</summary>
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
}

/// <summary>Something that wants to know when uploads complete (the webhook's wake-up, metrics).</summary>
public interface IUploadObserver
{
    void Completed(UploadRecord upload);
}
