using System.Net;
using ChunkUpload.Core.Engine;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>
/// Hostile values for the IETF draft at /rufh: structured-field integers and booleans that are not, numbers out of
/// range, headers repeated with different values, content past the declared length. Each is a 400 problem+json with
/// a stable code (never a 5xx), and nothing is created or stored.
/// </summary>
public sealed class ResumableUploadsHostileInputTests(ProtocolServer server) : IClassFixture<ProtocolServer>
{
    private HttpClient Http => server.Http;

    private int ActiveUploads => server.App.Services.GetRequiredService<UploadEngine>().ActiveCount;

    public static TheoryData<string, string, string> CreationHeaders => new()
    {
        { "Upload-Length", "-1", "invalid_parameter" },
        { "Upload-Length", "abc", "invalid_parameter" },
        { "Upload-Length", "9223372036854775808", "invalid_parameter" },
        { "Upload-Length", "1234567890123456", "invalid_parameter" }, // 16 digits: no structured-field integer
        { "Upload-Length", "1e3", "invalid_parameter" },
        { "Upload-Length", "+5", "invalid_parameter" },
        { "Upload-Length", "5.0", "invalid_parameter" },
        { "Upload-Length", "\"5\"", "invalid_parameter" },
        { "Upload-Complete", "?2", "invalid_parameter" },
        { "Upload-Complete", "1", "invalid_parameter" },
        { "Upload-Complete", "true", "invalid_parameter" },
        { "Upload-Complete", "?", "invalid_parameter" },
        { "Upload-Complete", "?0;", "invalid_parameter" },
        { "Upload-Complete", "?0;A=1", "invalid_parameter" },
        { "Upload-Offset", "0", "invalid_parameter" },
        { "Content-Digest", "sha-256=abc", "invalid_parameter" },
        { "Repr-Digest", "sha-256=:bm90IGEgZGlnZXN0:", "invalid_parameter" },
        { "Content-MD5", "not base64!", "invalid_parameter" },
        { "Upload-Metadata", "file name dGVzdA==", "invalid_parameter" },
        { "Upload-Draft-Interop-Version", "-6", "invalid_parameter" },
    };

    [Theory]
    [MemberData(nameof(CreationHeaders))]
    public async Task A_Creation_With_A_Malformed_Header_Is_400_And_Creates_Nothing(string header, string value, string code)
    {
        int before = ActiveUploads;
        var request = new HttpRequestMessage(HttpMethod.Post, "/rufh/") { Content = new ByteArrayContent(new byte[50]) };
        request.Headers.TryAddWithoutValidation("Upload-Draft-Interop-Version", "6");
        if (header != "Upload-Complete")
            request.Headers.TryAddWithoutValidation("Upload-Complete", "?0");
        if (header == "Content-MD5")
        {
            request.Content.Headers.TryAddWithoutValidation(header, value);
        }
        else
        {
            request.Headers.Remove(header);
            request.Headers.TryAddWithoutValidation(header, value);
        }

        using var response = await Http.SendAsync(request);

        await Rufh.AssertProblemAsync(response, 400, code);
        Assert.Null(response.Headers.Location);
        Assert.Equal(before, ActiveUploads);
    }

    [Fact]
    public async Task A_Creation_Without_Upload_Complete_Is_400_And_Creates_Nothing()
    {
        int before = ActiveUploads;

        using var response = await Http.SendAsync(Rufh.Create(8, complete: null, new byte[10]));

        await Rufh.AssertProblemAsync(response, 400, "missing_parameter");
        Assert.Equal(before, ActiveUploads);
    }

    [Fact]
    public async Task A_Creation_Whose_Content_Length_Disagrees_With_Upload_Length_Is_An_Inconsistent_Length()
    {
        int before = ActiveUploads;

        using var response = await Http.SendAsync(Rufh.Create(8, "?1", new byte[10], length: 11));

        await Rufh.AssertProblemAsync(response, 400, "length_conflict", "inconsistent-upload-length");
        Assert.Equal("?0", Rufh.Header(response, "Upload-Complete"));
        Assert.Equal(before, ActiveUploads);
    }

    public static TheoryData<string, string, string> AppendHeaders => new()
    {
        { "Upload-Offset", "-1", "invalid_parameter" },
        { "Upload-Offset", "abc", "invalid_parameter" },
        { "Upload-Offset", "9223372036854775808", "invalid_parameter" },
        { "Upload-Offset", "99999999999999999999", "invalid_parameter" },
        { "Upload-Offset", "0x0", "invalid_parameter" },
        { "Upload-Offset", "0, 40", "invalid_parameter" },
        { "Upload-Complete", "?2", "invalid_parameter" },
        { "Upload-Complete", "1", "invalid_parameter" },
        { "Upload-Complete", "true", "invalid_parameter" },
        { "Upload-Complete", "?1 ?0", "invalid_parameter" },
        { "Upload-Length", "-100", "invalid_parameter" },
        { "Upload-Length", "ten", "invalid_parameter" },
        { "Upload-Length", "99", "length_conflict" },
        { "Content-Digest", "sha-256=:", "invalid_parameter" },
    };

