using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Core.Engine;

/// <summary>
/// The engine's rules for client values and for room: ids, names and lengths are checked before anything touches a
/// store; bytes are accepted only while the disk keeps its free-space floor and the client stays within what it may
/// hold in unfinished uploads. Declaring a length reserves nothing.
/// </summary>
internal sealed class UploadPolicy(UploadOptions options, IUploadMetadataStore metadata, string root)
{
    private const int MaxPropertiesChars = 64 * 1024;

    public UploadOptions Options => options;

    public void ValidateId(string id)
    {
        if (string.IsNullOrEmpty(id))
            throw new UploadException(UploadErrors.InvalidIdentifier, "The identifier is empty.");
        if (id.Length > options.MaxIdentifierLength)
            throw new UploadException(UploadErrors.InvalidIdentifier,
                $"The identifier is {id.Length} characters long; at most {options.MaxIdentifierLength} are accepted.");
        if (HasControlOrBrokenText(id))
            throw new UploadException(UploadErrors.InvalidIdentifier,
                "The identifier contains control characters (such as NUL) or broken Unicode.");
    }

    public void ValidateName(string? value, string what, bool required, int? maxLength = null)
    {
        if (string.IsNullOrEmpty(value))
        {
            if (required)
                throw new UploadException(UploadErrors.InvalidFileName, $"The {what} is empty.");
            return;
        }

        int max = maxLength ?? options.MaxFileNameLength;
        if (value.Length > max)
            throw new UploadException(UploadErrors.InvalidFileName,
                $"The {what} is {value.Length} characters long; at most {max} are accepted.");
        if (HasControlOrBrokenText(value))
            throw new UploadException(UploadErrors.InvalidFileName,
                $"The {what} contains control characters (such as NUL) or broken Unicode.");
    }

    /// <summary>The largest file the caller may send: the server's limit, or less when the caller's credentials say so.</summary>
    public long MaxLengthFor(Caller caller) => caller.MaxFileSize is { } max ? Math.Min(max, options.MaxFileSize) : options.MaxFileSize;

    public void ValidateLength(long length, Caller caller)
    {
        if (length < 0)
            throw new UploadException(UploadErrors.InvalidParameter, "The length must not be negative.");
        if (length > options.MaxFileSize)
            throw new UploadException(UploadErrors.FileTooLarge,
                $"The file is {length} bytes; this server accepts files up to {options.MaxFileSize} bytes.");
        if (caller.MaxFileSize is { } max && length > max)
            throw new UploadException(UploadErrors.QuotaExceeded,
                $"The file is {length} bytes; your upload token allows files up to {max} bytes.");
    }

    public void ValidateSpec(UploadSpec spec, Caller caller)
    {
        if (spec.Id is not null)
            ValidateId(spec.Id);
        ValidateName(spec.FileName, "file name", required: false);
        ValidateName(spec.RelativePath, "relative path", required: false, options.MaxRelativePathLength);
        if (spec.Length is { } length)
            ValidateLength(length, caller);
        if (spec.Properties is { } properties && properties.Sum(p => (long)p.Key.Length + p.Value.Length) > MaxPropertiesChars)
            throw new UploadException(UploadErrors.InvalidParameter, $"The upload's metadata is larger than {MaxPropertiesChars} characters.");
    }

    /// <summary>The content type when it is plain text of sane length; otherwise none (it is never trusted anyway).</summary>
    public static string? CleanContentType(string? type) =>
        string.IsNullOrEmpty(type) || type.Length > 255 || HasControlOrBrokenText(type) ? null : type;

    /// <summary>Refuses (507) when <paramref name="bytes"/> more would cross the free-space floor.</summary>
    public void EnsureFreeSpace(long bytes, string what)
    {
        long available;
        try
        {
            available = new DriveInfo(root).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return; // unknown: let the write itself report a full disk
        }

        if (available - bytes < options.MinFreeSpace)
            throw new UploadException(UploadErrors.InsufficientStorage,
                $"The server's disk cannot take {what} now. Try again later.")
            { RetryAfterSeconds = 300 };
    }

    /// <summary>
    /// Refuses <paramref name="bytes"/> more when the client would hold more than it may in unfinished uploads (507:
    /// finishing them makes room) or in files, finished and unfinished together (403: only deleting files does).
    /// </summary>
    public async Task EnsureClientRoomAsync(string client, long bytes, CancellationToken cancellationToken)
    {
        var usage = await metadata.GetUsageAsync(client, cancellationToken);
        if (usage.UnfinishedBytes + bytes > options.MaxUnfinishedBytesPerClient)
            throw new UploadException(UploadErrors.StorageQuotaExceeded,
                $"You hold {usage.UnfinishedBytes} bytes in unfinished uploads and may hold {options.MaxUnfinishedBytesPerClient}; finish or delete some uploads first.")
            { RetryAfterSeconds = 60 };
        EnsureFileRoom(usage, bytes, "these bytes");
    }

    /// <summary>Refuses (403) a new file of <paramref name="length"/> bytes that would take the client past what it may keep in files.</summary>
    public async Task EnsureFileRoomAsync(string client, long length, CancellationToken cancellationToken) =>
        EnsureFileRoom(await metadata.GetUsageAsync(client, cancellationToken), length, $"a file of {length} bytes");

    private void EnsureFileRoom(ClientUsage usage, long bytes, string what)
    {
        long kept = usage.CompletedBytes + usage.UnfinishedBytes;
        if (bytes > options.MaxCompletedBytesPerClient - kept)
            throw new UploadException(UploadErrors.CompletedBytesQuotaExceeded,
                $"You keep {usage.CompletedBytes} bytes in finished files and {usage.UnfinishedBytes} in unfinished uploads, and may keep {options.MaxCompletedBytesPerClient} in all; " +
                $"{what} would not fit. Delete some files first.");
    }

    public static bool HasControlOrBrokenText(string value)
    {
        for (int i = 0; i < value.Length; i++)
        {
            char c = value[i];
            if (char.IsControl(c))
                return true;
            if (char.IsHighSurrogate(c))
            {
                if (i + 1 >= value.Length || !char.IsLowSurrogate(value[i + 1]))
                    return true;
                i++;
            }
            else if (char.IsLowSurrogate(c))
            {
                return true;
            }
        }

        return false;
    }
}
