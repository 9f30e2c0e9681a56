using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace ChunkUpload.Bench;

/// <summary>
/// A tus 1.0.0 client as tus-js-client uploads with a chunkSize: POST (creation) with Upload-Length,
/// then sequential PATCHes of at most the chunk size, each checked against the returned Upload-Offset.
/// The upload is complete when the last PATCH is answered, so its tail is zero by construction.
/// </summary>
internal sealed class TusClient
{
    private readonly HttpClient _http;
    private readonly Uri _endpoint;

    public TusClient(HttpClient http, Uri baseUri, string path = "files")
    {
        _http = http;
        _endpoint = new Uri(baseUri, path);
    }

    /// <summary>Uploads <paramref name="length"/> bytes from <paramref name="offset"/>; returns the timing and the upload id.</summary>
    public async Task<(UploadTiming Timing, string Id)> UploadAsync(
        SafeFileHandle file, long offset, long length, long chunkSize, string fileName, TimeSpan bound, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(bound);
        var ct = timeout.Token;
        var start = Stopwatch.GetTimestamp();

        Uri location;
        using (var create = new HttpRequestMessage(HttpMethod.Post, _endpoint))
        {
            create.Headers.Add("Tus-Resumable", "1.0.0");
            create.Headers.Add("Upload-Length", length.ToString(CultureInfo.InvariantCulture));
            create.Headers.Add("Upload-Metadata", $"filename {B64(fileName)},filetype {B64("application/octet-stream")}");
            create.Content = new ByteArrayContent([]);
            using var response = await _http.SendAsync(create, ct);
            if (response.StatusCode != HttpStatusCode.Created || response.Headers.Location is null)
            {
                throw new BenchException($"tus POST answered {(int)response.StatusCode}: {ResumableClient.Shorten(await response.Content.ReadAsStringAsync(ct))}");
            }

            location = new Uri(_endpoint, response.Headers.Location);
        }

        for (long done = 0; done < length;)
        {
            var size = Math.Min(chunkSize, length - done);
            var content = new FileSliceContent(file, offset + done, size);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/offset+octet-stream");
            using var patch = new HttpRequestMessage(HttpMethod.Patch, location) { Content = content };
            patch.Headers.Add("Tus-Resumable", "1.0.0");
            patch.Headers.Add("Upload-Offset", done.ToString(CultureInfo.InvariantCulture));
            using var response = await _http.SendAsync(patch, ct);
            var newOffset = response.Headers.TryGetValues("Upload-Offset", out var values) ? values.FirstOrDefault() : null;
            if (response.StatusCode != HttpStatusCode.NoContent || newOffset != (done + size).ToString(CultureInfo.InvariantCulture))
            {
                throw new BenchException($"tus PATCH at {done} answered {(int)response.StatusCode}, Upload-Offset {newOffset}: {ResumableClient.Shorten(await response.Content.ReadAsStringAsync(ct))}");
            }

            done += size;
        }

        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return (new UploadTiming(seconds, 0, null, 0), location.Segments[^1]);
    }

    private static string B64(string value) => Convert.ToBase64String(Encoding.UTF8.GetBytes(value));
}

/// <summary>The raw limit: one streaming PUT of the whole file to bench/RawPut.</summary>
internal sealed class RawPutClient
{
    private readonly HttpClient _http;
    private readonly Uri _baseUri;

    public RawPutClient(HttpClient http, Uri baseUri)
    {
        _http = http;
        _baseUri = baseUri;
    }

    public async Task<UploadTiming> UploadAsync(SafeFileHandle file, long length, string name, bool fsync, TimeSpan bound, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(bound);
        var start = Stopwatch.GetTimestamp();
        var content = new FileSliceContent(file, 0, length);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var put = new HttpRequestMessage(HttpMethod.Put, new Uri(_baseUri, $"raw/{name}?fsync={(fsync ? "true" : "false")}")) { Content = content };
        using var response = await _http.SendAsync(put, timeout.Token);
        var body = await response.Content.ReadAsStringAsync(timeout.Token);
        if (response.StatusCode != HttpStatusCode.OK || body != length.ToString(CultureInfo.InvariantCulture))
        {
            throw new BenchException($"raw PUT answered {(int)response.StatusCode}: {ResumableClient.Shorten(body)}");
        }

        return new UploadTiming(Stopwatch.GetElapsedTime(start).TotalSeconds, 0, null, 0);
    }
}
