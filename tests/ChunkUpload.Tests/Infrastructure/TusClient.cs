using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Mvc.Testing;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>
/// tus 1.0.0 requests as tus-js-client sends them (Tus-Resumable on every request but OPTIONS, upload URLs from
/// Location), with every header under the test's control so hostile values go out as given.
/// </summary>
public sealed class TusClient(HttpClient http)
{
    public const string Version = "1.0.0";
    public const string OffsetOctetStream = "application/offset+octet-stream";

    public HttpClient Http { get; } = http;

    /// <summary>
    /// A client of the in-process server that sends bodies as they are: without the factory's redirect handler, which
    /// buffers a request body whole before sending it (a streamed body would go out with a Content-Length, a stalled
    /// one never).
    /// </summary>
    public static TusClient Of(ChunkUploadApplication app, string? apiKey = null)
    {
        var http = app.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        if (apiKey is not null)
            http.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        return new TusClient(http);
    }

    /// <summary>An <c>Upload-Metadata</c> value: each key with its UTF-8 value in base64 (a null value sends the key alone).</summary>
    public static string Metadata(params (string Key, string? Value)[] pairs) =>
        string.Join(',', pairs.Select(p => p.Value is null ? p.Key : p.Key + " " + Convert.ToBase64String(Encoding.UTF8.GetBytes(p.Value))));

    /// <summary>The upload id: the last segment of its URL.</summary>
    public static string IdOf(string location) => Uri.UnescapeDataString(location[(location.LastIndexOf('/') + 1)..]);

    public static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? string.Join(", ", values)
            : null;

    /// <summary>The digest of <paramref name="data"/> with a tus checksum algorithm (sha1, md5, sha256, sha512).</summary>
    public static byte[] Digest(string algorithm, byte[] data)
    {
        using var hash = IncrementalHash.CreateHash(algorithm switch
        {
            "sha1" => HashAlgorithmName.SHA1,
            "md5" => HashAlgorithmName.MD5,
            "sha256" => HashAlgorithmName.SHA256,
            "sha512" => HashAlgorithmName.SHA512,
            _ => throw new ArgumentException("Not a tus checksum algorithm: " + algorithm, nameof(algorithm)),
        });
        hash.AppendData(data);
        return hash.GetHashAndReset();
    }

    /// <summary>An <c>Upload-Checksum</c> value for <paramref name="data"/>.</summary>
    public static string Checksum(string algorithm, byte[] data) => algorithm + " " + Convert.ToBase64String(Digest(algorithm, data));

    public static long OffsetOf(HttpResponseMessage response) =>
        long.Parse(Header(response, "Upload-Offset") ?? throw new InvalidOperationException($"No Upload-Offset in a {(int)response.StatusCode}."), CultureInfo.InvariantCulture);

    /// <summary>
    /// Any request. <paramref name="headers"/> are added without validation (a name given twice is sent twice);
    /// Tus-Resumable is added unless <paramref name="tusResumable"/> is null or the headers name it.
    /// </summary>
    public Task<HttpResponseMessage> SendAsync(HttpMethod method, string url, HttpContent? content = null,
        IEnumerable<(string Name, string Value)>? headers = null, string? tusResumable = Version, CancellationToken cancellationToken = default)
    {
        var request = new HttpRequestMessage(method, url) { Content = content };
        var list = headers?.ToList() ?? [];
        if (tusResumable is not null && !list.Any(h => h.Name.Equals("Tus-Resumable", StringComparison.OrdinalIgnoreCase)))
            request.Headers.TryAddWithoutValidation("Tus-Resumable", tusResumable);
        foreach (var (name, value) in list)
        {
            if (!request.Headers.TryAddWithoutValidation(name, value))
            {
                request.Content ??= new ByteArrayContent([]);
                request.Content.Headers.TryAddWithoutValidation(name, value);
            }
        }

        return Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
    }

    public Task<HttpResponseMessage> OptionsAsync(string url = "/tus") => SendAsync(HttpMethod.Options, url, tusResumable: null);

