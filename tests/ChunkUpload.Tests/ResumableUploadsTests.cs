using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using ChunkUpload.Core.Engine;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>
/// The IETF draft "Resumable Uploads for HTTP" at /rufh (PROTOCOLS.md 10.4): creation, offset retrieval, append and
/// cancellation, each answered as the request's Upload-Draft-Interop-Version says (5: tus-js-client 'ietf-draft-03',
/// 6: 'ietf-draft-05', 8: the current draft, none: the current draft too).
/// </summary>
public sealed class ResumableUploadsTests(ProtocolServer server) : IClassFixture<ProtocolServer>
{
    private HttpClient Http => server.Http;

    private int ActiveUploads => server.App.Services.GetRequiredService<UploadEngine>().ActiveCount;

    [Theory]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(null)]
    public async Task Creation_Without_Content_Returns_201_With_Location_And_The_Limits_Its_Version_Defines(int? interop)
    {
        using var response = await Http.SendAsync(Rufh.Create(interop, "?0", length: 5000));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        string url = response.Headers.Location!.OriginalString;
        Assert.Matches("^/rufh/[0-9a-f]{32}$", url);
        Assert.Equal("?0", Rufh.Header(response, "Upload-Complete"));
        Assert.Equal("0", Rufh.Header(response, "Upload-Offset"));
        string? limit = Rufh.Header(response, "Upload-Limit");
        if (interop == 5)
        {
            Assert.Null(limit); // draft -03 has no Upload-Limit
        }
        else
        {
            Assert.StartsWith("max-size=107374182400, ", limit, StringComparison.Ordinal);
            Assert.Matches(interop == 6 ? "expires=\\d+$" : "max-age=\\d+$", limit); // draft -05 calls the lifetime "expires"
        }

        var status = await server.Uploads.StatusAsync(Rufh.IdOf(url));
        Assert.Equal("ietf", status.GetProperty("protocol").GetString());
        Assert.Equal(5000, status.GetProperty("totalSize").GetInt64());
        Assert.Equal(0, status.GetProperty("storedBytes").GetInt64());
    }

    [Theory]
    [InlineData(5, 201)]
    [InlineData(6, 201)]
    [InlineData(7, 200)]
    [InlineData(8, 200)]
    [InlineData(null, 200)]
    public async Task Creation_With_The_Whole_Content_Completes_And_Answers_With_The_Status_And_Location(int? interop, int expected)
    {
        var data = UploadClient.RandomBytes(70_000, 11);
        var request = Rufh.Create(interop, "?1", data);
        request.Content!.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        request.Content.Headers.TryAddWithoutValidation("Content-Disposition", "inline; filename=\"resume.png\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%9D%B1.png");

        using var response = await Http.SendAsync(request);

        Assert.Equal(expected, (int)response.StatusCode);
        Assert.Equal("?1", Rufh.Header(response, "Upload-Complete"));
        Assert.Equal("70000", Rufh.Header(response, "Upload-Offset"));
        string url = response.Headers.Location!.OriginalString;
        var answer = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("complete", answer.GetProperty("state").GetString());
        Assert.Equal(UploadClient.Sha256Hex(data), answer.GetProperty("sha256").GetString());
        Assert.Equal(Rufh.IdOf(url), answer.GetProperty("identifier").GetString());
        var status = await server.Uploads.StatusAsync(Rufh.IdOf(url));
        Assert.Equal("résumé 東.png", status.GetProperty("fileName").GetString());
        Assert.Equal(data, await server.DownloadAsync(Rufh.IdOf(url)));
    }

    [Fact]
    public async Task Creation_With_Upload_Complete_And_No_Content_Is_An_Empty_File()
    {
        using var response = await Http.SendAsync(Rufh.Create(8, "?1"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("?1", Rufh.Header(response, "Upload-Complete"));
        Assert.Equal("0", Rufh.Header(response, "Upload-Offset"));
        Assert.Empty(await server.DownloadAsync(Rufh.IdOf(response.Headers.Location!.OriginalString)));
    }

    [Theory]
    [InlineData(5, 201, 201)]
    [InlineData(6, 201, 201)]
    [InlineData(7, 204, 200)]
    [InlineData(8, 204, 200)]
    public async Task Parts_Are_Appended_In_Order_Each_Acknowledged_As_Its_Version_Says(int interop, int partStatus, int lastStatus)
    {
        var data = UploadClient.RandomBytes(3000, 12);
        string url;
        using (var creation = await Http.SendAsync(Rufh.Create(interop, "?0", data[..1000], length: 3000)))
        {
            Assert.Equal(HttpStatusCode.Created, creation.StatusCode);
            Assert.Equal("1000", Rufh.Header(creation, "Upload-Offset"));
            url = creation.Headers.Location!.OriginalString;
        }

        using (var part = await Http.SendAsync(Rufh.Patch(url, interop, 1000, "?0", data[1000..2000])))
        {
            Assert.Equal(partStatus, (int)part.StatusCode);
            Assert.Equal("?0", Rufh.Header(part, "Upload-Complete"));
            Assert.Equal("2000", Rufh.Header(part, "Upload-Offset"));
        }

        using (var last = await Http.SendAsync(Rufh.Patch(url, interop, 2000, "?1", data[2000..])))
        {
            Assert.Equal(lastStatus, (int)last.StatusCode);
            Assert.Equal("?1", Rufh.Header(last, "Upload-Complete"));
            Assert.Equal("3000", Rufh.Header(last, "Upload-Offset"));
            Assert.Equal(UploadClient.Sha256Hex(data), (await last.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("sha256").GetString());
        }

        Assert.Equal(data, await server.DownloadAsync(Rufh.IdOf(url)));
    }

    [Fact]
    public async Task An_Upload_Without_A_Length_Is_Complete_When_A_Request_Says_So()
    {
        var data = UploadClient.RandomBytes(2500, 13);
        string url = await Rufh.CreateEmptyAsync(Http, 8);
        using (var part = await Http.SendAsync(Rufh.Patch(url, 8, 0, "?0", data[..1000])))
            Assert.Equal(HttpStatusCode.NoContent, part.StatusCode);
        using (var head = await Http.SendAsync(Rufh.Head(url, 8)))
            Assert.Null(Rufh.Header(head, "Upload-Length"));

        using var last = await Http.SendAsync(Rufh.Patch(url, 8, 1000, "?1", data[1000..]));

        Assert.Equal(HttpStatusCode.OK, last.StatusCode);
        Assert.Equal(data, await server.DownloadAsync(Rufh.IdOf(url)));
    }

    [Theory]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(8)]
    public async Task Offset_Retrieval_Reports_Offset_Completeness_Length_And_Limits_Uncached(int interop)
    {
        var data = UploadClient.RandomBytes(300, 14);
        using var creation = await Http.SendAsync(Rufh.Create(interop, "?0", data[..100], length: 300));
        string url = creation.Headers.Location!.OriginalString;

        using (var head = await Http.SendAsync(Rufh.Head(url, interop)))
        {
            Assert.Equal(HttpStatusCode.NoContent, head.StatusCode);
            Assert.Equal("100", Rufh.Header(head, "Upload-Offset"));
            Assert.Equal("?0", Rufh.Header(head, "Upload-Complete"));
            Assert.Equal("300", Rufh.Header(head, "Upload-Length"));
            Assert.True(head.Headers.CacheControl!.NoStore);
            if (interop == 5)
                Assert.Null(Rufh.Header(head, "Upload-Limit"));
            else
                Assert.StartsWith("max-size=107374182400", Rufh.Header(head, "Upload-Limit"), StringComparison.Ordinal);
        }

        using (var last = await Http.SendAsync(Rufh.Patch(url, interop, 100, "?1", data[100..])))
            Assert.True(last.IsSuccessStatusCode);

        using var after = await Http.SendAsync(Rufh.Head(url, interop));
        Assert.Equal("300", Rufh.Header(after, "Upload-Offset"));
        Assert.Equal("?1", Rufh.Header(after, "Upload-Complete"));
        if (interop != 5)
            Assert.Equal("max-size=107374182400", Rufh.Header(after, "Upload-Limit")); // no lifetime once complete
    }

    [Fact]
    public async Task Offset_Retrieval_By_GET_Answers_As_HEAD_Without_Content()
    {
        string url = await Rufh.CreateEmptyAsync(Http, 8, 10);

        using var get = await Http.GetAsync(url);

        Assert.Equal(HttpStatusCode.NoContent, get.StatusCode);
        Assert.Equal("0", Rufh.Header(get, "Upload-Offset"));
        Assert.Equal("?0", Rufh.Header(get, "Upload-Complete"));
        Assert.Empty(await get.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Unknown_Uploads_Are_404()
    {
        using (var head = await Http.SendAsync(Rufh.Head("/rufh/0123456789abcdef0123456789abcdef", 6)))
        {
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
            Assert.Equal("?0", Rufh.Header(head, "Upload-Complete"));
        }

        using (var get = await Http.GetAsync("/rufh/0123456789abcdef0123456789abcdef"))
            await Rufh.AssertProblemAsync(get, 404, "upload_not_found");
        using (var patch = await Http.SendAsync(Rufh.Patch("/rufh/0123456789abcdef0123456789abcdef", 8, 0, "?0", [1, 2, 3])))
            await Rufh.AssertProblemAsync(patch, 404, "upload_not_found");
        using (var delete = await Http.SendAsync(Rufh.Delete("/rufh/0123456789abcdef0123456789abcdef", 8)))
            await Rufh.AssertProblemAsync(delete, 404, "upload_not_found");
    }

    [Theory]
    [InlineData(5, null)]
    [InlineData(6, "mismatching-upload-offset")]
    [InlineData(8, "mismatching-upload-offset")]
    public async Task Append_At_The_Wrong_Offset_Returns_409_With_The_Right_Offset_And_Stores_Nothing(int interop, string? draftType)
    {
        var data = UploadClient.RandomBytes(900, 15);
        using var creation = await Http.SendAsync(Rufh.Create(interop, "?0", data[..300], length: 900));
        string url = creation.Headers.Location!.OriginalString;

        using var response = await Http.SendAsync(Rufh.Patch(url, interop, 600, "?0", data[600..]));

        var problem = await Rufh.AssertProblemAsync(response, 409, "offset_mismatch", draftType);
        Assert.Equal("300", Rufh.Header(response, "Upload-Offset"));
        Assert.Equal("?0", Rufh.Header(response, "Upload-Complete"));
        if (draftType is not null)
        {
            Assert.Equal(300, problem.GetProperty("expected-offset").GetInt64());
            Assert.Equal(600, problem.GetProperty("provided-offset").GetInt64());
        }

        Assert.Equal(300, (await server.Uploads.StatusAsync(Rufh.IdOf(url))).GetProperty("storedBytes").GetInt64());
        using (var resumed = await Http.SendAsync(Rufh.Patch(url, interop, 300, "?1", data[300..])))
            Assert.True(resumed.IsSuccessStatusCode);
        Assert.Equal(data, await server.DownloadAsync(Rufh.IdOf(url)));
    }

    [Theory]
    [InlineData(5, 5, 100, 400, null)]
    [InlineData(6, 5, 100, 400, "completed-upload")]
    [InlineData(7, 5, 100, 400, "completed-upload")]
    [InlineData(8, 5, 100, 400, "inconsistent-upload-length")]
    [InlineData(8, 0, 40, 410, "completed-upload")]
    [InlineData(null, 5, 100, 400, "inconsistent-upload-length")]
    public async Task Append_To_A_Completed_Upload_Is_Refused_As_Its_Version_Says_And_Changes_Nothing(int? interop, int bytes, long offset, int status, string? draftType)
    {
        var data = UploadClient.RandomBytes(100, 16);
        using var creation = await Http.SendAsync(Rufh.Create(interop, "?1", data));
        string url = creation.Headers.Location!.OriginalString;

        using var response = await Http.SendAsync(Rufh.Patch(url, interop, offset, "?1", new byte[bytes]));

        await Rufh.AssertProblemAsync(response, status, "upload_complete", draftType);
        Assert.Equal("100", Rufh.Header(response, "Upload-Offset"));
        Assert.Equal(data, await server.DownloadAsync(Rufh.IdOf(url)));
    }

    [Theory]
    [InlineData(5, 201)]
    [InlineData(6, 201)]
    [InlineData(8, 200)]
    public async Task An_Empty_Append_At_The_End_Of_A_Completed_Upload_Gets_The_Final_Answer_Again(int interop, int expected)
    {
        var data = UploadClient.RandomBytes(100, 17);
        using var creation = await Http.SendAsync(Rufh.Create(interop, "?1", data));
        string url = creation.Headers.Location!.OriginalString;

        using var again = await Http.SendAsync(Rufh.Patch(url, interop, 100, "?1", []));

        Assert.Equal(expected, (int)again.StatusCode);
        Assert.Equal("?1", Rufh.Header(again, "Upload-Complete"));
        Assert.Equal(UploadClient.Sha256Hex(data), (await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task The_Last_Byte_Of_A_Declared_Length_Completes_The_Upload_Even_Without_Upload_Complete()
    {
        // tus-js-client with a file stream never says ?1 (PROTOCOLS.md 11); nothing more could be appended anyway.
        var data = UploadClient.RandomBytes(500, 18);
        string url = await Rufh.CreateEmptyAsync(Http, 6, 500);

        using var last = await Http.SendAsync(Rufh.Patch(url, 6, 0, "?0", data));

        Assert.Equal(HttpStatusCode.Created, last.StatusCode);
        Assert.Equal("?1", Rufh.Header(last, "Upload-Complete"));
        using var head = await Http.SendAsync(Rufh.Head(url, 6));
        Assert.Equal("?1", Rufh.Header(head, "Upload-Complete"));
        Assert.Equal(data, await server.DownloadAsync(Rufh.IdOf(url)));
    }

    [Theory]
    [InlineData(5, null, 201)]
    [InlineData(5, "application/offset+octet-stream", 201)]
    [InlineData(6, null, 415)]
    [InlineData(6, "application/octet-stream", 415)]
    [InlineData(8, null, 415)]
    [InlineData(8, "application/offset+octet-stream", 415)]
    [InlineData(8, "application/partial-upload; charset=x", 204)]
    public async Task Appends_Need_application_partial_upload_From_Interop_6_On(int interop, string? contentType, int expected)
    {
        string url = await Rufh.CreateEmptyAsync(Http, interop, 10);
        var request = Rufh.Patch(url, interop, 0, "?0", [1, 2, 3], contentType: null);
        if (contentType is not null)
            request.Content!.Headers.TryAddWithoutValidation("Content-Type", contentType);

        using var response = await Http.SendAsync(request);

        if (expected == 415)
            await Rufh.AssertProblemAsync(response, 415, "unsupported_media_type");
        else
            Assert.Equal(expected, (int)response.StatusCode);
        Assert.Equal(expected == 415 ? 0 : 3, await Rufh.OffsetAsync(Http, url));
    }

    [Theory]
    [InlineData(5, 201)]
    [InlineData(6, 201)]
    [InlineData(7, 400)]
    [InlineData(8, 400)]
    public async Task An_Append_Without_Upload_Complete_Is_Incomplete_Up_To_Interop_6_And_Refused_After(int interop, int expected)
    {
        string url = await Rufh.CreateEmptyAsync(Http, interop, 10);

        using var response = await Http.SendAsync(Rufh.Patch(url, interop, 0, complete: null, [1, 2, 3]));

        if (expected == 400)
        {
            await Rufh.AssertProblemAsync(response, 400, "missing_parameter");
            Assert.Equal(0, await Rufh.OffsetAsync(Http, url));
        }
        else
        {
            Assert.Equal(expected, (int)response.StatusCode);
            Assert.Equal("?0", Rufh.Header(response, "Upload-Complete"));
            Assert.Equal(3, await Rufh.OffsetAsync(Http, url));
        }
    }

    [Fact]
    public async Task Interop_3_Speaks_Upload_Incomplete_And_An_Append_Without_It_Completes()
    {
        var data = UploadClient.RandomBytes(600, 19);
        var creation = Rufh.Create(3, complete: null, data[..200]);
        creation.Headers.Add("Upload-Incomplete", "?1");
        string url;
        using (var created = await Http.SendAsync(creation))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            Assert.Equal("?1", Rufh.Header(created, "Upload-Incomplete"));
            Assert.Null(Rufh.Header(created, "Upload-Complete"));
            url = created.Headers.Location!.OriginalString;
        }

        using (var head = await Http.SendAsync(Rufh.Head(url, 3)))
            Assert.Equal("?1", Rufh.Header(head, "Upload-Incomplete"));

        using var last = await Http.SendAsync(Rufh.Patch(url, 3, 200, complete: null, data[200..], contentType: null));

        Assert.Equal(HttpStatusCode.Created, last.StatusCode);
        Assert.Equal("?0", Rufh.Header(last, "Upload-Incomplete"));
        Assert.Equal(data, await server.DownloadAsync(Rufh.IdOf(url)));
    }

    [Theory]
    [InlineData("2", "unsupported_version")]
    [InlineData("9", "unsupported_version")]
    [InlineData("five", "invalid_parameter")]
    [InlineData("6.0", "invalid_parameter")]
    public async Task Interop_Versions_This_Server_Does_Not_Speak_Are_400_And_Create_Nothing(string version, string code)
    {
        int before = ActiveUploads;
        var request = Rufh.Create(null, "?0");
        request.Headers.TryAddWithoutValidation("Upload-Draft-Interop-Version", version);

        using var response = await Http.SendAsync(request);

        await Rufh.AssertProblemAsync(response, 400, code);
        Assert.Null(response.Headers.Location);
        Assert.Equal(before, ActiveUploads);
    }

    [Theory]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(8)]
    public async Task Cancellation_Returns_204_And_The_Upload_Is_Gone_Everywhere(int interop)
    {
        using var creation = await Http.SendAsync(Rufh.Create(interop, "?0", [1, 2, 3], length: 10));
        string url = creation.Headers.Location!.OriginalString;

        using var response = await Http.SendAsync(Rufh.Delete(url, interop));

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        using (var head = await Http.SendAsync(Rufh.Head(url, interop)))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, await server.UploadStatusCodeAsync(Rufh.IdOf(url)));
        using (var patch = await Http.SendAsync(Rufh.Patch(url, interop, 3, "?1", [4])))
            Assert.Equal(HttpStatusCode.NotFound, patch.StatusCode);
    }

    [Theory]
    [InlineData(5, "Upload-Offset", "0", 400)]
    [InlineData(6, "Upload-Complete", "?0", 400)]
    [InlineData(6, "Upload-Length", "10", 400)]
    [InlineData(8, "Upload-Offset", "0", 204)]
    public async Task Up_To_Interop_6_A_Cancellation_Or_Offset_Retrieval_Carrying_Upload_State_Is_400(int interop, string header, string value, int expected)
    {
        string url = await Rufh.CreateEmptyAsync(Http, interop, 10);
        foreach (var method in new[] { HttpMethod.Get, HttpMethod.Delete })
        {
            var request = new HttpRequestMessage(method, url);
            request.Headers.TryAddWithoutValidation("Upload-Draft-Interop-Version", interop.ToString(System.Globalization.CultureInfo.InvariantCulture));
            request.Headers.TryAddWithoutValidation(header, value);

            using var response = await Http.SendAsync(request);

            if (expected == 400)
                await Rufh.AssertProblemAsync(response, 400, "invalid_parameter");
            else
                Assert.Equal(expected, (int)response.StatusCode);
        }

        Assert.Equal(expected == 400 ? HttpStatusCode.OK : HttpStatusCode.NotFound, await server.UploadStatusCodeAsync(Rufh.IdOf(url)));
    }

    [Fact]
    public async Task Uploads_Of_Another_Protocol_Cannot_Be_Changed_Here_And_Are_Not_Resources_Here()
    {
        var tus = new HttpRequestMessage(HttpMethod.Post, "/tus");
        tus.Headers.Add("Tus-Resumable", "1.0.0");
        tus.Headers.Add("Upload-Length", "10");
        string id;
        using (var created = await Http.SendAsync(tus))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            id = Rufh.IdOf(created.Headers.Location!.OriginalString);
        }

        using (var patch = await Http.SendAsync(Rufh.Patch("/rufh/" + id, 8, 0, "?0", [1, 2, 3])))
            await Rufh.AssertProblemAsync(patch, 409, "wrong_protocol");
        using (var delete = await Http.SendAsync(Rufh.Delete("/rufh/" + id, 8)))
            await Rufh.AssertProblemAsync(delete, 409, "wrong_protocol");
        using (var head = await Http.SendAsync(Rufh.Head("/rufh/" + id, 8)))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);

        var status = await server.Uploads.StatusAsync(id);
        Assert.Equal("tus", status.GetProperty("protocol").GetString());
        Assert.Equal(0, status.GetProperty("storedBytes").GetInt64());
    }

    [Fact]
    public async Task A_Stalled_Append_Is_Taken_Over_By_An_Offset_Retrieval_Keeps_What_It_Received_And_The_Client_Resumes()
    {
        var data = UploadClient.RandomBytes(300_000, 20);
        string url = await Rufh.CreateEmptyAsync(Http, 6, data.Length);
        var stalled = Rufh.Patch(url, 6, 0, "?1", data);
        var content = new BreakingContent(data, 120_000); // sends 120,000 bytes, then neither ends nor sends more
        stalled.Content = content;
        stalled.Content.Headers.ContentType = new MediaTypeHeaderValue(Rufh.PartialUpload);
        const string tag = "rufh-takeover-head";
        stalled.Headers.Add(BodyObserver.Header, tag);
        var watched = server.Bodies.Watch(tag, 120_000);
        var first = Http.SendAsync(stalled);
        try
        {
            await watched.Read;

            // The draft: a new request for the upload ends the one still open; the offset includes what it received.
            Assert.Equal(120_000, await Rufh.OffsetAsync(Http, url));
            await watched.Finished;
            using (var superseded = await first.WaitAsync(TimeSpan.FromSeconds(30)))
            {
                await Rufh.AssertProblemAsync(superseded, 409, "request_superseded");
                Assert.Equal("120000", Rufh.Header(superseded, "Upload-Offset"));
            }

            using var rest = await Http.SendAsync(Rufh.Patch(url, 6, 120_000, "?1", data[120_000..]));
            Assert.Equal(HttpStatusCode.Created, rest.StatusCode);
            Assert.Equal("?1", Rufh.Header(rest, "Upload-Complete"));
            Assert.Equal(data, await server.DownloadAsync(Rufh.IdOf(url)));
        }
        finally
        {
            content.Break();
        }
    }

    [Fact]
    public async Task A_Stalled_Append_Is_Taken_Over_By_The_Next_Append_Which_Proceeds_At_Once()
    {
        var data = UploadClient.RandomBytes(200_000, 21);
        string url = await Rufh.CreateEmptyAsync(Http, 8, data.Length);
        var stalled = Rufh.Patch(url, 8, 0, "?0", data);
        var content = new BreakingContent(data, 80_000);
        stalled.Content = content;
        stalled.Content.Headers.ContentType = new MediaTypeHeaderValue(Rufh.PartialUpload);
        const string tag = "rufh-takeover-patch";
        stalled.Headers.Add(BodyObserver.Header, tag);
        var watched = server.Bodies.Watch(tag, 80_000);
        var first = Http.SendAsync(stalled);
        try
        {
            await watched.Read;

            // The old client's body never ends; the new append does not wait for it.
            using var rest = await Http.SendAsync(Rufh.Patch(url, 8, 80_000, "?1", data[80_000..]));

            Assert.Equal(HttpStatusCode.OK, rest.StatusCode);
            Assert.False(content.IsBroken);
            using (var superseded = await first.WaitAsync(TimeSpan.FromSeconds(30)))
                await Rufh.AssertProblemAsync(superseded, 409, "request_superseded");
            Assert.Equal(data, await server.DownloadAsync(Rufh.IdOf(url)));
        }
        finally
        {
            content.Break();
        }
    }

    [Theory]
    [InlineData("Content-Digest")]
    [InlineData("Content-MD5")]
    public async Task A_Digest_Mismatch_Refuses_The_Append_And_Keeps_Nothing_Of_It(string field)
    {
        var data = UploadClient.RandomBytes(4000, 22);
        string url = await Rufh.CreateEmptyAsync(Http, 8, data.Length);
        var wrong = Rufh.Patch(url, 8, 0, "?0", data[..2000]);
        AddDigest(wrong, field, data[1..2001]);

        using (var refused = await Http.SendAsync(wrong))
            await Rufh.AssertProblemAsync(refused, 400, "checksum_mismatch");
        Assert.Equal(0, (await server.Uploads.StatusAsync(Rufh.IdOf(url))).GetProperty("storedBytes").GetInt64());

        var right = Rufh.Patch(url, 8, 0, "?1", data);
        AddDigest(right, field, data);
        using var accepted = await Http.SendAsync(right);
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        Assert.Equal(data, await server.DownloadAsync(Rufh.IdOf(url)));
    }

    [Fact]
    public async Task A_Creation_Whose_Content_Digest_Does_Not_Match_Leaves_No_Upload()
    {
        int before = ActiveUploads;
        var data = UploadClient.RandomBytes(3000, 23);
        var request = Rufh.Create(8, "?0", data);
        AddDigest(request, "Content-Digest", data[..2999]);

        using var response = await Http.SendAsync(request);

        await Rufh.AssertProblemAsync(response, 400, "checksum_mismatch");
        Assert.Null(response.Headers.Location);
        Assert.Equal(before, ActiveUploads);
    }

    [Fact]
    public async Task A_Repr_Digest_Mismatch_Is_The_Final_Answer_Marked_Complete()
    {
        var data = UploadClient.RandomBytes(5000, 24);
        var request = Rufh.Create(8, "?1", data);
        request.Headers.TryAddWithoutValidation("Repr-Digest", "sha-256=:" + Convert.ToBase64String(SHA256.HashData(data[1..])) + ":");

        using var response = await Http.SendAsync(request);

        // The representation arrived whole; processing it failed: resuming would not help (Upload-Complete: ?1).
        await Rufh.AssertProblemAsync(response, 409, "upload_failed");
        Assert.Equal("?1", Rufh.Header(response, "Upload-Complete"));
        string id = Rufh.IdOf(response.Headers.Location!.OriginalString);
        Assert.Equal("failed", (await server.Uploads.StatusAsync(id)).GetProperty("state").GetString());
    }

    [Fact]
    public async Task A_Matching_Repr_Digest_Is_Accepted()
    {
        var data = UploadClient.RandomBytes(5000, 25);
        var request = Rufh.Create(8, "?1", data);
        request.Headers.TryAddWithoutValidation("Repr-Digest", "sha-256=:" + Convert.ToBase64String(SHA256.HashData(data)) + ":");

        using var response = await Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Discovery_By_OPTIONS_Names_The_Limits_And_The_Patch_Type()
    {
        using var response = await Http.SendAsync(new HttpRequestMessage(HttpMethod.Options, "/rufh/"));

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal("max-size=107374182400", Rufh.Header(response, "Upload-Limit"));
        Assert.Equal(Rufh.PartialUpload, Rufh.Header(response, "Accept-Patch"));
    }

    internal static void AddDigest(HttpRequestMessage request, string field, byte[] bytes)
    {
        if (field == "Content-MD5")
            request.Content!.Headers.ContentMD5 = Md5(bytes);
        else
            request.Headers.TryAddWithoutValidation(field, "sha-256=:" + Convert.ToBase64String(SHA256.HashData(bytes)) + ":");
    }

#pragma warning disable CA5351 // MD5 is what Content-MD5 is: the test must compute it
    private static byte[] Md5(byte[] bytes) => MD5.HashData(bytes);
#pragma warning restore CA5351
}
