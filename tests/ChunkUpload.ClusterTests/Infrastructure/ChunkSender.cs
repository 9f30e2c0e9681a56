using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using ChunkUpload.Bench;
using Microsoft.Win32.SafeHandles;

namespace ChunkUpload.ClusterTests.Infrastructure;

/// <summary>
/// A resumable.js-style client of several nodes (../shared/PROTOCOLS.md section 2): multipart POSTs to <c>/upload</c>
/// whose resumable* fields precede the <c>file</c> part and are repeated in the query string, bodies streamed from a
/// file. Chunks go round-robin to the nodes, a fixed number in flight. A chunk whose request fails (a dead node: refused
/// or cut connection; a 5xx or 429 answer) is sent again to the next node; only a 200 acknowledges it. Every
/// acknowledged chunk is recorded with the node that acknowledged it.
/// </summary>
public sealed class ChunkSender(Cluster cluster, SafeFileHandle file, long size, long chunkSize, string identifier, string fileName)
{
    private const int MaxAttempts = 12;
    private static readonly HashSet<int> Permanent = [400, 401, 403, 404, 409, 415, 500, 501];
    private readonly ConcurrentDictionary<int, string> _acknowledged = new();
    private readonly ConcurrentQueue<string> _failures = new();
    private readonly ConcurrentDictionary<int, int> _resentChunks = new();
    private readonly List<(int Count, TaskCompletionSource Reached)> _waiters = [];
    private readonly ConcurrentDictionary<string, int> _inFlight = new();
    private int _cursor = -1;
    private int _resends;

    public string Identifier => identifier;

    /// <summary>Added to every request (credentials).</summary>
    public Action<HttpRequestMessage>? Authorize { get; init; }

    /// <summary>resumable.js geometry: max(floor(size / chunk), 1) chunks; the last one runs to the end of the file.</summary>
    public int TotalChunks => (int)Math.Max(size / chunkSize, 1);

    public (long Offset, long Length) RangeOf(int chunk)
    {
        long offset = (chunk - 1) * chunkSize;
        long end = chunk == TotalChunks ? size : Math.Min(size, chunk * chunkSize);
        return (offset, end - offset);
    }

    /// <summary>Acknowledged chunks and the node that acknowledged each.</summary>
    public IReadOnlyDictionary<int, string> Acknowledged => new Dictionary<int, string>(_acknowledged);

    /// <summary>Sends after a failed attempt (to another node).</summary>
    public int Resends => Volatile.Read(ref _resends);

    /// <summary>Chunks that needed more than one attempt.</summary>
    public IReadOnlyCollection<int> ResentChunks => [.. _resentChunks.Keys.Order()];

    /// <summary>Why attempts failed ("chunk 7 on node2: HttpRequestException ...").</summary>
    public IReadOnlyList<string> Failures => [.. _failures];

    /// <summary>Requests in flight to a node now.</summary>
    public int InFlightTo(ClusterNode node) => _inFlight.GetValueOrDefault(node.Name);

    /// <summary>Completes once <paramref name="count"/> chunks are acknowledged.</summary>
    public Task WhenAcknowledged(int count)
    {
        lock (_waiters)
        {
            if (_acknowledged.Count >= count)
                return Task.CompletedTask;
            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((count, reached));
            return reached.Task;
        }
    }

    /// <summary>Sends the chunks (all, by default) with <paramref name="inflight"/> requests at a time, round-robin over the nodes.</summary>
    public async Task SendAsync(int inflight, IEnumerable<int>? chunks = null, CancellationToken cancellationToken = default)
    {
        var queue = new ConcurrentQueue<int>(chunks ?? Enumerable.Range(1, TotalChunks));
        async Task Worker()
        {
            while (queue.TryDequeue(out int chunk))
                await SendChunkAsync(chunk, cancellationToken);
        }

        await Task.WhenAll(Enumerable.Range(0, inflight).Select(_ => Task.Run(Worker, cancellationToken)));
    }

