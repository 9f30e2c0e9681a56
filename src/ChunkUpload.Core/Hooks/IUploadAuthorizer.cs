namespace ChunkUpload.Core.Hooks;

/// <summary>
/// Asks the application that owns the users whether an upload may start, and whether a finished one may be kept.
/// Throws <see cref="Errors.UploadException"/>: <c>upload_refused</c> (403) to refuse, a transient error (503) when
/// the answer cannot be had now.
/// </summary>
public interface IUploadAuthorizer
{
    Task AuthorizeAsync(UploadAuthorization request, CancellationToken cancellationToken);
}

public enum UploadEvent
{
    Start,
    Complete,
}

public sealed record UploadAuthorization(UploadEvent Event, string Owner, string Identifier, string FileName, long TotalSize, string? Sha256);
