using System.Text.Json;
using System.Text.Json.Serialization;
using ChunkUpload.Core.Contracts;

namespace ChunkUpload.Core.Uploads;

/// <summary>The one JSON form of records and completion events, shared by every metadata store.</summary>
public static class UploadJson
{
    public static byte[] Serialize(UploadRecord record) => JsonSerializer.SerializeToUtf8Bytes(record, UploadJsonContext.Default.UploadRecord);

    public static UploadRecord Deserialize(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, UploadJsonContext.Default.UploadRecord) ?? throw new JsonException("empty record");

    public static UploadRecord Deserialize(string json) =>
        JsonSerializer.Deserialize(json, UploadJsonContext.Default.UploadRecord) ?? throw new JsonException("empty record");

    public static byte[] Serialize(CompletionEvent completion) => JsonSerializer.SerializeToUtf8Bytes(completion, UploadJsonContext.Default.CompletionEvent);

    public static CompletionEvent? DeserializeEvent(ReadOnlySpan<byte> json) => JsonSerializer.Deserialize(json, UploadJsonContext.Default.CompletionEvent);

    public static CompletionEvent? DeserializeEvent(string json) => JsonSerializer.Deserialize(json, UploadJsonContext.Default.CompletionEvent);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(UploadRecord))]
[JsonSerializable(typeof(CompletionEvent))]
internal sealed partial class UploadJsonContext : JsonSerializerContext;
