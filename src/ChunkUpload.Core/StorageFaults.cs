using ChunkUpload.Core.Local;

namespace ChunkUpload.Core;

/// <summary>Classifies storage exceptions for the layers above.</summary>
public static class StorageFaults
{
    /// <summary>True when the exception reports a full volume or an exhausted quota.</summary>
    public static bool IsDiskFull(IOException exception) => NativeFileSystem.IsDiskFull(exception);
}
