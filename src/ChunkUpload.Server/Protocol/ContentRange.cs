using ChunkUpload.Core.Errors;

namespace ChunkUpload.Server.Protocol;

/// <summary>
/// A <c>Content-Range</c> request header (RFC 9110 14.4, in the forms upload protocols use): <c>bytes first-last/total</c>
/// with inclusive ends; <c>total</c> may be <c>*</c> while the client does not know it yet; <c>last</c> may be <c>*</c>
/// (@google-cloud/storage's single-request form: the body runs to the end of the file); <c>bytes */total</c> names no
/// bytes (Google's status query). Every number is a plain decimal <see cref="long"/>.
/// </summary>
/// <param name="First">The first byte, or null for <c>bytes */…</c>.</param>
/// <param name="Last">The last byte (inclusive), or null when the range is <c>*</c> or <c>first-*</c>.</param>
/// <param name="Total">The file's size, or null for <c>/*</c>.</param>
public readonly record struct ContentRange(long? First, long? Last, long? Total)
{
    private const string Unit = "bytes ";

    /// <summary><c>bytes */total</c>: no bytes, a question about what is stored.</summary>
    public bool IsQuery => First is null;

    /// <summary>The number of bytes the range names, when both ends are given.</summary>
    public long? Length => First is { } first && Last is { } last ? last - first + 1 : null;

    /// <summary>
    /// Parses the header. Malformed text, a negative or overflowing number and an inverted range are 400
    /// <c>invalid_parameter</c>; a range that ends at or past the stated total is 400 <c>beyond_length</c>.
    /// </summary>
    public static ContentRange Parse(string header, string name = "Content-Range")
    {
        string text = header.Trim();
        if (!text.StartsWith(Unit, StringComparison.OrdinalIgnoreCase))
            throw Malformed(name, header);
        string spec = text[Unit.Length..].Trim();
        int slash = spec.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0 || spec.IndexOf('/', slash + 1) >= 0)
            throw Malformed(name, header);
        string range = spec[..slash];
        string total = spec[(slash + 1)..];

        long? size = total == "*" ? null : Number(total, name, header);
        if (range == "*")
            return new ContentRange(null, null, size);

        int dash = range.IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0)
            throw Malformed(name, header);
        long first = Number(range[..dash], name, header);
        string lastText = range[(dash + 1)..];
        long? last = lastText == "*" ? null : Number(lastText, name, header);
        if (last is { } end)
        {
            if (end < first)
                throw new UploadException(UploadErrors.InvalidParameter,
                    $"{name} '{ParameterBag.Truncate(header)}' ends before it starts; the last byte is inclusive (bytes 0-9/100 names 10 bytes).");
            if (end == long.MaxValue)
                throw new UploadException(UploadErrors.InvalidParameter, $"{name} '{ParameterBag.Truncate(header)}' goes past the largest possible file.");
            if (size is { } s && end >= s)
                throw new UploadException(UploadErrors.BeyondLength,
                    $"{name} '{ParameterBag.Truncate(header)}' ends at byte {end}, but the file has {s} bytes (0 to {s - 1}).");
        }
        else if (size is { } s && first > s)
        {
            throw new UploadException(UploadErrors.BeyondLength,
                $"{name} '{ParameterBag.Truncate(header)}' starts at byte {first}, past the end of a {s}-byte file.");
        }

        return new ContentRange(first, last, size);
    }

    private static long Number(string text, string name, string header) =>
        DecimalNumber.TryParse(text, out long value) ? value : throw Malformed(name, header);

    private static UploadException Malformed(string name, string header) =>
        new(UploadErrors.InvalidParameter,
            $"{name} must look like 'bytes <first>-<last>/<total>' (inclusive ends, decimal numbers, '*' for an unknown total); got '{ParameterBag.Truncate(header)}'.");
}
