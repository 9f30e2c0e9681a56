using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace ChunkUpload.FaultTests.Infrastructure;

/// <summary>What came back on a raw connection: a parsed HTTP response, or nothing before the connection closed.</summary>
public sealed record RawResponse(int? Status, string? ContentType, string Body, string Note, IReadOnlyDictionary<string, string>? Headers = null)
{
    public bool Closed => Status is null;

    public string? Header(string name) => Headers is not null && Headers.TryGetValue(name, out string? value) ? value : null;
}

/// <summary>
/// Sends bytes exactly as given over a fresh TCP connection (what HttpClient would refuse to send: bad lengths,
/// raw NUL bytes, broken framing) and reads one HTTP/1.1 response until the server closes the connection.
/// </summary>
public static class RawHttp
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(20);

    /// <param name="halfClose">Shut down the sending side after the bytes (a client that stops early).</param>
    /// <param name="timeout">How long to wait for the whole exchange (20 s by default).</param>
    public static async Task<RawResponse> SendAsync(int port, byte[] request, bool halfClose = false, TimeSpan? timeout = null)
    {
        using var client = new TcpClient();
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        await client.ConnectAsync("127.0.0.1", port, cts.Token);
        var stream = client.GetStream();
        string note = "";
        try
        {
            await stream.WriteAsync(request, cts.Token);
            await stream.FlushAsync(cts.Token);
            if (halfClose)
                client.Client.Shutdown(SocketShutdown.Send);
        }
        catch (IOException ex)
        {
            note = "server stopped reading the request: " + ex.Message;
        }

        using var received = new MemoryStream();
        byte[] buffer = new byte[64 * 1024];
        var clock = Stopwatch.StartNew();
        try
        {
            while (true)
            {
                int read = await stream.ReadAsync(buffer, cts.Token);
                if (read == 0)
                    break;
                received.Write(buffer, 0, read);
                if (IsComplete(received.ToArray()))
                    break;
            }
        }
        catch (IOException ex)
        {
            note = (note.Length > 0 ? note + "; " : "") + "connection reset: " + ex.Message;
        }
        catch (OperationCanceledException)
        {
            note = (note.Length > 0 ? note + "; " : "") + $"no complete response within {clock.Elapsed.TotalSeconds:F0} s";
        }

        return Parse(received.ToArray(), note);
    }

    private static bool IsComplete(byte[] data)
    {
        int end = HeaderEnd(data);
        if (end < 0)
            return false;
        var headers = Headers(Encoding.Latin1.GetString(data, 0, end));
        if (headers.TryGetValue("content-length", out string? length) && long.TryParse(length, NumberStyles.None, CultureInfo.InvariantCulture, out long n))
            return data.Length - (end + 4) >= n;
        if (headers.TryGetValue("transfer-encoding", out string? te) && te.Contains("chunked", StringComparison.OrdinalIgnoreCase))
            return Encoding.Latin1.GetString(data, end + 4, data.Length - end - 4).EndsWith("0\r\n\r\n", StringComparison.Ordinal);
        return false;
    }

    private static RawResponse Parse(byte[] data, string note)
    {
        int end = HeaderEnd(data);
        if (end < 0)
            return new RawResponse(null, null, Encoding.Latin1.GetString(data), note.Length > 0 ? note : $"connection closed with {data.Length} bytes and no response");
        string head = Encoding.Latin1.GetString(data, 0, end);
        string statusLine = head.Split("\r\n")[0];
        string[] parts = statusLine.Split(' ', 3);
        int? status = parts.Length >= 2 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int s) ? s : null;
        var headers = Headers(head);
        byte[] body = data[(end + 4)..];
        if (headers.TryGetValue("transfer-encoding", out string? te) && te.Contains("chunked", StringComparison.OrdinalIgnoreCase))
            body = Dechunk(body);
        headers.TryGetValue("content-type", out string? contentType);
        return new RawResponse(status, contentType, Encoding.UTF8.GetString(body), note, headers);
    }

    private static int HeaderEnd(byte[] data)
    {
        for (int i = 0; i + 3 < data.Length; i++)
        {
            if (data[i] == '\r' && data[i + 1] == '\n' && data[i + 2] == '\r' && data[i + 3] == '\n')
                return i;
        }

        return -1;
    }

    private static Dictionary<string, string> Headers(string head)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string line in head.Split("\r\n").Skip(1))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0)
                headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }

        return headers;
    }

    private static byte[] Dechunk(byte[] body)
    {
        using var result = new MemoryStream();
        int pos = 0;
        while (pos < body.Length)
        {
            int lineEnd = IndexOfCrlf(body, pos);
            if (lineEnd < 0)
                break;
            string sizeText = Encoding.ASCII.GetString(body, pos, lineEnd - pos).Split(';')[0].Trim();
            if (!int.TryParse(sizeText, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int size) || size == 0)
                break;
            int start = lineEnd + 2;
            result.Write(body, start, Math.Min(size, body.Length - start));
            pos = start + size + 2;
        }

        return result.ToArray();
    }

    private static int IndexOfCrlf(byte[] data, int from)
    {
        for (int i = from; i + 1 < data.Length; i++)
        {
            if (data[i] == '\r' && data[i + 1] == '\n')
                return i;
        }

        return -1;
    }
}
