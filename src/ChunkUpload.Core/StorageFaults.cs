using ChunkUpload.Core.Local;

namespace ChunkUpload.Core;

/// <summary>Classifies storage exceptions for the layers above.</summary>
public static class StorageFaults
{
    /// <summary>True when the exception reports a full volume or an exhausted quota.</summary>
    public static bool IsDiskFull(IOException exception) => NativeFileSystem.IsDiskFull(exception);

    /// <summary>
    /// True for faults a retry can fix: the disk (IOException, access denied) or a store that does not answer now (a
    /// database: DbException; an object store wraps its faults as IOException). Clients get 503 with Retry-After.
    /// </summary>
    public static bool IsTransient(Exception exception) =>
        exception is IOException or UnauthorizedAccessException or System.Data.Common.DbException or TimeoutException;
}