    [Theory]
    [MemberData(nameof(AppendHeaders))]
    public async Task An_Append_With_A_Malformed_Header_Is_400_And_Stores_Nothing(string header, string value, string code)
    {
        string url = await Rufh.CreateEmptyAsync(Http, 8, 100);
        var request = Rufh.Patch(url, 8, 0, "?0", new byte[40]);
        request.Headers.Remove(header);
        request.Headers.TryAddWithoutValidation(header, value);

        using var response = await Http.SendAsync(request);

        await Rufh.AssertProblemAsync(response, 400, code, code == "length_conflict" ? "inconsistent-upload-length" : null);
        await AssertStoredAsync(url, 0);
    }

    [Theory]
    [InlineData("Upload-Offset", "0", "40")]
    [InlineData("Upload-Complete", "?0", "?1")]
    [InlineData("Upload-Length", "100", "200")]
    [InlineData("Upload-Draft-Interop-Version", "6", "8")]
    public async Task A_Header_Sent_Twice_With_Different_Values_Is_400_And_Stores_Nothing(string header, string first, string second)
    {
        string url = await Rufh.CreateEmptyAsync(Http, 8, 100);
        var request = Rufh.Patch(url, null, 0, "?0", new byte[40]);
        request.Headers.Remove(header);
        request.Headers.TryAddWithoutValidation(header, [first, second]);

        using var response = await Http.SendAsync(request);

        await Rufh.AssertProblemAsync(response, 400, "conflicting_parameter");
        await AssertStoredAsync(url, 0);
    }

    [Fact]
    public async Task The_Same_Header_Twice_With_The_Same_Value_Is_Accepted()
    {
        string url = await Rufh.CreateEmptyAsync(Http, 8, 100);
        var request = Rufh.Patch(url, 8, 0, "?0", new byte[40]);
        request.Headers.Remove("Upload-Offset");
        request.Headers.TryAddWithoutValidation("Upload-Offset", ["0", "0"]);

        using var response = await Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        await AssertStoredAsync(url, 40);
    }

    [Theory]
    [InlineData(6, "?0", "beyond_length", null)]
    [InlineData(8, "?0", "beyond_length", "inconsistent-upload-length")]
    [InlineData(8, "?1", "length_conflict", "inconsistent-upload-length")]
    public async Task Content_Past_The_Declared_Length_Is_400_And_Stores_Nothing(int interop, string complete, string code, string? draftType)
    {
        string url = await Rufh.CreateEmptyAsync(Http, interop, 100);
        using (var part = await Http.SendAsync(Rufh.Patch(url, interop, 0, "?0", new byte[60])))
            Assert.True(part.IsSuccessStatusCode);

        using var response = await Http.SendAsync(Rufh.Patch(url, interop, 60, complete, new byte[41]));

        await Rufh.AssertProblemAsync(response, 400, code, draftType);
        await AssertStoredAsync(url, 60);
    }

    [Fact]
    public async Task An_Upload_Length_That_Contradicts_The_Declared_One_On_Creation_Then_Append_Is_Refused()
    {
        string url = await Rufh.CreateEmptyAsync(Http, 8, 100);
        var request = Rufh.Patch(url, 8, 0, "?1", new byte[50]);
        request.Headers.TryAddWithoutValidation("Upload-Length", "50");

        using var response = await Http.SendAsync(request);

        await Rufh.AssertProblemAsync(response, 400, "length_conflict", "inconsistent-upload-length");
        await AssertStoredAsync(url, 0);
    }

    [Theory]
    [InlineData("/rufh/%01")]
    [InlineData("/rufh/a%09b")]
    public async Task Upload_Urls_With_Control_Characters_Are_400(string url)
    {
        using var get = await Http.GetAsync(url);
        await Rufh.AssertProblemAsync(get, 400, "invalid_identifier");
        using var patch = await Http.SendAsync(Rufh.Patch(url, 8, 0, "?0", [1]));
        await Rufh.AssertProblemAsync(patch, 400, "invalid_identifier");
    }

    [Fact]
    public async Task A_Very_Long_Upload_Id_Is_400()
    {
        using var get = await Http.GetAsync("/rufh/" + new string('a', 5000));
        await Rufh.AssertProblemAsync(get, 400, "invalid_identifier");
    }

    private async Task AssertStoredAsync(string url, long bytes)
    {
        var status = await server.Uploads.StatusAsync(Rufh.IdOf(url));
        Assert.Equal(bytes, status.GetProperty("storedBytes").GetInt64());
        Assert.Equal(bytes, await Rufh.OffsetAsync(Http, url));
    }
}
