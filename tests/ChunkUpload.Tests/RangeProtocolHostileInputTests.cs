using System.Net;
using System.Text;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// Hostile input to the Google-style, nginx and append protocols: each is a 4xx in the protocol's own error shape with a
/// stable code, and nothing is stored. One server for the class; every case uses ids of its own.
/// </summary>
public sealed class RangeProtocolHostileInputTests(ProtocolServer server) : IClassFixture<ProtocolServer>
{
    private static readonly string Huge = new('x', 5000);
    private static int _next;

    private HttpClient Http => server.Http;

    public static TheoryData<string, int, string> GoogleRanges => new()
    {
        { "bytes 9-5/40", 400, "invalid_parameter" }, // inverted
        { "bytes 0-5/3", 400, "beyond_length" }, // past the total
        { "bytes */-1", 400, "invalid_parameter" },
        { "bytes 0-9/-1", 400, "invalid_parameter" },
        { "bytes -5-4/40", 400, "invalid_parameter" },
        { "bytes 0-9223372036854775808/*", 400, "invalid_parameter" }, // past 2^63
        { "bytes 0-99999999999999999999/*", 400, "invalid_parameter" },
        { "bytes 0-9223372036854775807/*", 400, "invalid_parameter" }, // the end byte would overflow the length
        { "bytes 0-9/9223372036854775807", 400, "file_too_large" },
        { "bytes 0--1/0", 400, "invalid_parameter" },
        { "bytes 0-9", 400, "invalid_parameter" },
        { "bytes 0-9/40/50", 400, "invalid_parameter" },
        { "bytes 0x0-9/40", 400, "invalid_parameter" },
        { "bits 0-9/40", 400, "invalid_parameter" },
        { "0-9/40", 400, "invalid_parameter" },
        { "bytes 0-9/40, bytes 10-19/40", 400, "invalid_parameter" },
        { "bytes 0-4/40", 400, "chunk_length_mismatch" }, // the body has 10 bytes
        { "bytes 0-*/5", 400, "chunk_length_mismatch" },
    };

    [Theory]
    [MemberData(nameof(GoogleRanges))]
    public async Task Google_Refuses_Hostile_Content_Ranges_And_Stores_Nothing(string contentRange, int status, string code)
    {
        string name = NewId("g-range");
        using var response = await GoogleProtocolTests.SendPutAsync(Http, "/upload/" + name, new byte[10], contentRange);
        await GoogleProtocolTests.AssertGoogleErrorAsync(response, status, code);
        await AssertNothingStoredAsync(name);
    }

    [Fact]
    public async Task Google_Refuses_A_Content_Range_Repeated_With_Different_Values()
    {
        string name = NewId("g-dup");
        var request = new HttpRequestMessage(HttpMethod.Put, "/upload/" + name) { Content = new ByteArrayContent(new byte[10]) };
        request.Content.Headers.TryAddWithoutValidation("Content-Range", ["bytes 0-9/40", "bytes 0-9/50"]);
        using var response = await Http.SendAsync(request);
        await GoogleProtocolTests.AssertGoogleErrorAsync(response, 400, "conflicting_parameter");
        await AssertNothingStoredAsync(name);
    }

    [Theory]
    [InlineData("a%01b")]
    [InlineData("tab%09name")]
    [InlineData("huge")]
    public async Task Google_Refuses_Names_With_Control_Characters_Or_Too_Long(string name)
    {
        string path = "/upload/" + (name == "huge" ? Huge : name);
        using (var put = await GoogleProtocolTests.SendPutAsync(Http, path, new byte[10], null))
            await GoogleProtocolTests.AssertGoogleErrorAsync(put, 400, "invalid_identifier");
        using (var init = await Http.PostAsync(path + "?uploadType=resumable", null))
            await GoogleProtocolTests.AssertGoogleErrorAsync(init, 400, "invalid_identifier");
        AssertNothingOutsideTheRoot();
    }

    public static TheoryData<string, string?, string?, string?, string> GoogleInitiations => new()
    {
        // query, JSON body, X-Upload-Content-Length, X-Upload-Content-Type, code
        { "", null, null, null, "invalid_parameter" },
        { "?uploadType=media", null, null, null, "invalid_parameter" },
        { "?uploadType=resumable&uploadType=multipart", null, null, null, "invalid_parameter" },
        { "?uploadType=resumable", "not json", null, null, "invalid_parameter" },
        { "?uploadType=resumable", "[1, 2]", null, null, "invalid_parameter" },
        { "?uploadType=resumable", "{\"name\": 5}", null, null, "invalid_parameter" },
        { "?uploadType=resumable", "{\"name\": \"a\\u0000b\"}", null, null, "invalid_file_name" },
        { "?uploadType=resumable", "{\"name\": \"" + new string('n', 20_000) + "\"}", null, null, "invalid_parameter" }, // over 16 KiB
        { "?uploadType=resumable", null, "-1", null, "invalid_parameter" },
        { "?uploadType=resumable", null, "1e3", null, "invalid_parameter" },
        { "?uploadType=resumable", null, "99999999999999999999", null, "invalid_parameter" },
        { "?uploadType=resumable", null, "9223372036854775807", null, "file_too_large" },
    };

