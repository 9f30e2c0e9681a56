using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>The Google-style resumable protocol at /upload/{name}: initiation, chunks, 308 + Range, status queries, completion.</summary>
public sealed class GoogleProtocolTests : IDisposable
{
    private const int Quantum = 262_144; // Google's chunk multiple (256 KiB)
    private readonly ProtocolServer _server = new();

    private HttpClient Http => _server.Http;

    public void Dispose() => _server.Dispose();

    [Fact]
    public async Task Initiation_Returns_200_With_The_Session_Url_Then_Chunks_Get_308_With_Range_And_The_Last_200()
    {
        // PROTOCOLS.md section 10, Google-style: 2,469,036 bytes in 256 KiB chunks, the middle one with an unknown total.
        var data = UploadClient.RandomBytes(2_469_036, 1);
        var init = new HttpRequestMessage(HttpMethod.Post, "/upload/video-1.mp4?uploadType=resumable")
        {
            Content = JsonContent.Create(new { name = "My Video.mp4", contentType = "video/mp4" }),
        };
        init.Headers.Add("X-Upload-Content-Type", "video/mp4");
        init.Headers.Add("X-Upload-Content-Length", "2469036");
        Uri session;
        using (var response = await Http.SendAsync(init))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            session = response.Headers.Location!;
            Assert.True(session.IsAbsoluteUri);
            Assert.Equal("/upload/video-1.mp4", session.AbsolutePath);
        }

        foreach (string query in new[] { "bytes */2469036", "bytes */*" })
        {
            using var fresh = await PutAsync(session.PathAndQuery, [], query);
            Assert.Equal(308, (int)fresh.StatusCode);
            Assert.Null(RangeOf(fresh)); // nothing stored: no Range at all (PROTOCOLS.md 9.11)
            Assert.Null(fresh.Headers.Location);
        }

        using (var first = await PutAsync(session.PathAndQuery, data[..Quantum], "bytes 0-262143/2469036"))
        {
            Assert.Equal(308, (int)first.StatusCode);
            Assert.Equal("bytes=0-262143", RangeOf(first));
            Assert.Null(first.Headers.Location);
        }

        using (var unknownTotal = await PutAsync(session.PathAndQuery, data[Quantum..(2 * Quantum)], "bytes 262144-524287/*"))
        {
            Assert.Equal(308, (int)unknownTotal.StatusCode);
            Assert.Equal("bytes=0-524287", RangeOf(unknownTotal));
        }

        using (var query = await PutAsync(session.PathAndQuery, [], "bytes */2469036"))
            Assert.Equal("bytes=0-524287", RangeOf(query));

