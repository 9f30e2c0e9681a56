using Microsoft.Extensions.Logging;

namespace ChunkUpload.Core;

internal static partial class CoreLog
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Upload {Identifier} started: {FileName}, {TotalSize} bytes in {TotalChunks} chunks")]
    public static partial void SessionStarted(ILogger logger, string identifier, string fileName, long totalSize, int totalChunks);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Chunk {ChunkNumber} of upload {Identifier} stored ({Length} bytes, {Received}/{TotalChunks})")]
    public static partial void ChunkStored(ILogger logger, string identifier, int chunkNumber, long length, int received, int totalChunks);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Debug, Message = "Chunk {ChunkNumber} of upload {Identifier} was already stored; body discarded")]
    public static partial void ChunkDuplicate(ILogger logger, string identifier, int chunkNumber);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Information, Message = "Upload {Identifier} assembled: {FileName}, {TotalSize} bytes, sha256 {Sha256}")]
    public static partial void UploadAssembled(ILogger logger, string identifier, string fileName, long totalSize, string sha256);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Upload {Identifier} deleted")]
    public static partial void UploadDeleted(ILogger logger, string identifier);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Information, Message = "Storage opened at {Root}: {Sessions} sessions, {Pending} to assemble, {TempFiles} abandoned temp files removed")]
    public static partial void StorageOpened(ILogger logger, string root, int sessions, int pending, int tempFiles);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Warning, Message = "Session folder {Directory} could not be loaded; left untouched")]
    public static partial void SessionUnreadable(ILogger logger, Exception exception, string directory);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Warning, Message = "Stored piece {Path} of upload {Identifier} is missing or damaged; the client will be asked for it again")]
    public static partial void PieceLost(ILogger logger, string identifier, string path);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Error, Message = "Upload {Identifier} failed: {Reason}")]
    public static partial void UploadFailed(ILogger logger, string identifier, string reason);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Information, Message = "Sweep removed {Expired} idle uploads, {Retired} completed files past retention, {Orphans} orphaned files")]
    public static partial void Swept(ILogger logger, int expired, int retired, int orphans);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Information, Message = "Upload {Identifier} recovered after restart: completed file moved into place")]
    public static partial void CompletionRecovered(ILogger logger, string identifier);
}