    [Theory]
    [MemberData(nameof(GoogleInitiations))]
    public async Task Google_Refuses_Hostile_Initiations_And_Creates_Nothing(string query, string? json, string? length, string? type, string code)
    {
        string name = NewId("g-init");
        var request = new HttpRequestMessage(HttpMethod.Post, "/upload/" + name + query)
        {
            Content = json is null ? null : new StringContent(json, Encoding.UTF8, "application/json"),
        };
        if (length is not null)
            request.Headers.TryAddWithoutValidation("X-Upload-Content-Length", length);
        if (type is not null)
            request.Headers.TryAddWithoutValidation("X-Upload-Content-Type", type);
        using var response = await Http.SendAsync(request);
        await GoogleProtocolTests.AssertGoogleErrorAsync(response, 400, code);
        Assert.Null(response.Headers.Location);
        await AssertNothingStoredAsync(name);
    }

    public static TheoryData<string, string?, int, string> NginxHeaders => new()
    {
        // header to change (a trailing '+' adds a second value), its value (null removes it), status, code
        { "Content-Type", null, 400, "missing_parameter" },
        { "Content-Type", "multipart/form-data; boundary=x", 415, "unsupported_media_type" },
        { "Content-Disposition", null, 415, "unsupported_media_type" },
        { "Content-Disposition", "inline; filename=\"a.bin\"", 400, "invalid_parameter" },
        { "Content-Disposition", "attachment", 400, "invalid_file_name" },
        { "Content-Disposition", "attachment; filename=\"a%00b.bin\"", 400, "invalid_file_name" },
        { "Session-ID", null, 400, "missing_parameter" },
        { "Session-ID", "a/b", 400, "invalid_identifier" },
        { "Session-ID", "../../etc/passwd", 400, "invalid_identifier" },
        { "Session-ID", "a b", 400, "invalid_identifier" },
        { "Session-ID", "a\u0001b", 400, "invalid_identifier" },
        { "Session-ID", Huge, 400, "invalid_identifier" },
        { "Session-ID+", "other", 400, "conflicting_parameter" },
        { "X-Session-ID", "other", 400, "conflicting_parameter" },
        { "X-Content-Range", null, 400, "missing_parameter" },
        { "X-Content-Range", "bytes 0-5", 400, "invalid_parameter" },
        { "X-Content-Range", "0-5/24", 400, "invalid_parameter" },
        { "X-Content-Range", "bytes 9-5/24", 400, "invalid_parameter" },
        { "X-Content-Range", "bytes */24", 400, "invalid_parameter" },
        { "X-Content-Range", "bytes 0-*/24", 400, "invalid_parameter" },
        { "X-Content-Range", "bytes 0-5/*", 400, "invalid_parameter" },
        { "X-Content-Range", "bytes */-1", 400, "invalid_parameter" },
        { "X-Content-Range", "bytes 0-5/-1", 400, "invalid_parameter" },
        { "X-Content-Range", "bytes 0-99999999999999999999/99999999999999999999", 400, "invalid_parameter" },
        { "X-Content-Range", "bytes 0-5/3", 416, "beyond_length" },
        { "X-Content-Range", "bytes 0-9/24", 416, "chunk_length_mismatch" }, // the body has 6 bytes
        { "X-Content-Range", "bytes 0-5/9223372036854775807", 413, "file_too_large" },
        { "X-Content-Range+", "bytes 0-5/30", 400, "conflicting_parameter" },
        { "Content-Range", "bytes 0-4/24", 400, "conflicting_parameter" },
    };

    [Theory]
    [MemberData(nameof(NginxHeaders))]
    public async Task Nginx_Refuses_Hostile_Segments_With_A_Text_Code_And_Stores_Nothing(string header, string? value, int status, string code)
    {
        string session = NewId("n");
        var request = NginxUploadProtocolTests.Segment(session, new byte[6], 0, 5, 24);
        Change(request, header, value);
        using var response = await Http.SendAsync(request);
        await NginxUploadProtocolTests.AssertTextErrorAsync(response, status, code);
        await AssertNothingStoredAsync(session);
        AssertNothingOutsideTheRoot();
    }