        using (var last = await PutAsync(session.PathAndQuery, data[(2 * Quantum)..], "bytes 524288-2469035/2469036"))
        {
            Assert.Equal(HttpStatusCode.OK, last.StatusCode);
            Assert.Equal("application/json", last.Content.Headers.ContentType!.MediaType);
            var status = await last.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("video-1.mp4", status.GetProperty("identifier").GetString());
            Assert.Equal("complete", status.GetProperty("state").GetString());
            Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());
        }

        using (var after = await PutAsync(session.PathAndQuery, [], "bytes */*"))
            Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        var upload = await _server.Uploads.StatusAsync("video-1.mp4");
        Assert.Equal("google", upload.GetProperty("protocol").GetString());
        Assert.Equal("My Video.mp4", upload.GetProperty("fileName").GetString());
        Assert.Equal(data, await _server.DownloadAsync("video-1.mp4"));
    }

    [Theory]
    [InlineData("single-1.bin", null, true)] // burgalon: the whole file, no Content-Range
    [InlineData("single-2.bin", "bytes 0-*/100000", true)] // @google-cloud/storage single-request mode
    [InlineData("single-3.bin", "bytes 0-*/*", true)]
    [InlineData("single-4.bin", "bytes 0-99999/100000", true)]
    [InlineData("single-5.bin", "bytes 0-*/*", false)] // no Content-Length: the file ends where the body ends
    [InlineData("single-6.bin", null, false)]
    public async Task A_Single_Put_Uploads_The_Whole_File(string name, string? contentRange, bool contentLength)
    {
        var data = UploadClient.RandomBytes(100_000, 2);
        var request = new HttpRequestMessage(HttpMethod.Put, "/upload/" + name)
        {
            Content = contentLength ? new ByteArrayContent(data) : new StreamContent(new MemoryStream(data)),
        };
        if (!contentLength)
            request.Headers.TransferEncodingChunked = true;
        if (contentRange is not null)
            request.Content.Headers.TryAddWithoutValidation("Content-Range", contentRange);
        using var response = await Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var status = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(100_000, status.GetProperty("totalSize").GetInt64());
        Assert.Equal(data, await _server.DownloadAsync(name));
    }

    [Fact]
    public async Task A_Body_That_Breaks_Off_Is_Reported_By_The_Next_308_And_The_Client_Resumes_From_There()
    {
        var data = UploadClient.RandomBytes(500_000, 3);
        var whole = new HttpRequestMessage(HttpMethod.Put, "/upload/cut-1.bin") { Content = new ByteArrayContent(data) };
        await _server.SendBrokenAsync(whole, data, 123_457);

        using (var query = await PutAsync("/upload/cut-1.bin", [], "bytes */*"))
        {
            Assert.Equal(308, (int)query.StatusCode);
            Assert.Equal("bytes=0-123456", RangeOf(query));
        }

        using (var rest = await PutAsync("/upload/cut-1.bin", data[123_457..], "bytes 123457-499999/500000"))
            Assert.Equal(HttpStatusCode.OK, rest.StatusCode);
        Assert.Equal(data, await _server.DownloadAsync("cut-1.bin"));
    }

    [Fact]
    public async Task A_Status_Query_While_An_Earlier_Put_Is_Still_Open_Reports_Every_Byte_It_Delivered()
    {
        // A client whose connection went quiet (not closed) asks where to resume: the open PUT is ended first, so the
        // 308 names everything it delivered rather than what happened to be stored a moment earlier.
        var data = UploadClient.RandomBytes(500_000, 6);
        var whole = new HttpRequestMessage(HttpMethod.Put, "/upload/quiet-1.bin") { Content = new ByteArrayContent(data) };
        await using (var open = await _server.SendStalledAsync(whole, data, 200_000))
        {
            using (var query = await PutAsync("/upload/quiet-1.bin", [], "bytes */500000"))
            {
                Assert.Equal(308, (int)query.StatusCode);
                Assert.Equal("bytes=0-199999", RangeOf(query));
            }

            await open.Finished;
        }

        using (var rest = await PutAsync("/upload/quiet-1.bin", data[200_000..], "bytes 200000-499999/500000"))
            Assert.Equal(HttpStatusCode.OK, rest.StatusCode);
        Assert.Equal(data, await _server.DownloadAsync("quiet-1.bin"));
    }

    [Fact]
    public async Task A_Chunk_That_Breaks_Off_Keeps_Its_Durable_Prefix()
    {
        var data = UploadClient.RandomBytes(3 * Quantum, 4);
        using (var first = await PutAsync("/upload/cut-2.bin", data[..Quantum], $"bytes 0-{Quantum - 1}/*"))
            Assert.Equal(308, (int)first.StatusCode);
        var chunk = data[Quantum..(2 * Quantum)];
        var request = new HttpRequestMessage(HttpMethod.Put, "/upload/cut-2.bin") { Content = new ByteArrayContent(chunk) };
        request.Content.Headers.TryAddWithoutValidation("Content-Range", $"bytes {Quantum}-{(2 * Quantum) - 1}/*");
        await _server.SendBrokenAsync(request, chunk, 1000);

        using var query = await PutAsync("/upload/cut-2.bin", [], "bytes */*");
        Assert.Equal(308, (int)query.StatusCode);
        Assert.Equal($"bytes=0-{Quantum + 999}", RangeOf(query));
        using (var rest = await PutAsync("/upload/cut-2.bin", data[(Quantum + 1000)..], $"bytes {Quantum + 1000}-{data.Length - 1}/{data.Length}"))
            Assert.Equal(HttpStatusCode.OK, rest.StatusCode);
        Assert.Equal(data, await _server.DownloadAsync("cut-2.bin"));
    }

    [Fact]
    public async Task An_Unknown_Total_Is_Named_By_A_Final_Status_Query()
    {
        var data = UploadClient.RandomBytes(2 * Quantum, 5);
        using (var first = await PutAsync("/upload/open-1.bin", data[..Quantum], $"bytes 0-{Quantum - 1}/*"))
            Assert.Equal("bytes=0-262143", RangeOf(first));
        using (var second = await PutAsync("/upload/open-1.bin", data[Quantum..], $"bytes {Quantum}-{(2 * Quantum) - 1}/*"))
        {
            Assert.Equal(308, (int)second.StatusCode); // every byte is in, but the total is still unknown
            Assert.Equal("bytes=0-524287", RangeOf(second));
        }

        using var final = await PutAsync("/upload/open-1.bin", [], $"bytes */{2 * Quantum}");
        Assert.Equal(HttpStatusCode.OK, final.StatusCode);
        Assert.Equal(data, await _server.DownloadAsync("open-1.bin"));
    }

    [Fact]
    public async Task A_Chunk_Past_The_Stored_End_Gets_308_With_The_Stored_Range_And_Nothing_Is_Kept()
    {
        var data = UploadClient.RandomBytes(1000, 6);
        using (var first = await PutAsync("/upload/gap-1.bin", data[..100], "bytes 0-99/1000"))
            Assert.Equal("bytes=0-99", RangeOf(first));
        using (var gap = await PutAsync("/upload/gap-1.bin", data[200..300], "bytes 200-299/1000"))
        {
            Assert.Equal(308, (int)gap.StatusCode);
            Assert.Equal("bytes=0-99", RangeOf(gap));
        }

        var status = await _server.Uploads.StatusAsync("gap-1.bin");
        Assert.Equal(100, status.GetProperty("storedBytes").GetInt64());
    }

    [Fact]
    public async Task A_Resent_Overlapping_Chunk_Has_Its_Stored_Prefix_Skipped()
    {
        var data = UploadClient.RandomBytes(300, 7);
        using (var first = await PutAsync("/upload/overlap-1.bin", data[..100], "bytes 0-99/300"))
            Assert.Equal("bytes=0-99", RangeOf(first));
        using (var overlap = await PutAsync("/upload/overlap-1.bin", data[50..200], "bytes 50-199/300"))
            Assert.Equal("bytes=0-199", RangeOf(overlap));
        using (var stale = await PutAsync("/upload/overlap-1.bin", data[..100], "bytes 0-99/300"))
            Assert.Equal("bytes=0-199", RangeOf(stale)); // all of it stored already: nothing changes
        using (var whole = await PutAsync("/upload/overlap-1.bin", data, null))
            Assert.Equal(HttpStatusCode.OK, whole.StatusCode); // burgalon re-sends the whole file: the rest is appended
        Assert.Equal(data, await _server.DownloadAsync("overlap-1.bin"));
    }

    [Fact]
    public async Task A_Total_That_Changes_Between_Requests_Is_400_And_Nothing_Of_It_Is_Stored()
    {
        var data = UploadClient.RandomBytes(100, 8);
        using (var first = await PutAsync("/upload/total-1.bin", data[..10], "bytes 0-9/100"))
            Assert.Equal(308, (int)first.StatusCode);
        using (var changed = await PutAsync("/upload/total-1.bin", data[10..20], "bytes 10-19/200"))
            await AssertGoogleErrorAsync(changed, 400, "length_conflict");
        using (var query = await PutAsync("/upload/total-1.bin", [], "bytes */300"))
            await AssertGoogleErrorAsync(query, 400, "length_conflict");
        using var status = await PutAsync("/upload/total-1.bin", [], "bytes */*");
        Assert.Equal("bytes=0-9", RangeOf(status));
    }

    [Fact]
    public async Task Unknown_Sessions_Are_404_So_The_Client_Starts_Again()
    {
        using (var query = await PutAsync("/upload/never-1.bin", [], "bytes */*"))
            await AssertGoogleErrorAsync(query, 404, "upload_not_found");
        using (var chunk = await PutAsync("/upload/never-1.bin", new byte[100], "bytes 100-199/1000"))
            await AssertGoogleErrorAsync(chunk, 404, "upload_not_found");
        Assert.Equal(HttpStatusCode.NotFound, await _server.UploadStatusCodeAsync("never-1.bin"));
    }

    [Fact]
    public async Task An_Upload_Of_Another_Protocol_Is_409_Wrong_Protocol()
    {
        var segment = new HttpRequestMessage(HttpMethod.Post, "/nginx-upload") { Content = new ByteArrayContent(new byte[6]) };
        segment.Headers.Add("Session-ID", "shared-google");
        segment.Content.Headers.TryAddWithoutValidation("Content-Type", "application/octet-stream");
        segment.Content.Headers.TryAddWithoutValidation("Content-Disposition", "attachment; filename=\"a.bin\"");
        segment.Content.Headers.TryAddWithoutValidation("X-Content-Range", "bytes 0-5/24");
        using (var created = await Http.SendAsync(segment))
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        using (var put = await PutAsync("/upload/shared-google", new byte[24], null))
            await AssertGoogleErrorAsync(put, 409, "wrong_protocol");
        using (var query = await PutAsync("/upload/shared-google", [], "bytes */*"))
            await AssertGoogleErrorAsync(query, 409, "wrong_protocol");
        using (var init = await Http.PostAsync("/upload/shared-google?uploadType=resumable", null))
            await AssertGoogleErrorAsync(init, 409, "wrong_protocol");
        Assert.Equal(6, (await _server.Uploads.StatusAsync("shared-google")).GetProperty("storedBytes").GetInt64());
    }

    [Fact]
    public async Task A_Finished_Upload_Answers_200_Refuses_A_New_Initiation_And_Can_Be_Deleted()
    {
        var data = UploadClient.RandomBytes(5000, 9);
        using (var put = await PutAsync("/upload/done-1.bin", data, null))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        using (var again = await PutAsync("/upload/done-1.bin", data, "bytes 0-4999/5000"))
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        using (var init = await Http.PostAsync("/upload/done-1.bin?uploadType=resumable", null))
            await AssertGoogleErrorAsync(init, 409, "upload_complete");
        Assert.Equal(data, await _server.DownloadAsync("done-1.bin"));

        using (var delete = await Http.DeleteAsync("/uploads/done-1.bin"))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using var gone = await PutAsync("/upload/done-1.bin", [], "bytes */*");
        await AssertGoogleErrorAsync(gone, 404, "upload_not_found");
    }

    [Fact]
    public async Task Initiating_Again_Keeps_An_Unfinished_Upload()
    {
        var data = UploadClient.RandomBytes(1000, 10);
        using (var init = await InitiateAsync("again-1.bin", "1000"))
            Assert.Equal(HttpStatusCode.OK, init.StatusCode);
        using (var first = await PutAsync("/upload/again-1.bin", data[..400], "bytes 0-399/1000"))
            Assert.Equal("bytes=0-399", RangeOf(first));
        using (var again = await InitiateAsync("again-1.bin", "1000"))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            Assert.EndsWith("/upload/again-1.bin", again.Headers.Location!.AbsolutePath, StringComparison.Ordinal);
        }

        using (var conflict = await InitiateAsync("again-1.bin", "2000"))
            await AssertGoogleErrorAsync(conflict, 400, "length_conflict");
        using var query = await PutAsync("/upload/again-1.bin", [], "bytes */1000");
        Assert.Equal("bytes=0-399", RangeOf(query));
    }

    [Fact]
    public async Task Names_With_Slashes_Round_Trip_Through_The_Session_Url()
    {
        var data = UploadClient.RandomBytes(2000, 11);
        Uri session;
        using (var init = await InitiateAsync("folder/sub/file 1.bin", "2000"))
            session = init.Headers.Location!;
        Assert.Equal("/upload/folder%2Fsub%2Ffile%201.bin", session.AbsolutePath);
        using (var put = await PutAsync(session.PathAndQuery, data, null))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(data, await Http.GetByteArrayAsync("/files/folder/sub/file%201.bin"));
        Assert.Equal("file 1.bin", (await _server.Uploads.StatusAsync("folder/sub/file 1.bin")).GetProperty("fileName").GetString());
        Assert.Equal([_server.Dir.StorageRoot], Directory.EnumerateFileSystemEntries(_server.Dir.Path));
    }

    [Fact]
    public async Task The_Upload_Path_Itself_Still_Belongs_To_Resumable_Js()
    {
        var file = TestFile.Random("resumable-beside-google", 2000, 1000);
        using (var probe = await Http.GetAsync("/upload?" + UploadClient.Query(UploadClient.Parameters(ClientKind.ResumableOctet, file, 1))))
            Assert.Equal(HttpStatusCode.NoContent, probe.StatusCode);
        foreach (var method in new[] { HttpMethod.Post, HttpMethod.Put })
        {
            int chunk = method == HttpMethod.Post ? 1 : 2;
            var request = new HttpRequestMessage(method, "/upload?" + UploadClient.Query(UploadClient.Parameters(ClientKind.ResumableOctet, file, chunk)))
            {
                Content = new ReadOnlyMemoryContent(file.Slice(chunk)),
            };
            using var response = await Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(chunk, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("chunkNumber").GetInt32());
        }

        Assert.Equal("resumable", (await _server.Uploads.WaitForCompleteAsync(file.Identifier)).GetProperty("protocol").GetString());
    }

    [Fact]
    public async Task A_Status_Query_With_A_Body_Is_400()
    {
        using (var init = await InitiateAsync("query-body.bin", "10"))
            Assert.Equal(HttpStatusCode.OK, init.StatusCode);
        using var query = await PutAsync("/upload/query-body.bin", new byte[5], "bytes */10");
        await AssertGoogleErrorAsync(query, 400, "invalid_parameter");
        Assert.Equal(0, (await _server.Uploads.StatusAsync("query-body.bin")).GetProperty("storedBytes").GetInt64());
    }

    internal static async Task<HttpResponseMessage> SendPutAsync(HttpClient http, string path, byte[] body, string? contentRange)
    {
        var request = new HttpRequestMessage(HttpMethod.Put, path) { Content = new ByteArrayContent(body) };
        if (contentRange is not null)
            request.Content.Headers.TryAddWithoutValidation("Content-Range", contentRange);
        return await http.SendAsync(request);
    }

    internal static string? RangeOf(HttpResponseMessage response) =>
        response.Headers.TryGetValues("Range", out var values) ? values.Single() : null;

    /// <summary>Google's error shape: {"error": {"code", "message", "errors": [{"reason": code}]}}.</summary>
    internal static async Task AssertGoogleErrorAsync(HttpResponseMessage response, int status, string code)
    {
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal(status, error.GetProperty("code").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.Equal(code, error.GetProperty("errors")[0].GetProperty("reason").GetString());
        Assert.False(response.Headers.Contains("Range"));
    }

    private Task<HttpResponseMessage> PutAsync(string path, byte[] body, string? contentRange) => SendPutAsync(Http, path, body, contentRange);

    private Task<HttpResponseMessage> InitiateAsync(string name, string length)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/upload/" + Uri.EscapeDataString(name) + "?uploadType=resumable")
        {
            Content = new StringContent("{}", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Upload-Content-Length", length);
        return Http.SendAsync(request);
    }
}
