using System.Globalization;
using System.Text;

namespace ChunkUpload.FaultTests.Infrastructure;

/// <summary>Builds HTTP/1.1 requests byte for byte: every header, length and multipart boundary is the caller's choice.</summary>
public static class RequestBuilder
{
    /// <summary>A multipart field: name and raw value bytes (so NUL, broken UTF-8 and the like go out as given).</summary>
    public sealed record Field(string Name, byte[] Value)
    {
        public Field(string name, string value)
            : this(name, Encoding.UTF8.GetBytes(value))
        {
        }
    }

    /// <summary>The nine resumable.js parameters of chunk 1 of a 2,500-byte file in 1,000-byte chunks (2 chunks).</summary>
    public static List<(string Name, string Value)> ValidParameters(string identifier, int chunk = 1) =>
    [
        ("resumableChunkNumber", chunk.ToString(CultureInfo.InvariantCulture)),
        ("resumableChunkSize", "1000"),
        ("resumableCurrentChunkSize", chunk == 1 ? "1000" : "1500"),
        ("resumableTotalSize", "2500"),
        ("resumableType", "application/octet-stream"),
        ("resumableIdentifier", identifier),
        ("resumableFilename", "hostile.bin"),
        ("resumableRelativePath", "hostile.bin"),
        ("resumableTotalChunks", "2"),
    ];

    public static List<(string Name, string Value)> With(this List<(string Name, string Value)> parameters, string name, string? value)
    {
        var copy = parameters.Where(p => p.Name != name).ToList();
        if (value is not null)
            copy.Add((name, value));
        return copy;
    }

    /// <summary>Query string with each value percent-encoded (the server sees the value itself after decoding).</summary>
    public static string Query(IEnumerable<(string Name, string Value)> parameters) =>
        string.Join('&', parameters.Select(p => Uri.EscapeDataString(p.Name) + "=" + Uri.EscapeDataString(p.Value)));

    public static byte[] Body(int length, byte fill = (byte)'x') => Enumerable.Repeat(fill, length).ToArray();

    /// <summary>A request; Content-Length is the body's length unless given (null with <paramref name="contentLength"/> "" omits it).</summary>
    public static byte[] Request(string method, string target, byte[]? body = null, string? contentType = null,
        IEnumerable<string>? headers = null, string? contentLength = null)
    {
        var head = new StringBuilder();
        head.Append(method).Append(' ').Append(target).Append(" HTTP/1.1\r\n");
        head.Append("Host: 127.0.0.1\r\nConnection: close\r\n");
        if (contentType is not null)
            head.Append("Content-Type: ").Append(contentType).Append("\r\n");
        foreach (string header in headers ?? [])
            head.Append(header).Append("\r\n");
        if (contentLength is not null)
        {
            if (contentLength.Length > 0)
                head.Append("Content-Length: ").Append(contentLength).Append("\r\n");
        }
        else if (body is not null || method is "POST" or "PUT")
        {
            head.Append("Content-Length: ").Append((body?.Length ?? 0).ToString(CultureInfo.InvariantCulture)).Append("\r\n");
        }

        head.Append("\r\n");
        return [.. Encoding.Latin1.GetBytes(head.ToString()), .. body ?? []];
    }

    /// <summary>A multipart/form-data body: the fields, then (if given) the file part; <paramref name="close"/> adds the closing boundary.</summary>
    public static byte[] Multipart(string boundary, IEnumerable<Field> fields, byte[]? file, string fileField = "file",
        string fileName = "blob", bool close = true)
    {
        using var body = new MemoryStream();
        void Write(string text) => body.Write(Encoding.UTF8.GetBytes(text));
        foreach (var field in fields)
        {
            Write($"--{boundary}\r\nContent-Disposition: form-data; name=\"{field.Name}\"\r\n\r\n");
            body.Write(field.Value);
            Write("\r\n");
        }

        if (file is not null)
        {
            Write($"--{boundary}\r\nContent-Disposition: form-data; name=\"{fileField}\"; filename=\"{fileName}\"\r\nContent-Type: application/octet-stream\r\n\r\n");
            body.Write(file);
            Write("\r\n");
        }

        if (close)
            Write($"--{boundary}--\r\n");
        return body.ToArray();
    }

    public static IEnumerable<Field> Fields(IEnumerable<(string Name, string Value)> parameters) =>
        parameters.Select(p => new Field(p.Name, p.Value));
}
