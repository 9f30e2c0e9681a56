using System.Net;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>The nginx upload module's resumable protocol at /nginx-upload: 201 with the merged range list, 200 when complete.</summary>
public sealed class NginxUploadProtocolTests : IDisposable
{
    private const int AssembledEvent = 1004;
    private readonly ProtocolServer _server = new();

    public void Dispose() => _server.Dispose();

    [Theory]
    [InlineData("X-Content-Range", "Session-ID")]
    [InlineData("Content-Range", "X-Session-ID")]
    public async Task A_Segment_Returns_201_With_The_Range_List_In_The_Header_And_The_Body(string rangeHeader, string sessionHeader)
    {
        // PROTOCOLS.md section 10, nginx: the module's own test.
        var data = UploadClient.RandomBytes(511_920, 1);
        using var response = await SendAsync(Segment("1111215056", data, 0, 51_200, 511_920, "big.TXT", rangeHeader, sessionHeader));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("0-51200/511920", RangeOf(response));
        Assert.Equal("text/plain", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("0-51200/511920", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Segments_In_Any_Order_Merge_Into_The_Exact_Range_Lists_And_The_Last_Gets_200()
    {
        var data = UploadClient.RandomBytes(24, 2);
        await AssertListAsync(Segment("order-1", data, 0, 5, 24), HttpStatusCode.Created, "0-5/24");
        await AssertListAsync(Segment("order-1", data, 9, 15, 24), HttpStatusCode.Created, "0-5,9-15/24");
        await AssertListAsync(Segment("order-1", data, 6, 8, 24), HttpStatusCode.Created, "0-15/24");
        await AssertListAsync(Segment("order-1", data, 9, 15, 24), HttpStatusCode.Created, "0-15/24"); // re-sent: unchanged
        await AssertListAsync(Segment("order-1", data, 16, 23, 24), HttpStatusCode.OK, "0-23/24");
        await AssertListAsync(Segment("order-1", data, 16, 23, 24), HttpStatusCode.OK, "0-23/24"); // after completion
        Assert.Equal(data, await _server.DownloadAsync("order-1"));
        Assert.Equal(1, _server.App.Logs.Count(AssembledEvent, "Upload order-1 assembled"));
    }

    [Fact]
    public async Task Overlapping_Segments_Merge_And_Complete()
    {
        var data = UploadClient.RandomBytes(24, 3);
        await AssertListAsync(Segment("overlap-n", data, 0, 9, 24), HttpStatusCode.Created, "0-9/24");
        await AssertListAsync(Segment("overlap-n", data, 5, 14, 24), HttpStatusCode.Created, "0-14/24");
        await AssertListAsync(Segment("overlap-n", data, 20, 23, 24), HttpStatusCode.Created, "0-14,20-23/24");
        await AssertListAsync(Segment("overlap-n", data, 10, 21, 24), HttpStatusCode.OK, "0-23/24");
        Assert.Equal(data, await _server.DownloadAsync("overlap-n"));
    }

    [Fact]
    public async Task Parallel_Segments_In_Reverse_Order_Complete_Once()
    {
        var data = UploadClient.RandomBytes(8 * 10_000, 4);
        var sends = Enumerable.Range(0, 8).Reverse()
            .Select(i => SendAsync(Segment("parallel-n", data, i * 10_000, (i * 10_000) + 9_999, data.Length)))
            .ToList();
        var responses = await Task.WhenAll(sends);
        Assert.All(responses, r => Assert.True(r.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK, r.StatusCode.ToString()));
        Assert.Contains(responses, r => r.StatusCode == HttpStatusCode.OK);
        foreach (var response in responses)
            response.Dispose();
        await _server.Uploads.WaitForCompleteAsync("parallel-n");
        Assert.Equal(data, await _server.DownloadAsync("parallel-n"));
        Assert.Equal(1, _server.App.Logs.Count(AssembledEvent, "Upload parallel-n assembled"));
    }

    [Fact]
    public async Task A_Segment_That_Breaks_Off_Keeps_Nothing()
    {
        var data = UploadClient.RandomBytes(24_000, 5);
        await AssertListAsync(Segment("broken-n", data, 0, 7_999, 24_000), HttpStatusCode.Created, "0-7999/24000");
        var broken = Segment("broken-n", data, 8_000, 15_999, 24_000);
        await _server.SendBrokenAsync(broken, data[8_000..16_000], 3_000);
        Assert.Equal(8_000, (await _server.Uploads.StatusAsync("broken-n")).GetProperty("storedBytes").GetInt64());
        await AssertListAsync(Segment("broken-n", data, 16_000, 23_999, 24_000), HttpStatusCode.Created, "0-7999,16000-23999/24000");
        await AssertListAsync(Segment("broken-n", data, 8_000, 15_999, 24_000), HttpStatusCode.OK, "0-23999/24000");
        Assert.Equal(data, await _server.DownloadAsync("broken-n"));
    }

    [Fact]
    public async Task The_Session_Id_Is_The_Id_For_Status_Download_And_Delete()
    {
        var data = UploadClient.RandomBytes(100, 6);
        var segment = Segment("sid-42_x", data, 0, 99, 100, fileName: null);
        segment.Content!.Headers.TryAddWithoutValidation("Content-Disposition", "attachment; filename=\"r%C3%A9sum%C3%A9%201.txt\"");
        await AssertListAsync(segment, HttpStatusCode.OK, "0-99/100");
        var status = await _server.Uploads.StatusAsync("sid-42_x");
        Assert.Equal("nginx", status.GetProperty("protocol").GetString());
        Assert.Equal("résumé 1.txt", status.GetProperty("fileName").GetString());
        Assert.Equal(data, await _server.DownloadAsync("sid-42_x"));
        using (var delete = await _server.Http.DeleteAsync("/uploads/sid-42_x"))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, await _server.UploadStatusCodeAsync("sid-42_x"));
    }

    [Fact]
    public async Task An_Upload_Of_Another_Protocol_Is_409_Wrong_Protocol()
    {
        using (var google = await GoogleProtocolTests.SendPutAsync(_server.Http, "/upload/shared-nginx", new byte[10], "bytes 0-9/24"))
            Assert.Equal(308, (int)google.StatusCode);
        using var response = await SendAsync(Segment("shared-nginx", new byte[24], 10, 23, 24));
        await AssertTextErrorAsync(response, 409, "wrong_protocol");
        Assert.Equal(10, (await _server.Uploads.StatusAsync("shared-nginx")).GetProperty("storedBytes").GetInt64());
    }

    [Fact]
    public async Task A_Total_That_Changes_Between_Segments_Is_416_And_Nothing_Of_It_Is_Stored()
    {
        var data = UploadClient.RandomBytes(30, 7);
        await AssertListAsync(Segment("total-n", data, 0, 5, 24), HttpStatusCode.Created, "0-5/24");
        using (var changed = await SendAsync(Segment("total-n", data, 6, 8, 30)))
            await AssertTextErrorAsync(changed, 416, "length_conflict");
        await AssertListAsync(Segment("total-n", data, 0, 5, 24), HttpStatusCode.Created, "0-5/24");
    }

    [Theory]
    [InlineData("GET")]
    [InlineData("PUT")]
    [InlineData("DELETE")]
    [InlineData("PATCH")]
    public async Task Other_Methods_Are_405(string method)
    {
        using var response = await _server.Http.SendAsync(new HttpRequestMessage(new HttpMethod(method), "/nginx-upload"));
        await AssertTextErrorAsync(response, 405, "method_not_allowed");
        Assert.Contains("POST", response.Content.Headers.Allow);
    }

    internal static HttpRequestMessage Segment(string session, byte[] data, long first, long last, long total, string? fileName = "file.bin",
        string rangeHeader = "X-Content-Range", string sessionHeader = "Session-ID")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/nginx-upload")
        {
            Content = new ByteArrayContent(data, (int)first, (int)(last - first + 1)),
        };
        request.Headers.TryAddWithoutValidation(sessionHeader, session);
        request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/octet-stream");
        if (fileName is not null)
            request.Content.Headers.TryAddWithoutValidation("Content-Disposition", $"attachment; filename=\"{fileName}\"");
        request.Content.Headers.TryAddWithoutValidation(rangeHeader, $"bytes {first}-{last}/{total}");
        return request;
    }

    internal static string? RangeOf(HttpResponseMessage response) =>
        response.Headers.TryGetValues("Range", out var values) ? values.Single() : null;

    /// <summary>The module's error shape here: text/plain, "code: detail", no Range.</summary>
    internal static async Task AssertTextErrorAsync(HttpResponseMessage response, int status, string code)
    {
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType!.MediaType);
        string body = await response.Content.ReadAsStringAsync();
        Assert.StartsWith(code + ": ", body, StringComparison.Ordinal);
        Assert.True(body.Length > code.Length + 10, body);
        Assert.False(response.Headers.Contains("Range"));
    }

    private Task<HttpResponseMessage> SendAsync(HttpRequestMessage request) => _server.Http.SendAsync(request);

    private async Task AssertListAsync(HttpRequestMessage request, HttpStatusCode status, string list)
    {
        using var response = await SendAsync(request);
        Assert.Equal(status, response.StatusCode);
        Assert.Equal(list, RangeOf(response));
        Assert.Equal(list, await response.Content.ReadAsStringAsync());
    }
}
