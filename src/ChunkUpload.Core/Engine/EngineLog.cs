using Microsoft.Extensions.Logging;

namespace ChunkUpload.Core.Engine;

internal static partial class EngineLog
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Upload {Identifier} started ({Protocol}): {FileName}, {Length} bytes")]
    public static partial void UploadStarted(ILogger logger, LogText identifier, string protocol, LogText fileName, long? length);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Debug, Message = "Upload {Identifier}: {Length} bytes at {Offset} stored ({Stored} bytes in all)")]
    public static partial void BytesStored(ILogger logger, LogText identifier, long offset, long length, long stored);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Debug, Message = "Upload {Identifier}: {Length} bytes at {Offset} were already stored; body discarded")]
    public static partial void AlreadyStored(ILogger logger, LogText identifier, long offset, long length);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Information, Message = "Upload {Identifier} assembled: {FileName}, {TotalSize} bytes, sha256 {Sha256}")]
    public static partial void UploadAssembled(ILogger logger, LogText identifier, LogText fileName, long totalSize, string sha256);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Upload {Identifier} deleted")]
    public static partial void UploadDeleted(ILogger logger, LogText identifier);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Information, Message = "Storage opened: {Uploads} unfinished uploads, {Pending} to assemble, {Published} completions finished")]
    public static partial void StorageOpened(ILogger logger, int uploads, int pending, int published);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Warning, Message = "Upload {Identifier}: its journal lists data the store does not have; those bytes will be asked for again")]
    public static partial void DataLost(ILogger logger, LogText identifier);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Error, Message = "Upload {Identifier} failed: {Reason}")]
    public static partial void UploadFailed(ILogger logger, LogText identifier, LogText reason);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Information, Message = "Upload {Identifier} recovered after restart: completed file moved into place")]
    public static partial void CompletionRecovered(ILogger logger, LogText identifier);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Information, Message = "Sweep removed {Expired} idle uploads, {Retired} completed files past retention, {Orphans} orphaned files")]
    public static partial void Swept(ILogger logger, int expired, int retired, int orphans);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Information, Message = "Upload {Identifier}: length declared as {Length} bytes")]
    public static partial void LengthDeclared(ILogger logger, LogText identifier, long length);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Information, Message = "Upload {Identifier}: {Stored} bytes kept from a body that ended early ({Reason})")]
    public static partial void PrefixKept(ILogger logger, LogText identifier, long stored, LogText reason);

    [LoggerMessage(EventId = 1014, Level = LogLevel.Warning, Message = "Partial upload {Part} of concatenation {Final} could not be removed")]
    public static partial void PartNotRemoved(ILogger logger, Exception exception, LogText part, LogText final);

    [LoggerMessage(EventId = 1015, Level = LogLevel.Error, Message = "An observer of completions failed for upload {Identifier}; the upload is complete")]
    public static partial void ObserverFailed(ILogger logger, Exception exception, LogText identifier);

    [LoggerMessage(EventId = 1016, Level = LogLevel.Error, Message = "An observer failed on a notification for upload {Identifier}; the upload goes on")]
    public static partial void NotificationFailed(ILogger logger, Exception exception, LogText identifier);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Assembly of upload {Identifier} deferred for {Seconds} s after a storage error")]
    public static partial void AssemblyDeferred(ILogger logger, Exception exception, LogText identifier, double seconds);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Debug, Message = "Upload {Identifier}: batch of {Pieces} pieces, commit {CommitMs} ms, journal {JournalMs} ms")]
    public static partial void BatchTimings(ILogger logger, LogText identifier, int pieces, double commitMs, double journalMs);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Error, Message = "Assembly of upload {Identifier} failed unexpectedly; it is retried")]
    public static partial void AssemblyCrashed(ILogger logger, Exception exception, LogText identifier);

    [LoggerMessage(EventId = 1104, Level = LogLevel.Warning, Message = "Upload {Identifier}: a staged piece could not be read for the hash; the finished object is read back instead")]
    public static partial void StreamHashAbandoned(ILogger logger, Exception exception, LogText identifier);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Information, Message = "Upload {Identifier}: its SHA-256 is computed by reading the finished object back ({Length} bytes)")]
    public static partial void HashReadBack(ILogger logger, LogText identifier, long length);

    [LoggerMessage(EventId = 1106, Level = LogLevel.Information, Message = "Upload {Identifier}: the shared hash checkpoint stayed at {HashedTo} of {Length} bytes for {Seconds} s; the bytes past it are no longer staged on any node that answers")]
    public static partial void HashChainStalled(ILogger logger, LogText identifier, long hashedTo, long length, double seconds);

    [LoggerMessage(EventId = 1107, Level = LogLevel.Warning, Message = "Upload {Identifier}: the shared hash checkpoint cannot be read; this node stops following it")]
    public static partial void HashCheckpointUnreadable(ILogger logger, Exception exception, LogText identifier);

    [LoggerMessage(EventId = 1108, Level = LogLevel.Warning, Message = "Upload {Identifier}: advancing the shared hash after another node's announcement failed; the next batch tries again")]
    public static partial void HashPumpFailed(ILogger logger, Exception exception, LogText identifier);
}
