using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Core.Contracts;

/// <summary>
/// The per-upload lock a sequential writer (a tus PATCH, an append) holds for its whole request, and a delete for
/// its moment. A new request does not queue behind an old one: acquiring asks the current holder to let go (its
/// <see cref="IUploadLock.ReleaseRequested"/> fires; it keeps the bytes that arrived and releases), which is what
/// clients resuming after a dropped connection need. A lock dies with its holder.
/// </summary>
public interface IUploadLockProvider
{
    /// <summary>The lock, or null when the holder did not let go within <paramref name="wait"/>.</summary>
    Task<IUploadLock?> AcquireAsync(UploadKey key, TimeSpan wait, CancellationToken cancellationToken);
}

public interface IUploadLock : IAsyncDisposable
{
    /// <summary>Fires when another request wants the upload; the holder should finish what it has and release.</summary>
    CancellationToken ReleaseRequested { get; }
}
