using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace ChunkUpload.Bench;

/// <summary>What one timed upload measured. Times are seconds from the first request.</summary>
internal sealed record UploadTiming(double Seconds, double TailSeconds, string? ServerSha256, int Retries);

/// <summary>
/// Sends a file the way resumable.js 1.1.0 does with its defaults (../shared/PROTOCOLS.md section 2):
/// multipart/form-data POSTs whose nine resumable* fields precede the <c>file</c> part and are repeated
/// in the query string, <c>simultaneousUploads</c> chunks in flight, chunks taken in order. A test GET
/// precedes each chunk only when asked (resumable.js's <c>testChunks</c>); they are also measured on their own.
/// </summary>
internal sealed class ResumableClient
{
    // resumable.js treats these as permanent; anything else that is not 200/201 is retried.
    private static readonly HashSet<int> PermanentErrors = [400, 401, 403, 404, 409, 415, 500, 501];
    private const int MaxRetries = 5;

    private readonly HttpClient _http;
    private readonly Uri _baseUri;
    private readonly int _pollMs;
    private readonly string _boundary = "----ChunkUploadBench" + Convert.ToHexString(RandomNumberGenerator.GetBytes(8));

    private readonly bool _testChunks;

    public ResumableClient(HttpClient http, Uri baseUri, int pollMs, bool testChunks = false)
    {
        _http = http;
        _baseUri = baseUri;
        _nodes = [baseUri];
        _pollMs = pollMs;
        _testChunks = testChunks;
    }

    /// <summary>A client of several nodes serving the same uploads: chunks go to them in turn (a round-robin balancer).</summary>
    public ResumableClient(HttpClient http, IReadOnlyList<Uri> nodes, int pollMs)
        : this(http, nodes[0], pollMs)
    {
        _nodes = nodes;
    }

    private readonly IReadOnlyList<Uri> _nodes;
    private int _turn;

    /// <summary>When set, the time (ms) from sending each chunk to its acknowledgement is recorded here.</summary>
    public System.Collections.Concurrent.ConcurrentBag<double>? AckLatencies { get; init; }

    private Uri NextNode() => _nodes.Count == 1 ? _baseUri : _nodes[(int)((uint)Interlocked.Increment(ref _turn) % (uint)_nodes.Count)];

    /// <summary>resumable.js geometry: max(floor(size/chunk), 1) chunks, the last one runs to the end of the file.</summary>
    public static long TotalChunks(long size, long chunkSize) => Math.Max(size / chunkSize, 1);

    public static (long Offset, long Length) ChunkRange(long number, long size, long chunkSize)
    {
        var offset = (number - 1) * chunkSize;
        var end = number == TotalChunks(size, chunkSize) ? size : Math.Min(size, number * chunkSize);
        return (offset, end - offset);
    }

    /// <summary>
    /// Uploads the first <paramref name="size"/> bytes of <paramref name="file"/> as <paramref name="identifier"/>,
    /// then polls <c>GET /uploads/{identifier}</c> until its state is <c>complete</c>.
    /// </summary>
    public async Task<UploadTiming> UploadAsync(
        SafeFileHandle file, long size, long chunkSize, int inflight, string identifier, string fileName, TimeSpan bound, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(bound);
        var ct = timeout.Token;

        var total = TotalChunks(size, chunkSize);
        long next = 0;
        long lastAck = 0;
        var retries = 0;
        var start = Stopwatch.GetTimestamp();

        async Task Worker()
        {
            while (true)
            {
                var number = Interlocked.Increment(ref next);
                if (number > total)
                {
                    return;
                }

                // resumable.js's testChunks: a 200/201 answer means the chunk is there already.
                if (!_testChunks || await TestChunkAsync(number, size, chunkSize, identifier, fileName, ct) is not (HttpStatusCode.OK or HttpStatusCode.Created))
                {
                    Interlocked.Add(ref retries, await PostChunkAsync(file, number, size, chunkSize, identifier, fileName, ct));
                }

                var now = Stopwatch.GetTimestamp();
                long seen;
                while ((seen = Interlocked.Read(ref lastAck)) < now && Interlocked.CompareExchange(ref lastAck, now, seen) != seen)
                {
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, (int)Math.Min(inflight, total)).Select(_ => Task.Run(Worker, ct)));

        var sha = await WaitCompleteAsync(identifier, ct);
        var end = Stopwatch.GetTimestamp();
        return new UploadTiming(
            Stopwatch.GetElapsedTime(start, end).TotalSeconds,
            Stopwatch.GetElapsedTime(lastAck, end).TotalSeconds,
            sha,
            retries);
    }

    /// <summary>Posts one chunk; returns how many retries it needed.</summary>
    public async Task<int> PostChunkAsync(
        SafeFileHandle file, long number, long size, long chunkSize, string identifier, string fileName, CancellationToken ct, long fileOffset = 0)
    {
        var (offset, length) = ChunkRange(number, size, chunkSize);
        var parameters = Parameters(number, chunkSize, length, size, identifier, fileName);
        var uri = new Uri(NextNode(), "upload?" + QueryString(parameters));
        for (var attempt = 0; ; attempt++)
        {
            var sent = Stopwatch.GetTimestamp();
            using var form = new MultipartFormDataContent(_boundary);
            foreach (var (name, value) in parameters)
            {
                var field = new ByteArrayContent(Encoding.UTF8.GetBytes(value));
                field.Headers.ContentDisposition = new ContentDispositionHeaderValue("form-data") { Name = $"\"{name}\"" };
                form.Add(field);
            }

            var part = new FileSliceContent(file, fileOffset + offset, length);
            part.Headers.ContentDisposition = new ContentDispositionHeaderValue("form-data") { Name = "\"file\"", FileName = $"\"{fileName}\"" };
            part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(part);

            using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = form };
            using var response = await _http.SendAsync(request, ct);
            var status = (int)response.StatusCode;
            if (status is 200 or 201)
            {
                AckLatencies?.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                return attempt;
            }

            var body = await response.Content.ReadAsStringAsync(ct);
            if (PermanentErrors.Contains(status) || attempt >= MaxRetries)
            {
                throw new BenchException($"POST chunk {number} of {identifier} answered {status}: {Shorten(body)}");
            }

            // Throttled or busy: wait as told (bounded), as a polite client would; other answers are retried at once.
            if (status is 429 or 503)
            {
                var wait = response.Headers.RetryAfter?.Delta ?? TimeSpan.FromMilliseconds(50);
                await Task.Delay(wait < TimeSpan.FromSeconds(2) ? wait : TimeSpan.FromSeconds(2), ct);
            }
        }
    }

