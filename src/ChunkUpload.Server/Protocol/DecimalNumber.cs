namespace ChunkUpload.Server.Protocol;

/// <summary>
/// The one number parser for client values, whatever carries them (query string, multipart field, header,
/// Content-Range, JSON): one or more ASCII digits and nothing else, fitting a <see cref="long"/>. .NET's own parsing
/// is not used because it accepts more than it says: even with <c>NumberStyles.None</c> it skips trailing NUL
/// characters, so <c>1\0</c> would read as 1.
/// </summary>
public static class DecimalNumber
{
    public static bool TryParse(ReadOnlySpan<char> text, out long value)
    {
        value = 0;
        if (text.IsEmpty)
            return false;
        long result = 0;
        foreach (char c in text)
        {
            if (c is < '0' or > '9')
                return false;
            int digit = c - '0';
            if (result > (long.MaxValue - digit) / 10)
                return false; // overflows a long
            result = (result * 10) + digit;
        }

        value = result;
        return true;
    }

    /// <summary>As <see cref="TryParse(ReadOnlySpan{char}, out long)"/>, for a value that may be absent.</summary>
    public static bool TryParse(string? text, out long value)
    {
        if (text is null)
        {
            value = 0;
            return false;
        }

        return TryParse(text.AsSpan(), out value);
    }
}
