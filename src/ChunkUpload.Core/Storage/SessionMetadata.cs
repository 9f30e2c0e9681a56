using System.Text.Json.Serialization;

namespace ChunkUpload.Core.Storage;

/// <summary>What is persisted of a session in its <c>session.json</c>; rewritten atomically (temp file + rename).</summary>
internal sealed class SessionMetadata
{
    public int Version { get; set; } = 1;
    public string Owner { get; set; } = "";

    /// <summary>Who the unfinished-uploads quota charges (the owner, or an anonymous caller's address).</summary>
    public string? Client { get; set; }
    public string Identifier { get; set; } = "";
    public string FileName { get; set; } = "";
    public string? RelativePath { get; set; }
    public string? ContentType { get; set; }
    public long TotalSize { get; set; }
    public long ChunkSize { get; set; }
    public int TotalChunks { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public SessionState State { get; set; }
    public string? Sha256 { get; set; }
    public DateTimeOffset? CompletedAt { get; set; }
    public string? Failure { get; set; }
}

/// <summary>Persisted life-cycle of an upload. "Assembling" is derived (every byte received, not yet complete).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SessionState>))]
public enum SessionState
{
    Receiving,
    Complete,
    Failed,
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(SessionMetadata))]
internal sealed partial class StorageJsonContext : JsonSerializerContext;
