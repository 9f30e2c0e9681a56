using System.Runtime.InteropServices;

namespace ChunkUpload.Core.Storage;

/// <summary>
/// The few file-system operations .NET does not expose: flushing a directory, so that a rename or a new file in
/// it survives a crash of the machine, and telling a full disk from other I/O errors.
/// </summary>
internal static partial class NativeFileSystem
{
    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000; // Linux
    private const int Enospc = 28;
    private const int Edquot = 122;

    public static void FlushDirectory(string path)
    {
        if (!OperatingSystem.IsLinux())
            return;
        int fd = Open(path, ORdOnly | ODirectory);
        if (fd < 0)
            throw new IOException($"Cannot open directory '{path}' to flush it (errno {Marshal.GetLastPInvokeError()}).");
        try
        {
            if (Fsync(fd) != 0)
                throw new IOException($"Cannot flush directory '{path}' (errno {Marshal.GetLastPInvokeError()}).");
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>True when <paramref name="exception"/> reports that the volume or the user's quota is full.</summary>
    public static bool IsDiskFull(IOException exception)
    {
        int code = exception.HResult & 0xFFFF;
        return code is Enospc or Edquot or 0x70 /* ERROR_DISK_FULL */ or 0x27 /* ERROR_HANDLE_DISK_FULL */
            || exception.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase);
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