    public static TheoryData<string?, string?, string?, int, string> AppendPosts => new()
    {
        // X-File-Id ("+" adds a second, different value), X-Start-Byte, X-File-Size, status, code
        { null, "0", null, 400, "missing_parameter" },
        { "../../etc/passwd-1-2", "0", null, 400, "invalid_identifier" },
        { "C:\\Windows\\evil-1-2", "0", null, 400, "invalid_identifier" },
        { "a\u0001b-1-2", "0", null, 400, "invalid_identifier" },
        { Huge, "0", null, 400, "invalid_identifier" },
        { "+", "0", null, 400, "conflicting_parameter" },
        { "", null, null, 400, "missing_parameter" },
        { "", "-1", null, 400, "invalid_parameter" },
        { "", "abc", null, 400, "invalid_parameter" },
        { "", "+5", null, 400, "invalid_parameter" },
        { "", "1e3", null, 400, "invalid_parameter" },
        { "", "0x10", null, 400, "invalid_parameter" },
        { "", "99999999999999999999", null, 400, "invalid_parameter" },
        { "", "100", null, 409, "offset_mismatch" }, // past the stored end (nothing stored)
        { "", "0", "-1", 400, "invalid_parameter" },
        { "", "0", "99999999999999999999", 400, "invalid_parameter" },
        { "", "0", "9223372036854775807", 400, "file_too_large" },
        { "", "0", "5", 400, "beyond_length" }, // the body has 10 bytes
    };

    [Theory]
    [MemberData(nameof(AppendPosts))]
    public async Task Append_Refuses_Hostile_Posts_With_A_Text_Code_And_Stores_Nothing(string? fileId, string? start, string? size, int status, string code)
    {
        string id = NewId("a") + "-10-1";
        var request = AppendProtocolTests.Post(fileId is "" or "+" ? id : fileId, start, new byte[10]);
        if (fileId == "+")
            request.Headers.TryAddWithoutValidation("X-File-Id", id + "-other");
        if (size is not null)
            request.Headers.TryAddWithoutValidation("X-File-Size", size);
        using var response = await Http.SendAsync(request);
        await AppendProtocolTests.AssertTextErrorAsync(response, status, code);
        await AssertNothingStoredAsync(id);
        using var count = await AppendProtocolTests.StatusAsync(Http, id);
        Assert.Equal("0", await count.Content.ReadAsStringAsync());
        AssertNothingOutsideTheRoot();
    }

    [Fact]
    public async Task Append_Refuses_A_Size_Stated_Twice_Differently()
    {
        string id = NewId("a-size") + "-10-1";
        var request = AppendProtocolTests.Post(id, "0", new byte[10]);
        request.Headers.TryAddWithoutValidation("X-File-Size", "10");
        request.Headers.TryAddWithoutValidation("Upload-Length", "20");
        using var response = await Http.SendAsync(request);
        await AppendProtocolTests.AssertTextErrorAsync(response, 400, "conflicting_parameter");
        await AssertNothingStoredAsync(id);
    }

    [Theory]
    [InlineData(null, "missing_parameter")]
    [InlineData("../../etc/passwd-1-2", "invalid_identifier")]
    [InlineData("a\u0001b-1-2", "invalid_identifier")]
    [InlineData("huge", "invalid_identifier")]
    [InlineData("+", "conflicting_parameter")]
    public async Task Append_Status_Refuses_Hostile_File_Ids(string? fileId, string code)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/append/status");
        if (fileId == "+")
            request.Headers.TryAddWithoutValidation("X-File-Id", ["one-1-2", "two-1-2"]);
        else if (fileId is not null)
            request.Headers.TryAddWithoutValidation("X-File-Id", fileId == "huge" ? Huge : fileId);
        using var response = await Http.SendAsync(request);
        await AppendProtocolTests.AssertTextErrorAsync(response, 400, code);
    }

    private static string NewId(string prefix) => $"{prefix}-{Interlocked.Increment(ref _next)}";

    private static void Change(HttpRequestMessage request, string header, string? value)
    {
        bool add = header.EndsWith('+');
        string name = header.TrimEnd('+');
        var headers = name.StartsWith("Content-", StringComparison.Ordinal) || name == "X-Content-Range"
            ? (System.Net.Http.Headers.HttpHeaders)request.Content!.Headers
            : request.Headers;
        if (!add)
            headers.Remove(name);
        if (value is not null)
            headers.TryAddWithoutValidation(name, value);
    }

    private async Task AssertNothingStoredAsync(string id) =>
        Assert.Equal(HttpStatusCode.NotFound, await server.UploadStatusCodeAsync(id));

    private void AssertNothingOutsideTheRoot() =>
        Assert.Equal([server.Dir.StorageRoot], Directory.EnumerateFileSystemEntries(server.Dir.Path));
}
