using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// Every protocol on every backend (local disk, PostgreSQL metadata, S3 data, both): the same upload comes back
/// byte-identical with its SHA-256, and a DELETE removes it. The file is large enough for several S3 parts, and the
/// nginx segments arrive out of order and smaller than a part, so S3 fragments are joined into parts.
/// </summary>
public sealed class BackendMatrixTests : IDisposable
{
    private const int MiB = 1024 * 1024;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<Backend, string> Cases()
    {
        var data = new TheoryData<Backend, string>();
        foreach (var backend in new[] { Backend.LocalLocal, Backend.PostgresLocal, Backend.LocalS3, Backend.PostgresS3 })
        {
            foreach (var protocol in new[] { "resumable", "tus", "ietf", "fineuploader", "google", "nginx", "append" })
                data.Add(backend, protocol);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task An_Upload_Comes_Back_Byte_Identical_And_Is_Deleted(Backend backend, string protocol)
    {
        var settings = await backend.SettingsAsync();
        settings["Upload:RecommendedChunkSize"] = (6 * MiB).ToString(CultureInfo.InvariantCulture);
        using var app = new ChunkUploadApplication(Path.Combine(_dir.Path, backend + "-" + protocol), settings);
        var http = app.CreateClient();
        var data = UploadClient.RandomBytes((12 * MiB) + 12345, protocol.Length);
        string id = await UploadAsync(http, protocol, data);

        var status = await new UploadClient(http).WaitForCompleteAsync(id);
        Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());
        Assert.Equal(data, await http.GetByteArrayAsync("/files/" + Uri.EscapeDataString(id)));

        using (var delete = await http.DeleteAsync("/uploads/" + Uri.EscapeDataString(id)))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using (var gone = await http.GetAsync("/uploads/" + Uri.EscapeDataString(id)))
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    private static async Task<string> UploadAsync(HttpClient http, string protocol, byte[] data)
    {
        switch (protocol)
        {
            case "resumable":
            {
                var file = new TestFile("matrix-" + Guid.NewGuid().ToString("N"), "matrix.bin", data, 6 * MiB);
                await new UploadClient(http).UploadAllAsync(file, ClientKind.ResumableMultipart, order: Enumerable.Range(1, file.TotalChunks).Reverse());
                return file.Identifier;
            }

            case "tus":
            {
                using var create = new HttpRequestMessage(HttpMethod.Post, "/tus") { Content = new ByteArrayContent([]) };
                create.Headers.Add("Tus-Resumable", "1.0.0");
                create.Headers.Add("Upload-Length", data.Length.ToString(CultureInfo.InvariantCulture));
                using var created = await http.SendAsync(create);
                Assert.Equal(HttpStatusCode.Created, created.StatusCode);
                string url = created.Headers.Location!.OriginalString;
                // A PATCH that ends in the middle of a part, then the rest: on S3 the middle part is joined from two pieces.
                foreach (var (from, to) in new[] { (0, (7 * MiB) + 100), ((7 * MiB) + 100, data.Length) })
                {
                    var content = new ByteArrayContent(data, from, to - from);
                    content.Headers.ContentType = new MediaTypeHeaderValue("application/offset+octet-stream");
                    using var patch = new HttpRequestMessage(HttpMethod.Patch, url) { Content = content };
                    patch.Headers.Add("Tus-Resumable", "1.0.0");
                    patch.Headers.Add("Upload-Offset", from.ToString(CultureInfo.InvariantCulture));
                    using var patched = await http.SendAsync(patch);
                    Assert.Equal(HttpStatusCode.NoContent, patched.StatusCode);
                }

                return url[(url.LastIndexOf('/') + 1)..];
            }

            case "ietf":
            {
                var content = new ByteArrayContent(data);
                using var create = new HttpRequestMessage(HttpMethod.Post, "/rufh") { Content = content };
                create.Headers.Add("Upload-Complete", "?1");
                using var created = await http.SendAsync(create);
                Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
                string url = created.Headers.Location!.OriginalString;
                return url[(url.LastIndexOf('/') + 1)..];
            }

            case "fineuploader":
            {
                string uuid = Guid.NewGuid().ToString();
                var content = new ByteArrayContent(data);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                using var posted = await http.PostAsync($"/fineuploader?qquuid={uuid}&qqfilename=matrix.bin&qqtotalfilesize={data.Length}", content);
                Assert.True(posted.IsSuccessStatusCode, await posted.Content.ReadAsStringAsync());
                return uuid;
            }

            case "google":
            {
                string name = "matrix-" + Guid.NewGuid().ToString("N") + ".bin";
                var content = new ByteArrayContent(data);
                content.Headers.ContentRange = new ContentRangeHeaderValue(0, data.Length - 1, data.Length);
                using var put = await http.PutAsync("/upload/" + name, content);
                Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
                return name;
            }

            case "nginx":
            {
                string session = "matrix" + Guid.NewGuid().ToString("N");
                int segment = 4 * MiB;
                var starts = Enumerable.Range(0, (data.Length + segment - 1) / segment).Select(i => i * segment).Reverse();
                foreach (int from in starts)
                {
                    int length = Math.Min(segment, data.Length - from);
                    var content = new ByteArrayContent(data, from, length);
                    content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                    content.Headers.ContentDisposition = new ContentDispositionHeaderValue("attachment") { FileName = "\"matrix.bin\"" };
                    using var post = new HttpRequestMessage(HttpMethod.Post, "/nginx-upload") { Content = content };
                    post.Headers.Add("Session-ID", session);
                    post.Headers.Add("X-Content-Range", $"bytes {from}-{from + length - 1}/{data.Length}");
                    using var posted = await http.SendAsync(post);
                    Assert.True(posted.IsSuccessStatusCode, await posted.Content.ReadAsStringAsync());
                }

                return session;
            }

            default:
            {
                string id = "matrix.bin-" + data.Length + "-" + Guid.NewGuid().ToString("N");
                using var post = new HttpRequestMessage(HttpMethod.Post, "/append") { Content = new ByteArrayContent(data) };
                post.Headers.Add("X-File-Id", id);
                post.Headers.Add("X-Start-Byte", "0");
                using var posted = await http.SendAsync(post);
                Assert.True(posted.IsSuccessStatusCode, await posted.Content.ReadAsStringAsync());
                return id;
            }
        }
    }
}
