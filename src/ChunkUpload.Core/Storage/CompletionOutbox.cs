using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;

namespace ChunkUpload.Core.Storage;

/// <summary>
/// A durable record of finished files still to be announced (the completion webhook). The assembler writes an
/// event before it marks the upload complete, so a crash can repeat the event but never lose it; the event id is
/// derived from the upload and its hash, so a repeat carries the same idempotency key. Entries leave the outbox
/// only when the receiver acknowledged them.
/// </summary>
public sealed class CompletionOutbox
{
    private readonly Channel<bool> _signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly bool _flush;

    public CompletionOutbox(UploadStore store)
    {
        Directory = Path.Combine(store.Root, "outbox");
        _flush = store.Options.FlushToDisk;
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    /// <summary>Completes when an event may be waiting (after a write).</summary>
    public ValueTask<bool> WaitForWorkAsync(CancellationToken cancellationToken) => _signal.Reader.ReadAsync(cancellationToken);

    internal void Record(CompletionEvent completion)
    {
        string path = Path.Combine(Directory, completion.Id + ".json");
        string temp = path + ".tmp";
        using (var handle = File.OpenHandle(temp, FileMode.Create, FileAccess.Write))
        {
            RandomAccess.Write(handle, JsonSerializer.SerializeToUtf8Bytes(completion, OutboxJsonContext.Default.CompletionEvent), 0);
            if (_flush)
                RandomAccess.FlushToDisk(handle);
        }

        File.Move(temp, path, overwrite: true);
        if (_flush)
            NativeFileSystem.FlushDirectory(Directory);
        _signal.Writer.TryWrite(true);
    }

    /// <summary>Every event not yet acknowledged, oldest first.</summary>
    public IReadOnlyList<CompletionEvent> Pending()
    {
        var events = new List<CompletionEvent>();
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, "*.json"))
        {
            try
            {
                if (JsonSerializer.Deserialize(File.ReadAllBytes(file), OutboxJsonContext.Default.CompletionEvent) is { } e)
                    events.Add(e);
            }
            catch (Exception ex) when (ex is JsonException or IOException)
            {
                // A damaged entry cannot be sent; leave it for a person to look at.
            }
        }

        return events.OrderBy(e => e.CompletedAt).ToList();
    }

    public void Acknowledge(string id)
    {
        if (id.Any(c => !char.IsAsciiLetterOrDigit(c) && c != '-'))
            throw new ArgumentException("Not an outbox event id.", nameof(id));
        UploadStore.TryDelete(Path.Combine(Directory, id + ".json"));
    }
}

/// <summary>One finished file, as the completion webhook announces it.</summary>
public sealed record CompletionEvent(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("identifier")] string Identifier,
    [property: JsonPropertyName("fileName")] string FileName,
    [property: JsonPropertyName("size")] long Size,
    [property: JsonPropertyName("sha256")] string Sha256,
    [property: JsonPropertyName("owner")] string Owner,
    [property: JsonPropertyName("completedAt")] DateTimeOffset CompletedAt);

[JsonSerializable(typeof(CompletionEvent))]
internal sealed partial class OutboxJsonContext : JsonSerializerContext;