    /// <summary>One chunk: to the next node in turn, then to the following ones until a node acknowledges it.</summary>
    public async Task SendChunkAsync(int chunk, CancellationToken cancellationToken = default)
    {
        int start = Interlocked.Increment(ref _cursor);
        for (int attempt = 0; ; attempt++)
        {
            var node = cluster.Nodes[(start + attempt) % cluster.Nodes.Count];
            if (attempt > 0)
            {
                Interlocked.Increment(ref _resends);
                _resentChunks.TryAdd(chunk, 0);
            }

            string failure;
            _inFlight.AddOrUpdate(node.Name, 1, (_, n) => n + 1);
            try
            {
                using var response = await PostAsync(node, chunk, cancellationToken);
                int status = (int)response.StatusCode;
                if (status == 200)
                {
                    Acknowledge(chunk, node.Name);
                    return;
                }

                string body = await response.Content.ReadAsStringAsync(cancellationToken);
                if (Permanent.Contains(status))
                    throw new InvalidOperationException($"POST chunk {chunk} of {identifier} to {node.Name} answered {status}: {body}\n{cluster.LogTails()}");
                failure = $"{status} {body}";
                if (response.Headers.RetryAfter?.Delta is { } wait)
                    await Task.Delay(wait < TimeSpan.FromSeconds(1) ? wait : TimeSpan.FromSeconds(1), cancellationToken); // as told, bounded
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException || (ex is TaskCanceledException && !cancellationToken.IsCancellationRequested))
            {
                failure = ex.GetType().Name + " " + ex.Message;
            }
            finally
            {
                _inFlight.AddOrUpdate(node.Name, 0, (_, n) => n - 1);
            }

            _failures.Enqueue($"chunk {chunk} on {node.Name}: {failure}");
            if (attempt + 1 >= MaxAttempts)
                throw new InvalidOperationException($"Chunk {chunk} of {identifier} failed {MaxAttempts} times; last: {failure}\n{cluster.LogTails()}");
        }
    }

    /// <summary>One multipart POST of a chunk to a node, as resumable.js sends it.</summary>
    public async Task<HttpResponseMessage> PostAsync(ClusterNode node, int chunk, CancellationToken cancellationToken = default)
    {
        var (offset, length) = RangeOf(chunk);
        var parameters = Parameters(chunk);
        var form = new MultipartFormDataContent("----ChunkUploadCluster" + chunk.ToString(CultureInfo.InvariantCulture));
        foreach (var (name, value) in parameters)
        {
            var field = new ByteArrayContent(Encoding.UTF8.GetBytes(value));
            field.Headers.ContentDisposition = new ContentDispositionHeaderValue("form-data") { Name = $"\"{name}\"" };
            form.Add(field);
        }

        var part = new FileSliceContent(file, offset, length);
        part.Headers.ContentDisposition = new ContentDispositionHeaderValue("form-data") { Name = "\"file\"", FileName = $"\"{fileName}\"" };
        part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(part);
        using var request = new HttpRequestMessage(HttpMethod.Post, node.Url("/upload?" + Query(parameters))) { Content = form };
        Authorize?.Invoke(request);
        return await cluster.Http.SendAsync(request, cancellationToken);
    }

    /// <summary>resumable.js's test GET for a chunk: 200 when the node says it is stored, 204 when not.</summary>
    public async Task<HttpStatusCode> TestChunkAsync(ClusterNode node, int chunk)
    {
        using var response = await SendTestChunkAsync(node, chunk);
        return response.StatusCode;
    }

    /// <summary>The chunk test GET's whole answer.</summary>
    public async Task<HttpResponseMessage> SendTestChunkAsync(ClusterNode node, int chunk)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, node.Url("/upload?" + Query(Parameters(chunk))));
        Authorize?.Invoke(request);
        var response = await cluster.Http.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    private void Acknowledge(int chunk, string node)
    {
        _acknowledged[chunk] = node;
        lock (_waiters)
        {
            foreach (var waiter in _waiters.Where(w => _acknowledged.Count >= w.Count).ToList())
            {
                waiter.Reached.TrySetResult();
                _waiters.Remove(waiter);
            }
        }
    }

    private List<(string Name, string Value)> Parameters(int chunk) =>
    [
        ("resumableChunkNumber", chunk.ToString(CultureInfo.InvariantCulture)),
        ("resumableChunkSize", chunkSize.ToString(CultureInfo.InvariantCulture)),
        ("resumableCurrentChunkSize", RangeOf(chunk).Length.ToString(CultureInfo.InvariantCulture)),
        ("resumableTotalSize", size.ToString(CultureInfo.InvariantCulture)),
        ("resumableType", "application/octet-stream"),
        ("resumableIdentifier", identifier),
        ("resumableFilename", fileName),
        ("resumableRelativePath", fileName),
        ("resumableTotalChunks", TotalChunks.ToString(CultureInfo.InvariantCulture)),
    ];

    private static string Query(List<(string Name, string Value)> parameters) =>
        string.Join('&', parameters.Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value)}"));
}