    /// <summary>A creation POST: Upload-Length (or Upload-Defer-Length: 1), optional metadata, concat and first bytes.</summary>
    public Task<HttpResponseMessage> CreateAsync(long? length, string? metadata = null, bool defer = false, string? concat = null,
        byte[]? body = null, IEnumerable<(string Name, string Value)>? headers = null)
    {
        var list = new List<(string, string)>();
        if (length is { } l)
            list.Add(("Upload-Length", l.ToString(CultureInfo.InvariantCulture)));
        if (defer)
            list.Add(("Upload-Defer-Length", "1"));
        if (metadata is not null)
            list.Add(("Upload-Metadata", metadata));
        if (concat is not null)
            list.Add(("Upload-Concat", concat));
        list.AddRange(headers ?? []);
        return SendAsync(HttpMethod.Post, "/tus", body is null ? null : Octets(body), list);
    }

    /// <summary>Creates an upload and returns its URL (path), asserting the 201.</summary>
    public async Task<string> CreateUploadAsync(long? length, string? metadata = null, bool defer = false, string? concat = null)
    {
        using var response = await CreateAsync(length, metadata, defer, concat);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return response.Headers.Location!.OriginalString;
    }

    public Task<HttpResponseMessage> HeadAsync(string location, IEnumerable<(string Name, string Value)>? headers = null) =>
        SendAsync(HttpMethod.Head, location, headers: headers);

    /// <summary>The durable offset the server reports (HEAD), asserting the 200.</summary>
    public async Task<long> OffsetAsync(string location)
    {
        using var response = await HeadAsync(location);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return OffsetOf(response);
    }

    public Task<HttpResponseMessage> PatchAsync(string location, long offset, byte[] body, IEnumerable<(string Name, string Value)>? headers = null) =>
        PatchAsync(location, offset.ToString(CultureInfo.InvariantCulture), Octets(body), headers);

    public Task<HttpResponseMessage> PatchAsync(string location, string? offset, HttpContent content,
        IEnumerable<(string Name, string Value)>? headers = null, CancellationToken cancellationToken = default)
    {
        var list = new List<(string, string)>();
        if (offset is not null)
            list.Add(("Upload-Offset", offset));
        list.AddRange(headers ?? []);
        return SendAsync(HttpMethod.Patch, location, content, list, cancellationToken: cancellationToken);
    }

    public Task<HttpResponseMessage> DeleteAsync(string location) => SendAsync(HttpMethod.Delete, location);

    /// <summary>Creates an upload and sends the whole file in one PATCH (tus-js-client's defaults); returns the URL.</summary>
    public async Task<string> UploadAsync(byte[] data, string? metadata = null)
    {
        string location = await CreateUploadAsync(data.LongLength, metadata);
        using var patch = await PatchAsync(location, 0, data);
        Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        Assert.Equal(data.LongLength, OffsetOf(patch));
        return location;
    }

    public static ByteArrayContent Octets(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(OffsetOctetStream);
        return content;
    }
}

/// <summary>
/// A request body that sends <paramref name="prefix"/> and then stalls until released (a client whose connection
/// hangs mid-PATCH). <see cref="Stalled"/> completes once every prefix byte was taken by the transport and more was asked for.
/// </summary>
public sealed class StallingContent(byte[] prefix, byte[]? rest = null) : HttpContent
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stalled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Stalled => _stalled.Task;

    /// <summary>Lets the body go on: the rest is sent (or the body ends when there is none).</summary>
    public void Release() => _release.TrySetResult();

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        await SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        // Small writes: the transport asks for more only once it took the earlier ones.
        for (int sent = 0; sent < prefix.Length; sent += 16 * 1024)
        {
            await stream.WriteAsync(prefix.AsMemory(sent, Math.Min(16 * 1024, prefix.Length - sent)), cancellationToken);
            await stream.FlushAsync(cancellationToken);
        }

        _stalled.TrySetResult();
        await _release.Task.WaitAsync(cancellationToken);
        if (rest is not null)
            await stream.WriteAsync(rest, cancellationToken);
    }

    protected override bool TryComputeLength(out long length)
    {
        length = prefix.Length + (rest?.Length ?? 0);
        return true;
    }

    protected override void Dispose(bool disposing)
    {
        _release.TrySetResult();
        base.Dispose(disposing);
    }
}
