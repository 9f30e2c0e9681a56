using System.Globalization;
using System.Text;

namespace ChunkUpload.Core;

/// <summary>
/// A value a client chose (identifier, file name, path, parameter, message quoting them) on its way into a log line.
/// Line breaks and other control characters are written as escapes (<c>\r</c>, <c>\n</c>, <c>\t</c>, <c>\uXXXX</c>),
/// so a value cannot end the line and forge the next one, whatever the logging backend does with the text. The
/// implicit conversion from <see cref="string"/> lets a [LoggerMessage] method take it where it took a string.
/// </summary>
public readonly record struct LogText(string? Value)
{
    public static implicit operator LogText(string? value) => new(value);

    public static LogText FromString(string? value) => new(value);

    public override string ToString() => Escape(Value);

    /// <summary>The text with every control character, U+2028 and U+2029 escaped; the same instance when there is none.</summary>
    public static string Escape(string? value)
    {
        if (string.IsNullOrEmpty(value) || !value.Any(NeedsEscape))
            return value ?? "";
        var builder = new StringBuilder(value.Length + 16);
        foreach (char c in value)
        {
            switch (c)
            {
                case '\r':
                    builder.Append("\\r");
                    break;
                case '\n':
                    builder.Append("\\n");
                    break;
                case '\t':
                    builder.Append("\\t");
                    break;
                default:
                    if (NeedsEscape(c))
                        builder.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        builder.Append(c);
                    break;
            }
        }

        return builder.ToString();
    }

    private static bool NeedsEscape(char c) => char.IsControl(c) || c is '\u2028' or '\u2029';
}
