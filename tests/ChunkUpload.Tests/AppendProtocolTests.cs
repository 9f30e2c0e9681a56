using System.Net;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>The javascript.info append protocol: GET /append/status and POST /append with X-File-Id and X-Start-Byte.</summary>
public sealed class AppendProtocolTests : IDisposable
{
    private const string FileId = "F.bin-2459177-1700000000000";
    private readonly ProtocolServer _server = new();

    public void Dispose() => _server.Dispose();

    [Fact]
    public async Task Status_Of_An_Unknown_File_Is_200_With_0_As_Text()
    {
        using var response = await StatusAsync(FileId);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("0", await response.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotFound, await _server.UploadStatusCodeAsync(FileId));
    }

    [Theory]
    [InlineData("/append")]
    [InlineData("/append/upload")] // the tutorial's relative "upload" from a page under /append/
    public async Task The_Whole_File_In_One_Post_Without_Content_Type_Completes_With_200(string path)
    {
        var data = UploadClient.RandomBytes(2_459_177, 1);
        using (var response = await PostAsync(FileId, "0", data, path))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("2459177", await response.Content.ReadAsStringAsync());
        }

        using (var status = await StatusAsync(FileId))
            Assert.Equal("2459177", await status.Content.ReadAsStringAsync());
        var upload = await _server.Uploads.StatusAsync(FileId);
        Assert.Equal("complete", upload.GetProperty("state").GetString());
        Assert.Equal("append", upload.GetProperty("protocol").GetString());
        Assert.Equal("F.bin", upload.GetProperty("fileName").GetString());
        Assert.Equal(data, await _server.DownloadAsync(FileId));
    }

    [Fact]
    public async Task An_Interrupted_Post_Leaves_The_Durable_Count_And_The_Rest_Completes_The_File()
    {
        var data = UploadClient.RandomBytes(1_500_000, 2);
        var request = Post(FileId, "0", data);
        await _server.SendBrokenAsync(request, data, 1_048_577);

        using (var status = await StatusAsync(FileId))
            Assert.Equal("1048577", await status.Content.ReadAsStringAsync());
        Assert.Equal("receiving", (await _server.Uploads.StatusAsync(FileId)).GetProperty("state").GetString());

        using (var rest = await PostAsync(FileId, "1048577", data[1_048_577..]))
        {
            Assert.Equal(HttpStatusCode.OK, rest.StatusCode);
            Assert.Equal("1500000", await rest.Content.ReadAsStringAsync());
        }

        Assert.Equal(data, await _server.DownloadAsync(FileId));
    }

    [Fact]
    public async Task Status_While_An_Earlier_Post_Is_Still_Open_Counts_Every_Byte_It_Delivered_So_The_Next_Post_Fits()
    {
        // The tutorial's client asks for the status after its connection went quiet (not closed): the open POST is
        // ended first, so the count includes everything it delivered and a POST from that count is accepted.
        var data = UploadClient.RandomBytes(1_500_000, 9);
        await using (var open = await _server.SendStalledAsync(Post(FileId, "0", data), data, 700_001))
        {
            using (var status = await StatusAsync(FileId))
                Assert.Equal("700001", await status.Content.ReadAsStringAsync());
            await open.Finished;
        }

        using (var rest = await PostAsync(FileId, "700001", data[700_001..]))
        {
            Assert.Equal(HttpStatusCode.OK, rest.StatusCode);
            Assert.Equal("1500000", await rest.Content.ReadAsStringAsync());
        }

        Assert.Equal(data, await _server.DownloadAsync(FileId));
    }

    [Theory]
    [InlineData("1005")] // past the stored end
    [InlineData("995")] // before it (not 0)
    [InlineData("99999999")]
    public async Task A_Start_Byte_Other_Than_The_Stored_Count_Is_409_With_The_Count_And_Stores_Nothing(string start)
    {
        var data = UploadClient.RandomBytes(3000, 3);
        await _server.SendBrokenAsync(Post(FileId, "0", data), data, 1000);
        using (var response = await PostAsync(FileId, start, data[1000..]))
        {
            await AssertTextErrorAsync(response, 409, "offset_mismatch");
            Assert.Equal("1000", response.Headers.GetValues("Upload-Offset").Single());
        }

        using var status = await StatusAsync(FileId);
        Assert.Equal("1000", await status.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Start_Byte_0_Starts_An_Unfinished_File_Over()
    {
        var first = UploadClient.RandomBytes(3000, 4);
        var second = UploadClient.RandomBytes(2000, 5);
        await _server.SendBrokenAsync(Post(FileId, "0", first), first, 1500);
        using (var restart = await PostAsync(FileId, "0", second))
            Assert.Equal("2000", await restart.Content.ReadAsStringAsync());
        Assert.Equal(second, await _server.DownloadAsync(FileId));
    }

    [Fact]
    public async Task A_Stated_Size_Lets_A_Client_Append_In_Pieces()
    {
        var data = UploadClient.RandomBytes(3000, 6);
        using (var first = await PostAsync("pieces-1", "0", data[..1000], size: "3000"))
            Assert.Equal("1000", await first.Content.ReadAsStringAsync());
        Assert.Equal("receiving", (await _server.Uploads.StatusAsync("pieces-1")).GetProperty("state").GetString());
        using (var second = await PostAsync("pieces-1", "1000", data[1000..2000]))
            Assert.Equal("2000", await second.Content.ReadAsStringAsync());
        using (var changed = await PostAsync("pieces-1", "2000", data[2000..], size: "4000"))
            await AssertTextErrorAsync(changed, 400, "length_conflict");
        using (var tooLong = await PostAsync("pieces-1", "2000", [.. data[2000..], 1, 2, 3]))
            await AssertTextErrorAsync(tooLong, 400, "beyond_length");
        using (var status = await StatusAsync("pieces-1"))
            Assert.Equal("2000", await status.Content.ReadAsStringAsync());
        using (var last = await PostAsync("pieces-1", "2000", data[2000..], sizeHeader: "Upload-Length", size: "3000"))
            Assert.Equal("3000", await last.Content.ReadAsStringAsync());
        Assert.Equal(data, await _server.DownloadAsync("pieces-1"));
    }

    [Fact]
    public async Task A_Finished_File_Answers_200_At_Its_End_And_409_Elsewhere()
    {
        var data = UploadClient.RandomBytes(500, 7);
        using (var upload = await PostAsync(FileId, "0", data))
            Assert.Equal(HttpStatusCode.OK, upload.StatusCode);
        using (var atEnd = await PostAsync(FileId, "500", []))
        {
            Assert.Equal(HttpStatusCode.OK, atEnd.StatusCode);
            Assert.Equal("500", await atEnd.Content.ReadAsStringAsync());
        }

        using (var restart = await PostAsync(FileId, "0", data))
        {
            await AssertTextErrorAsync(restart, 409, "offset_mismatch");
            Assert.Equal("500", restart.Headers.GetValues("Upload-Offset").Single());
        }

        using (var more = await PostAsync(FileId, "500", [1, 2, 3]))
            await AssertTextErrorAsync(more, 400, "beyond_length");
        Assert.Equal(data, await _server.DownloadAsync(FileId));
    }

    [Fact]
    public async Task An_Empty_File_Completes()
    {
        using (var response = await PostAsync("empty.txt-0-1", "0", []))
            Assert.Equal("0", await response.Content.ReadAsStringAsync());
        Assert.Equal("complete", (await _server.Uploads.WaitForCompleteAsync("empty.txt-0-1")).GetProperty("state").GetString());
        Assert.Empty(await _server.DownloadAsync("empty.txt-0-1"));
    }

    [Fact]
    public async Task An_Upload_Of_Another_Protocol_Is_409_Wrong_Protocol()
    {
        using (var google = await GoogleProtocolTests.SendPutAsync(_server.Http, "/upload/shared-append", new byte[10], "bytes 0-9/24"))
            Assert.Equal(308, (int)google.StatusCode);
        using (var status = await StatusAsync("shared-append"))
            await AssertTextErrorAsync(status, 409, "wrong_protocol");
        using (var append = await PostAsync("shared-append", "10", new byte[14]))
            await AssertTextErrorAsync(append, 409, "wrong_protocol");
        using (var restart = await PostAsync("shared-append", "0", new byte[24]))
            await AssertTextErrorAsync(restart, 409, "wrong_protocol");
        Assert.Equal(10, (await _server.Uploads.StatusAsync("shared-append")).GetProperty("storedBytes").GetInt64());
    }

    internal static HttpRequestMessage Post(string? fileId, string? start, byte[] body, string path = "/append")
    {
        // The tutorial sends file.slice(n): no Content-Type at all.
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
        if (fileId is not null)
            request.Headers.TryAddWithoutValidation("X-File-Id", fileId);
        if (start is not null)
            request.Headers.TryAddWithoutValidation("X-Start-Byte", start);
        return request;
    }

    internal static Task<HttpResponseMessage> StatusAsync(HttpClient http, string? fileId)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/append/status");
        if (fileId is not null)
            request.Headers.TryAddWithoutValidation("X-File-Id", fileId);
        return http.SendAsync(request);
    }

    internal static Task AssertTextErrorAsync(HttpResponseMessage response, int status, string code) =>
        NginxUploadProtocolTests.AssertTextErrorAsync(response, status, code);

    private Task<HttpResponseMessage> StatusAsync(string fileId) => StatusAsync(_server.Http, fileId);

    private Task<HttpResponseMessage> PostAsync(string fileId, string start, byte[] body, string path = "/append", string sizeHeader = "X-File-Size", string? size = null)
    {
        var request = Post(fileId, start, body, path);
        if (size is not null)
            request.Headers.TryAddWithoutValidation(sizeHeader, size);
        return _server.Http.SendAsync(request);
    }
}
