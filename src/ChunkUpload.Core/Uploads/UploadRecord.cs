using System.Text.Json.Serialization;

namespace ChunkUpload.Core.Uploads;

/// <summary>
/// What is persisted of an upload (the metadata store's row). Chunk numbers, tus metadata and the like are a
/// protocol's own values and live in <see cref="Properties"/> as data; the engine knows lengths and byte ranges.
/// </summary>
public sealed class UploadRecord
{
    public const int CurrentVersion = 2;

    public int Version { get; set; } = CurrentVersion;

    public string Owner { get; set; } = "";

    /// <summary>Who the quotas charge (the owner, or an anonymous caller's address).</summary>
    public string? Client { get; set; }

    /// <summary>The upload's id as its protocol names it (resumable.js identifier, tus id, qquuid, ...).</summary>
    [JsonPropertyName("identifier")]
    public string Id { get; set; } = "";

    /// <summary>The protocol that created the upload; writes through another protocol are refused.</summary>
    public string Protocol { get; set; } = "";

    /// <summary>The file's length, once declared (a tus upload may defer it, a stream may learn it at the end).</summary>
    [JsonPropertyName("totalSize")]
    public long? Length { get; set; }

    public string FileName { get; set; } = "";

    public string? RelativePath { get; set; }

    public string? ContentType { get; set; }

    /// <summary>Protocol values kept as data (chunk size, tus Upload-Metadata, ...). Small: bounded by the adapters.</summary>
    public Dictionary<string, string>? Properties { get; set; }

    public UploadState State { get; set; }

    public string? Sha256 { get; set; }

    /// <summary>SHA-256 (hex) the whole file must have, when a client declared it (RFC 9530 Repr-Digest).</summary>
    public string? ExpectedSha256 { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset? CompletedAt { get; set; }

    public string? Failure { get; set; }

    /// <summary>A part of a later concatenation (tus <c>Upload-Concat: partial</c>): completes without announcing a file.</summary>
    public bool Partial { get; set; }

    /// <summary>For a concatenation: the ids of the partial uploads whose bytes make this file, in order.</summary>
    public List<string>? Parts { get; set; }

    /// <summary>For a partial upload: the concatenation that consumes it.</summary>
    public string? ConcatenatedInto { get; set; }

    /// <summary>The data store's own state for the upload (an object store's multipart upload id and part size), opaque to the engine.</summary>
    public string? StorageState { get; set; }

    // Version 1 (resumable.js only) kept the chunk geometry at the top level; read for migration, never written.
    [JsonPropertyName("chunkSize")]
    public long? LegacyChunkSize { get; set; }

    [JsonPropertyName("totalChunks")]
    public int? LegacyTotalChunks { get; set; }

    [JsonIgnore]
    public UploadKey Key => new(Owner, Id);

    /// <summary>When bytes were last stored (a shared store keeps it beside the record; not part of the record's JSON).</summary>
    [JsonIgnore]
    public DateTimeOffset? LastActivity { get; set; }

    public string? Property(string name) => Properties is { } p && p.TryGetValue(name, out var value) ? value : null;

    public UploadRecord Clone()
    {
        var copy = (UploadRecord)MemberwiseClone();
        copy.Properties = Properties is null ? null : new Dictionary<string, string>(Properties, StringComparer.Ordinal);
        copy.Parts = Parts is null ? null : [.. Parts];
        return copy;
    }
}

/// <summary>Persisted life-cycle of an upload. "Assembling" is derived: every byte stored, completion under way.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<UploadState>))]
public enum UploadState
{
    Receiving,
    Complete,
    Failed,
}

/// <summary>Upload states as they appear on the wire.</summary>
public static class UploadStates
{
    public const string Receiving = "receiving";
    public const string Assembling = "assembling";
    public const string Complete = "complete";
    public const string Failed = "failed";
}
