using System.Collections.Frozen;
using ChunkUpload.Core.Errors;

namespace ChunkUpload.Server.Protocol;

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

/// <summary>
/// The nine resumable.js parameters (../shared/PROTOCOLS.md 2.3) and their flow.js twins (3.2, no flowType),
/// parsed strictly: numbers are plain decimal digits that fit their type, text is checked by the store.
/// </summary>
public static class ResumableParameters
{
    private static readonly string[] Fields =
        ["ChunkNumber", "ChunkSize", "CurrentChunkSize", "TotalSize", "TotalChunks", "Identifier", "Filename", "RelativePath", "Type"];

    /// <summary>Every parameter name of both clients (flow.js has no flowType; it is harmless here).</summary>
    public static readonly FrozenSet<string> Names =
        FrozenSet.Create(StringComparer.Ordinal, [.. Fields.Select(f => "resumable" + f), .. Fields.Select(f => "flow" + f)]);

    public static ChunkDescriptor Parse(ParameterBag bag)
    {
        string prefix = bag.HasAnyWithPrefix("resumable") ? "resumable" : "flow";
        return new ChunkDescriptor
        {
            ChunkNumber = (int)Number(bag, prefix + "ChunkNumber", int.MaxValue, required: true)!.Value,
            ChunkSize = Number(bag, prefix + "ChunkSize", long.MaxValue, required: true)!.Value,
            CurrentChunkSize = Number(bag, prefix + "CurrentChunkSize", long.MaxValue, required: false),
            TotalSize = Number(bag, prefix + "TotalSize", long.MaxValue, required: true)!.Value,
            TotalChunks = (int?)Number(bag, prefix + "TotalChunks", int.MaxValue, required: false),
            Identifier = Text(bag, prefix + "Identifier", required: true)!,
            FileName = Text(bag, prefix + "Filename", required: true)!,
            RelativePath = Text(bag, prefix + "RelativePath", required: false),
            ContentType = Text(bag, prefix + "Type", required: false),
        };
    }

    /// <summary>The identifier, if the request carries one (for logging before the full parse).</summary>
    public static string? IdentifierOf(ParameterBag bag) =>
        bag.TryGet("resumableIdentifier", out var r) ? r : bag.TryGet("flowIdentifier", out var f) ? f : null;

    private static long? Number(ParameterBag bag, string name, long max, bool required)
    {
        if (!bag.TryGet(name, out var text) || text.Length == 0)
        {
            if (required)
                throw new UploadException(UploadErrors.MissingParameter, $"The parameter '{name}' is required.");
            return null;
        }

        if (!DecimalNumber.TryParse(text, out long value) || value > max)
            throw new UploadException(UploadErrors.InvalidParameter,
                $"The parameter '{name}' must be a whole number from 0 to {max}; got '{ParameterBag.Truncate(text)}'.");
        return value;
    }

    private static string? Text(ParameterBag bag, string name, bool required)
    {
        if (!bag.TryGet(name, out var text) || text.Length == 0)
        {
            if (required)
                throw new UploadException(UploadErrors.MissingParameter, $"The parameter '{name}' is required.");
            return null;
        }

        return text;
    }
}