    /// <summary>Sends the resumable.js test GET for one chunk; returns the status code.</summary>
    public async Task<HttpStatusCode> TestChunkAsync(long number, long size, long chunkSize, string identifier, string fileName, CancellationToken ct)
    {
        var (_, length) = ChunkRange(number, size, chunkSize);
        var uri = new Uri(_baseUri, "upload?" + QueryString(Parameters(number, chunkSize, length, size, identifier, fileName)));
        using var response = await _http.GetAsync(uri, ct);
        await response.Content.LoadIntoBufferAsync(ct);
        return response.StatusCode;
    }

    /// <summary>Polls the status resource every poll interval until complete; returns its sha256 field, if any.</summary>
    public async Task<string?> WaitCompleteAsync(string identifier, CancellationToken ct)
    {
        var uri = new Uri(_baseUri, "uploads/" + Uri.EscapeDataString(identifier));
        while (true)
        {
            using (var response = await _http.GetAsync(uri, ct))
            {
                var body = await response.Content.ReadAsByteArrayAsync(ct);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    using var json = JsonDocument.Parse(body);
                    var root = json.RootElement;
                    var state = root.TryGetProperty("state", out var s) ? s.GetString() : null;
                    if (string.Equals(state, "complete", StringComparison.OrdinalIgnoreCase))
                    {
                        return root.TryGetProperty("sha256", out var h) && h.ValueKind == JsonValueKind.String ? h.GetString() : null;
                    }

                    if (state is "failed" or "error")
                    {
                        throw new BenchException($"GET /uploads/{identifier} reports state {state}: {Shorten(Encoding.UTF8.GetString(body))}");
                    }
                }
                else if ((int)response.StatusCode >= 500)
                {
                    throw new BenchException($"GET /uploads/{identifier} answered {(int)response.StatusCode}: {Shorten(Encoding.UTF8.GetString(body))}");
                }
            }

            await Task.Delay(_pollMs, ct);
        }
    }

    private static List<(string Name, string Value)> Parameters(long number, long chunkSize, long currentChunkSize, long totalSize, string identifier, string fileName) =>
    [
        ("resumableChunkNumber", number.ToString(CultureInfo.InvariantCulture)),
        ("resumableChunkSize", chunkSize.ToString(CultureInfo.InvariantCulture)),
        ("resumableCurrentChunkSize", currentChunkSize.ToString(CultureInfo.InvariantCulture)),
        ("resumableTotalSize", totalSize.ToString(CultureInfo.InvariantCulture)),
        ("resumableType", "application/octet-stream"),
        ("resumableIdentifier", identifier),
        ("resumableFilename", fileName),
        ("resumableRelativePath", fileName),
        ("resumableTotalChunks", TotalChunks(totalSize, chunkSize).ToString(CultureInfo.InvariantCulture)),
    ];

    private static string QueryString(List<(string Name, string Value)> parameters) =>
        string.Join('&', parameters.Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value)}"));

    internal static string Shorten(string text) => text.Length <= 300 ? text : text[..300] + "...";
}

/// <summary>A failed upload or a wrong answer: the run stops with this message.</summary>
internal sealed class BenchException : Exception
{
    public BenchException()
    {
    }

    public BenchException(string message)
        : base(message)
    {
    }

    public BenchException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
