using System.Text;
using ChunkUpload.Core.Errors;

namespace ChunkUpload.Server.Protocol;

/// <summary>
/// tus <c>Upload-Metadata</c>: comma-separated pairs of a key (ASCII, no spaces or commas, unique) and an optional
/// base64 value. Values are decoded as strict UTF-8 (Uppy sends names far beyond Latin-1); anything else is refused.
/// </summary>
public static class TusMetadata
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    /// <param name="header">The header's value.</param>
    /// <param name="maxLength">The longest accepted value (<see cref="Hosting.RequestLimits.MaxMetadataLength"/>).</param>
    public static Dictionary<string, string?> Parse(string header, int maxLength)
    {
        var pairs = new Dictionary<string, string?>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(header))
            return pairs;
        if (header.Length > maxLength)
            throw Invalid($"Upload-Metadata is {header.Length} characters; at most {maxLength} are accepted.");
        foreach (var item in header.Split(','))
        {
            string pair = item.Trim();
            int space = pair.IndexOf(' ', StringComparison.Ordinal);
            string key = space < 0 ? pair : pair[..space];
            if (key.Length == 0 || key.Any(c => c <= ' ' || c > '~' || c == ','))
                throw Invalid($"Upload-Metadata has a key that is empty or not printable ASCII: '{ParameterBag.Truncate(key)}'.");
            if (pairs.ContainsKey(key))
                throw Invalid($"Upload-Metadata names the key '{ParameterBag.Truncate(key)}' twice.");
            string? value = null;
            if (space >= 0)
            {
                // Strictly base64: Convert would skip spaces inside, making "key a b" a value.
                string encoded = pair[(space + 1)..];
                if (!encoded.All(IsBase64Char))
                    throw Invalid($"The Upload-Metadata value of '{ParameterBag.Truncate(key)}' is not base64 (a key and its value are separated by one space).");
                try
                {
                    value = StrictUtf8.GetString(Convert.FromBase64String(encoded));
                }
                catch (Exception ex) when (ex is FormatException or DecoderFallbackException)
                {
                    throw Invalid($"The Upload-Metadata value of '{ParameterBag.Truncate(key)}' is not base64 of UTF-8 text.");
                }
            }

            pairs[key] = value;
        }

        return pairs;
    }

    /// <summary>The first of <paramref name="keys"/> present with a value (clients name the file "filename" or "name").</summary>
    public static string? First(Dictionary<string, string?> pairs, params string[] keys)
    {
        foreach (var key in keys)
        {
            if (pairs.TryGetValue(key, out var value) && !string.IsNullOrEmpty(value))
                return value;
        }

        return null;
    }

    private static bool IsBase64Char(char c) => char.IsAsciiLetterOrDigit(c) || c is '+' or '/' or '=';

    private static UploadException Invalid(string detail) => new(UploadErrors.InvalidParameter, detail);
}
