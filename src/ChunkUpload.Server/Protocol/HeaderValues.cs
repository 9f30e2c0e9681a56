using ChunkUpload.Core.Errors;
using Microsoft.Extensions.Primitives;

namespace ChunkUpload.Server.Protocol;

/// <summary>
/// Request headers as protocol parameters: a header sent twice must say the same thing each time, a number is a
/// plain decimal <see cref="long"/> (no sign, no spaces inside, no exponent), and two spellings of one header
/// (<c>Session-ID</c> / <c>X-Session-ID</c>) must agree when both are sent.
/// </summary>
public static class HeaderValues
{
    /// <summary>The header's value (trimmed), or null when it is absent. Repeated with different values: 400 conflicting_parameter.</summary>
    public static string? Get(HttpRequest request, string name)
    {
        if (!request.Headers.TryGetValue(name, out StringValues values) || values.Count == 0)
            return null;
        if (values.Count > 1 && values.Distinct(StringComparer.Ordinal).Count() > 1)
            throw new UploadException(UploadErrors.ConflictingParameter, $"{name} was sent more than once with different values.");
        return values[0]?.Trim();
    }

    /// <summary>The value of whichever spelling was sent; both sent with different values: 400 conflicting_parameter.</summary>
    public static string? Either(HttpRequest request, string name, string alias)
    {
        string? first = Get(request, name);
        string? second = Get(request, alias);
        if (first is not null && second is not null && !string.Equals(first, second, StringComparison.Ordinal))
            throw new UploadException(UploadErrors.ConflictingParameter, $"{name} and {alias} were both sent, with different values; send one.");
        return first ?? second;
    }

    /// <summary>A byte count or offset from a header; null when absent.</summary>
    public static long? Number(HttpRequest request, string name) =>
        Get(request, name) is { } text ? ParseNumber(text, name) : null;

    /// <summary>The byte count or offset from either spelling of a header; null when neither was sent.</summary>
    public static long? Number(HttpRequest request, string name, string alias) =>
        Either(request, name, alias) is { } text ? ParseNumber(text, $"{name}/{alias}") : null;

    public static long ParseNumber(string text, string what)
    {
        if (!DecimalNumber.TryParse(text, out long value))
            throw new UploadException(UploadErrors.InvalidParameter,
                $"{what} must be a whole number of bytes from 0 to {long.MaxValue}; got '{ParameterBag.Truncate(text)}'.");
        return value;
    }
}
