using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace ChunkUpload.Core.Local;

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

    /// <summary>
    /// Copies a byte range between two files inside the kernel (copy_file_range), without passing the bytes through
    /// user space. Returns false when the system cannot (not Linux, another file system pair): the caller copies.
    /// </summary>
    public static bool TryCopyRange(SafeFileHandle source, long sourceOffset, SafeFileHandle target, long targetOffset, long length)
    {
        if (!OperatingSystem.IsLinux())
            return false;
        bool sourceRef = false, targetRef = false;
        try
        {
            source.DangerousAddRef(ref sourceRef);
            target.DangerousAddRef(ref targetRef);
            int inFd = (int)source.DangerousGetHandle(), outFd = (int)target.DangerousGetHandle();
            long inOff = sourceOffset, outOff = targetOffset, left = length;
            while (left > 0)
            {
                nint copied = CopyFileRange(inFd, ref inOff, outFd, ref outOff, (nuint)Math.Min(left, 1L << 30), 0);
                if (copied < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (left == length && errno is Enosys or Exdev or Einval or Eopnotsupp)
                        return false;
                    throw new IOException($"copy_file_range failed (errno {errno}).", errno);
                }

                if (copied == 0)
                    throw new IOException("The source file ended before the range was copied.");
                left -= copied;
            }

            return true;
        }
        finally
        {
            if (sourceRef)
                source.DangerousRelease();
            if (targetRef)
                target.DangerousRelease();
        }
    }

    private const int Enosys = 38;
    private const int Exdev = 18;
    private const int Einval = 22;
    private const int Eopnotsupp = 95;

    [LibraryImport("libc", EntryPoint = "copy_file_range", SetLastError = true)]
    private static partial nint CopyFileRange(int fdIn, ref long offIn, int fdOut, ref long offOut, nuint length, uint flags);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
