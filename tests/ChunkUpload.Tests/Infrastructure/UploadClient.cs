using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>Which client's wire format a request imitates.</summary>
public enum ClientKind
{
    /// <summary>resumable.js multipart: parameters as fields and repeated in the query string.</summary>
    ResumableMultipart,

    /// <summary>resumable.js octet: raw body, parameters in the query string, Content-Type application/octet-stream.</summary>
    ResumableOctet,

    /// <summary>flow.js multipart: flow* parameters only as fields, empty query string.</summary>
    FlowMultipart,

    /// <summary>flow.js octet: raw body without Content-Type, flow* parameters in the query string.</summary>
    FlowOctet,
}

/// <summary>A file as resumable.js/flow.js would cut it, and the requests they send for it.</summary>
public sealed class UploadClient(HttpClient http)
{
    public HttpClient Http { get; } = http;

    public static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static string Sha256Hex(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    public static Dictionary<string, string> Parameters(ClientKind kind, TestFile file, int chunk)
    {
        string p = kind is ClientKind.FlowMultipart or ClientKind.FlowOctet ? "flow" : "resumable";
        var values = new Dictionary<string, string>
        {
            [p + "ChunkNumber"] = chunk.ToString(CultureInfo.InvariantCulture),
            [p + "ChunkSize"] = file.ChunkSize.ToString(CultureInfo.InvariantCulture),
            [p + "CurrentChunkSize"] = file.LengthOf(chunk).ToString(CultureInfo.InvariantCulture),
            [p + "TotalSize"] = file.Data.LongLength.ToString(CultureInfo.InvariantCulture),
            [p + "Identifier"] = file.Identifier,
            [p + "Filename"] = file.Name,
            [p + "RelativePath"] = file.Name,
            [p + "TotalChunks"] = file.TotalChunks.ToString(CultureInfo.InvariantCulture),
        };
        if (p == "resumable")
            values["resumableType"] = "";
        return values;
    }

    public static string Query(IEnumerable<KeyValuePair<string, string>> values) =>
        string.Join('&', values.Select(kv => Uri.EscapeDataString(kv.Key) + "=" + Uri.EscapeDataString(kv.Value)));

    public Task<HttpResponseMessage> TestChunkAsync(TestFile file, int chunk, ClientKind kind = ClientKind.ResumableMultipart) =>
        Http.GetAsync("/upload?" + Query(Parameters(kind, file, chunk)));

    public Task<HttpResponseMessage> PostChunkAsync(TestFile file, int chunk, ClientKind kind = ClientKind.ResumableMultipart, CancellationToken cancellationToken = default) =>
        PostAsync(Parameters(kind, file, chunk), file.Slice(chunk), kind, cancellationToken);

    public Task<HttpResponseMessage> PostAsync(IDictionary<string, string> parameters, ReadOnlyMemory<byte> body, ClientKind kind, CancellationToken cancellationToken = default)
    {
        HttpContent content;
        string url = "/upload";
        switch (kind)
        {
            case ClientKind.ResumableMultipart:
            case ClientKind.FlowMultipart:
                var form = new MultipartFormDataContent();
                foreach (var (name, value) in parameters)
                    form.Add(new StringContent(value), name);
                var part = new ReadOnlyMemoryContent(body);
                part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                // The part's own filename is not read by the server (the name comes from the Filename parameter);
                // "blob" keeps hostile names out of the test client's header formatting.
                form.Add(part, "file", "blob");
                content = form;
                if (kind == ClientKind.ResumableMultipart)
                    url += "?" + Query(parameters);
                break;
            case ClientKind.ResumableOctet:
                content = new ReadOnlyMemoryContent(body);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                url += "?" + Query(parameters);
                break;
            default:
                content = new ReadOnlyMemoryContent(body);
                url += "?" + Query(parameters);
                break;
        }

        return Http.PostAsync(url, content, cancellationToken);
    }

    public async Task<JsonElement> StatusAsync(string identifier)
    {
        using var response = await Http.GetAsync("/uploads/" + Uri.EscapeDataString(identifier));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>Polls the status until it is complete (assembly is asynchronous), failing after a deadline.</summary>
    public async Task<JsonElement> WaitForCompleteAsync(string identifier, int timeoutSeconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (true)
        {
            var status = await StatusAsync(identifier);
            string state = status.GetProperty("state").GetString()!;
            if (state == "complete")
                return status;
            Assert.NotEqual("failed", state);
            Assert.True(DateTime.UtcNow < deadline, $"Upload {identifier} still {state} after {timeoutSeconds} s.");
            await Task.Delay(10);
        }
    }

    public async Task UploadAllAsync(TestFile file, ClientKind kind = ClientKind.ResumableMultipart, IEnumerable<int>? order = null)
    {
        foreach (int chunk in order ?? Enumerable.Range(1, file.TotalChunks))
        {
            using var response = await PostChunkAsync(file, chunk, kind);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }
}

/// <summary>A file cut like resumable.js cuts it (../shared/PROTOCOLS.md 2.2).</summary>
public sealed record TestFile(string Identifier, string Name, byte[] Data, long ChunkSize, bool ForceChunkSize = false)
{
    public int TotalChunks => (int)Math.Max(ForceChunkSize ? (Data.LongLength + ChunkSize - 1) / ChunkSize : Data.LongLength / ChunkSize, 1);

    public long OffsetOf(int chunk) => (chunk - 1) * ChunkSize;

    public long LengthOf(int chunk) => chunk == TotalChunks ? Data.LongLength - OffsetOf(chunk) : ChunkSize;

    public ReadOnlyMemory<byte> Slice(int chunk) => Data.AsMemory((int)OffsetOf(chunk), (int)LengthOf(chunk));

    public string Sha256 => UploadClient.Sha256Hex(Data);

    public static TestFile Random(string identifier, int size, long chunkSize, int seed = 1, string? name = null, bool force = false) =>
        new(identifier, name ?? identifier + ".bin", UploadClient.RandomBytes(size, seed), chunkSize, force);
}
