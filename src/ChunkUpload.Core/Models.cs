namespace ChunkUpload.Core;

/// <summary>One chunk as a chunk-numbering protocol (resumable.js, flow.js) describes it. Every field is client input.</summary>
public sealed record ChunkDescriptor
{
    public required string Identifier { get; init; }
    public required string FileName { get; init; }
    public string? RelativePath { get; init; }
    public string? ContentType { get; init; }
    public required long TotalSize { get; init; }
    public required long ChunkSize { get; init; }
    public required int ChunkNumber { get; init; }

    /// <summary>The client's statement of this chunk's length; checked against the geometry when present.</summary>
    public long? CurrentChunkSize { get; init; }

    /// <summary>The client's chunk count; chooses between the floor and forceChunkSize layouts when present.</summary>
    public int? TotalChunks { get; init; }
}

/// <summary>The answer to a stored chunk (also to one that was already stored and whose body was discarded).</summary>
public sealed record ChunkReceipt(string Identifier, int ChunkNumber, int ReceivedChunks, int TotalChunks, string State);

/// <summary>What the server knows about one upload.</summary>
public sealed record UploadStatus(
    string Identifier,
    string FileName,
    string? RelativePath,
    long TotalSize,
    long ChunkSize,
    int TotalChunks,
    int ReceivedChunks,
    IReadOnlyList<int> MissingChunks,
    string State,
    string? Sha256,
    DateTimeOffset CreatedAt,
    DateTimeOffset? CompletedAt);

/// <summary>A finished file ready to be served.</summary>
public sealed record CompletedFile(string Path, string FileName, long Length, string Sha256);

/// <summary>Upload states as they appear on the wire.</summary>
public static class UploadStates
{
    public const string Receiving = "receiving";
    public const string Assembling = "assembling";
    public const string Complete = "complete";
    public const string Failed = "failed";
}

/// <summary>What one sweep removed.</summary>
public sealed record SweepResult(int ExpiredUploads, int RetiredFiles, int OrphanedFiles)
{
    public int Total => ExpiredUploads + RetiredFiles + OrphanedFiles;
}
