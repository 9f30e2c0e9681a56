using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// Issue 11: a folder upload of a deep tree is accepted (relative paths up to Linux's PATH_MAX, 4096 characters, apart
/// from the file-name limit), and a download Range no byte satisfies is a 416 problem with <c>Content-Range: bytes */length</c>.
/// Kestrel's request-line and header limits for the same values are tested against the real server (FaultTests).
/// </summary>
public sealed class DeepTreeAndRangeTests : ServerTest
{
    /// <summary>2,000 nested folders, then the file: 4,008 characters.</summary>
    private static readonly string DeepPath = string.Concat(Enumerable.Repeat("d/", 2000)) + "file.bin";

    [Theory]
    [InlineData(ClientKind.ResumableMultipart)]
    [InlineData(ClientKind.ResumableOctet)]
    [InlineData(ClientKind.FlowMultipart)]
    [InlineData(ClientKind.FlowOctet)]
    public async Task A_Relative_Path_Of_2000_Nested_Folders_Is_Accepted_And_Kept(ClientKind kind)
    {
        var file = TestFile.Random("deep-" + kind, 1000, 1000);
        var parameters = UploadClient.Parameters(kind, file, 1);
        string prefix = kind is ClientKind.FlowMultipart or ClientKind.FlowOctet ? "flow" : "resumable";
        parameters[prefix + "RelativePath"] = DeepPath;
        using (var test = await Client.Http.GetAsync("/upload?" + UploadClient.Query(parameters)))
            Assert.Equal(HttpStatusCode.NoContent, test.StatusCode);
        using (var post = await Client.PostAsync(parameters, file.Slice(1), kind))
            Assert.True(post.StatusCode == HttpStatusCode.OK, await post.Content.ReadAsStringAsync());
        var status = await Client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(DeepPath, status.GetProperty("relativePath").GetString());
    }

    [Fact]
    public async Task A_Relative_Path_Over_4096_Characters_Is_An_Invalid_File_Name()
    {
        var file = TestFile.Random("too-deep", 1000, 1000);
        var parameters = UploadClient.Parameters(ClientKind.FlowMultipart, file, 1);
        parameters["flowRelativePath"] = new string('d', 4097);
        using var post = await Client.PostAsync(parameters, file.Slice(1), ClientKind.FlowMultipart);
        await Refusals.AssertRefusedAsync(post, HttpStatusCode.BadRequest, "invalid_file_name");
    }

    [Fact]
    public async Task A_Tus_Upload_With_Uppys_Metadata_At_The_Name_And_Path_Limits_Is_Created()
    {
        // Uppy sends name and filename (both the file name), type, filetype and relativePath; here the name is 255 CJK
        // characters (765 bytes of UTF-8) and the path 4,095 characters in folders of 255: about 18 KB of base64.
        string name = new('東', 255);
        string path = string.Concat(Enumerable.Repeat(name + "/", 15)) + name;
        string metadata = TusClient.Metadata(("relativePath", path), ("name", name), ("type", "video/mp4"), ("filetype", "video/mp4"), ("filename", name));
        Assert.True(metadata.Length > 16 * 1024, metadata.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var tus = TusClient.Of(App);
        using var response = await tus.CreateAsync(10, metadata);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        var status = await Client.StatusAsync(TusClient.IdOf(response.Headers.Location!.OriginalString));
        Assert.Equal(path, status.GetProperty("relativePath").GetString());
        Assert.Equal(name, status.GetProperty("fileName").GetString());
    }

    [Theory]
    [InlineData("bytes=-0")]
    [InlineData("bytes=1000-")]
    [InlineData("bytes=5000-6000")]
    public async Task A_Download_Range_Outside_The_File_Is_416_Problem_With_The_Length(string range)
    {
        var file = TestFile.Random("range-problem", 1000, 1000);
        await Client.UploadAllAsync(file);
        await Client.WaitForCompleteAsync(file.Identifier);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/files/range-problem");
        request.Headers.TryAddWithoutValidation("Range", range);
        using var response = await Client.Http.SendAsync(request);
        await Refusals.AssertRefusedAsync(response, HttpStatusCode.RequestedRangeNotSatisfiable, "range_not_satisfiable");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("bytes */1000", response.Content.Headers.ContentRange?.ToString());
        Assert.Null(response.Content.Headers.ContentDisposition);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(416, problem.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task A_Satisfiable_Range_Is_Still_206_With_Its_Bytes()
    {
        var file = TestFile.Random("range-ok", 1000, 1000);
        await Client.UploadAllAsync(file);
        await Client.WaitForCompleteAsync(file.Identifier);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/files/range-ok");
        request.Headers.Range = new RangeHeaderValue(990, null);
        using var response = await Client.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        Assert.Equal(file.Data[990..], await response.Content.ReadAsByteArrayAsync());
        Assert.Equal("bytes 990-999/1000", response.Content.Headers.ContentRange?.ToString());
    }
}
