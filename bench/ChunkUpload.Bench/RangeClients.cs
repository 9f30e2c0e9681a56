using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using Microsoft.Win32.SafeHandles;

namespace ChunkUpload.Bench;

/// <summary>
/// Google-style resumable upload of the whole file as one PUT to <c>/upload/{name}</c> (Content-Range
/// <c>bytes 0-(size-1)/size</c>), the shape of YouTube/Drive/GCS clients sending a file in a single request. Complete
/// when the PUT is answered 200/201 (ChunkUpload answers once the file is complete and hashed).
/// </summary>
internal sealed class GoogleClient(HttpClient http, Uri baseUri)
{
    public async Task<UploadTiming> UploadAsync(SafeFileHandle file, long size, string name, TimeSpan bound, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(bound);
        var start = Stopwatch.GetTimestamp();
        var content = new FileSliceContent(file, 0, size);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        if (size > 0)
            content.Headers.ContentRange = new ContentRangeHeaderValue(0, size - 1, size);
        using var put = new HttpRequestMessage(HttpMethod.Put, new Uri(baseUri, "upload/" + name)) { Content = content };
        using var response = await http.SendAsync(put, timeout.Token);
        var body = await response.Content.ReadAsStringAsync(timeout.Token);
        if (response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.Created))
            throw new BenchException($"Google-style PUT answered {(int)response.StatusCode}: {ResumableClient.Shorten(body)}");
        return new UploadTiming(Stopwatch.GetElapsedTime(start).TotalSeconds, 0, null, 0);
    }
}

/// <summary>
/// The nginx upload module's resumable mode: segments of the chunk size POSTed to <c>/nginx-upload</c> with
/// <c>Session-ID</c>, <c>X-Content-Range: bytes a-b/total</c> and <c>Content-Disposition</c>, C in flight; each is
/// answered 201 with the merged ranges, the one that completes the file 200.
/// </summary>
internal sealed class NginxClient(HttpClient http, Uri baseUri)
{
    public async Task<UploadTiming> UploadAsync(SafeFileHandle file, long size, long segment, int inflight, string session, string fileName, TimeSpan bound, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(bound);
        var ct = timeout.Token;
        long count = Math.Max((size + segment - 1) / segment, 1);
        long next = -1;
        long lastAck = 0;
        var start = Stopwatch.GetTimestamp();

        async Task Worker()
        {
            long n;
            while ((n = Interlocked.Increment(ref next)) < count)
            {
                long offset = n * segment, length = Math.Min(segment, size - offset);
                var content = new FileSliceContent(file, offset, length);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                content.Headers.ContentDisposition = new ContentDispositionHeaderValue("attachment") { FileName = "\"" + fileName + "\"" };
                using var post = new HttpRequestMessage(HttpMethod.Post, new Uri(baseUri, "nginx-upload")) { Content = content };
                post.Headers.Add("Session-ID", session);
                post.Headers.Add("X-Content-Range", string.Create(CultureInfo.InvariantCulture, $"bytes {offset}-{offset + length - 1}/{size}"));
                using var response = await http.SendAsync(post, ct);
                if (response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.Created))
                    throw new BenchException($"nginx-style segment at {offset} answered {(int)response.StatusCode}: {ResumableClient.Shorten(await response.Content.ReadAsStringAsync(ct))}");
                Interlocked.Exchange(ref lastAck, Stopwatch.GetTimestamp());
            }
        }

        await Task.WhenAll(Enumerable.Range(0, (int)Math.Min(inflight, count)).Select(_ => Task.Run(Worker, ct)));
        return new UploadTiming(Stopwatch.GetElapsedTime(start).TotalSeconds, 0, null, 0);
    }
}
