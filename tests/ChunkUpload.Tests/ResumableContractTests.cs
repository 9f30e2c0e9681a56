using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>The HTTP contract of GET/POST /upload, /uploads/{id} and /files/{id}, case by case, for both clients.</summary>
public sealed class ResumableContractTests : ServerTest
{
    public static TheoryData<ClientKind> AllClients => new() { ClientKind.ResumableMultipart, ClientKind.ResumableOctet, ClientKind.FlowMultipart, ClientKind.FlowOctet };

    [Theory]
    [MemberData(nameof(AllClients))]
    public async Task Test_Get_Returns_204_Then_200_Once_The_Chunk_Is_Stored(ClientKind kind)
    {
        // The 2,459,177-byte fixture of PROTOCOLS.md section 10: two chunks, the last 1,410,601 bytes.
        var file = TestFile.Random("2459177-Fbin-" + kind, 2_459_177, 1_048_576);
        Assert.Equal(2, file.TotalChunks);

        using (var missing = await Client.TestChunkAsync(file, 1, kind))
            Assert.Equal(HttpStatusCode.NoContent, missing.StatusCode);

        using (var post = await Client.PostChunkAsync(file, 1, kind))
        {
            Assert.Equal(HttpStatusCode.OK, post.StatusCode);
            var ack = await post.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal(file.Identifier, ack.GetProperty("identifier").GetString());
            Assert.Equal(1, ack.GetProperty("chunkNumber").GetInt32());
            Assert.Equal(1, ack.GetProperty("receivedChunks").GetInt32());
            Assert.Equal("receiving", ack.GetProperty("state").GetString());
        }

        using (var stored = await Client.TestChunkAsync(file, 1, kind))
            Assert.Equal(HttpStatusCode.OK, stored.StatusCode);
        using (var other = await Client.TestChunkAsync(file, 2, kind))
            Assert.Equal(HttpStatusCode.NoContent, other.StatusCode);

        using (var last = await Client.PostChunkAsync(file, 2, kind))
            Assert.Equal(HttpStatusCode.OK, last.StatusCode);

        var status = await Client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(file.Sha256, status.GetProperty("sha256").GetString());
        Assert.Equal(await DownloadAsync(file.Identifier), file.Data);
    }

    [Theory]
    [InlineData("PUT")]
    [InlineData("PATCH")]
    public async Task Chunks_Can_Be_Sent_With_The_Upload_Methods_Resumable_Js_Allows(string method)
    {
        var file = TestFile.Random("method-" + method, 2000, 1000);
        for (int n = 1; n <= file.TotalChunks; n++)
        {
            var request = new HttpRequestMessage(new HttpMethod(method), "/upload?" + UploadClient.Query(UploadClient.Parameters(ClientKind.ResumableOctet, file, n)))
            {
                Content = new ReadOnlyMemoryContent(file.Slice(n)),
            };
            using var response = await Client.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var status = await Client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(file.Sha256, status.GetProperty("sha256").GetString());
    }

    [Theory]
    [InlineData("video/mp4")]
    [InlineData("text/plain")]
    [InlineData("application/json")]
    public async Task Octet_Chunks_Typed_As_The_File_Are_Accepted(string contentType)
    {
        // flow.js octet mode slices the file with its own MIME type; only multipart/form-data is parsed as a form.
        var file = TestFile.Random("typed-" + contentType.Replace('/', '-'), 1500, 1000);
        var content = new ReadOnlyMemoryContent(file.Slice(1));
        content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        using var response = await Client.Http.PostAsync("/upload?" + UploadClient.Query(UploadClient.Parameters(ClientKind.FlowOctet, file, 1)), content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var status = await Client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(file.Sha256, status.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task Unknown_Routes_Are_Problems_With_A_Code()
    {
        using var missing = await Client.Http.GetAsync("/no/such/thing");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        await AssertProblemAsync(missing, "route_not_found");
        using var method = await Client.Http.DeleteAsync("/upload");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, method.StatusCode);
        await AssertProblemAsync(method, "method_not_allowed");
    }

    [Fact]
    public async Task Identifiers_With_Slashes_Are_Reachable_Encoded_Or_Not()
    {
        var file = TestFile.Random("folder/sub/file-1", 1000, 1000);
        await Client.UploadAllAsync(file);
        await Client.WaitForCompleteAsync(file.Identifier);
        foreach (var path in new[] { "/uploads/folder%2Fsub%2Ffile-1", "/uploads/folder/sub/file-1", "/files/folder%2Fsub%2Ffile-1" })
        {
            using var response = await Client.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using var delete = await Client.Http.DeleteAsync("/uploads/folder%2Fsub%2Ffile-1");
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
    }

    [Fact]
    public async Task Status_Reports_Geometry_Received_And_Missing_Chunks()
    {
        var file = TestFile.Random("status-1", 5 * 1024, 1024, name: "report.pdf");
        await Client.UploadAllAsync(file, order: [2, 4]);

        var status = await Client.StatusAsync(file.Identifier);
        Assert.Equal("status-1", status.GetProperty("identifier").GetString());
        Assert.Equal("report.pdf", status.GetProperty("fileName").GetString());
        Assert.Equal(5 * 1024, status.GetProperty("totalSize").GetInt64());
        Assert.Equal(1024, status.GetProperty("chunkSize").GetInt64());
        Assert.Equal(5, status.GetProperty("totalChunks").GetInt32());
        Assert.Equal(2, status.GetProperty("receivedChunks").GetInt32());
        Assert.Equal([1, 3, 5], status.GetProperty("missingChunks").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal("receiving", status.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, status.GetProperty("sha256").ValueKind);
    }

    [Fact]
    public async Task Unknown_Upload_Is_404_Problem_For_Status_Delete_And_Download()
    {
        foreach (var request in new[]
                 {
                     new HttpRequestMessage(HttpMethod.Get, "/uploads/nope"),
                     new HttpRequestMessage(HttpMethod.Delete, "/uploads/nope"),
                     new HttpRequestMessage(HttpMethod.Get, "/files/nope"),
                 })
        {
            using var response = await Client.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            await AssertProblemAsync(response, "upload_not_found");
        }
    }

    [Fact]
    public async Task Download_Is_404_Until_Complete_Then_Supports_Ranges()
    {
        var file = TestFile.Random("dl-1", 3000, 1000);
        await Client.UploadAllAsync(file, order: [1, 2]);
        using (var early = await Client.Http.GetAsync("/files/dl-1"))
        {
            Assert.Equal(HttpStatusCode.NotFound, early.StatusCode);
            await AssertProblemAsync(early, "file_not_ready");
        }

        await Client.UploadAllAsync(file, order: [3]);
        await Client.WaitForCompleteAsync(file.Identifier);

        var request = new HttpRequestMessage(HttpMethod.Get, "/files/dl-1");
        request.Headers.Range = new RangeHeaderValue(1000, 1499);
        using var partial = await Client.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
        Assert.Equal(file.Data.AsSpan(1000, 500).ToArray(), await partial.Content.ReadAsByteArrayAsync());
        Assert.Equal(3000, partial.Content.Headers.ContentRange!.Length);
    }

    [Fact]
    public async Task Download_Carries_The_Original_Name_Safely()
    {
        var file = TestFile.Random("name-1", 10, 1024, name: "../../résumé \"東京\".bin");
        await Client.UploadAllAsync(file);
        await Client.WaitForCompleteAsync(file.Identifier);

        using var response = await Client.Http.GetAsync("/files/name-1");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var disposition = response.Content.Headers.ContentDisposition!;
        Assert.Equal("attachment", disposition.DispositionType);
        Assert.Equal("résumé 東京.bin", Uri.UnescapeDataString(disposition.FileNameStar!));
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
    }

    [Fact]
    public async Task Delete_Removes_Chunks_And_File_And_Returns_204()
    {
        var file = TestFile.Random("del-1", 4096, 1024);
        await Client.UploadAllAsync(file, order: [1, 3]);

        using (var delete = await Client.Http.DeleteAsync("/uploads/del-1"))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using (var status = await Client.Http.GetAsync("/uploads/del-1"))
            Assert.Equal(HttpStatusCode.NotFound, status.StatusCode);
        using (var test = await Client.TestChunkAsync(file, 1))
            Assert.Equal(HttpStatusCode.NoContent, test.StatusCode);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(Dir.StorageRoot, "sessions")));

        // The identifier can be used again from scratch.
        await Client.UploadAllAsync(file);
        var done = await Client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(file.Sha256, done.GetProperty("sha256").GetString());

        using (var delete = await Client.Http.DeleteAsync("/uploads/del-1"))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(Dir.StorageRoot, "completed")));
    }

    [Fact]
    public async Task Chunk_That_Disagrees_With_Its_Session_Is_409()
    {
        var file = TestFile.Random("mismatch-1", 4096, 1024);
        await Client.UploadAllAsync(file, order: [1]);
        var other = file with { Data = new byte[8192] };
        using var response = await Client.PostChunkAsync(other, 2);
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        await AssertProblemAsync(response, "session_mismatch");

        var renamed = file with { Name = "other.bin" };
        using var renamedResponse = await Client.PostChunkAsync(renamed, 2);
        Assert.Equal(HttpStatusCode.Conflict, renamedResponse.StatusCode);
    }

    [Theory]
    [InlineData(ClientKind.ResumableMultipart)]
    [InlineData(ClientKind.ResumableOctet)]
    public async Task Body_Longer_Or_Shorter_Than_The_Chunk_Is_400_And_Not_Stored(ClientKind kind)
    {
        var file = TestFile.Random("len-" + kind, 4096, 1024);
        var parameters = UploadClient.Parameters(kind, file, 1);
        using (var longer = await Client.PostAsync(parameters, new byte[1025], kind))
        {
            Assert.Equal(HttpStatusCode.BadRequest, longer.StatusCode);
            await AssertProblemAsync(longer, "chunk_length_mismatch");
        }

        using (var shorter = await Client.PostAsync(parameters, new byte[1000], kind))
            Assert.Equal(HttpStatusCode.BadRequest, shorter.StatusCode);
        using var test = await Client.TestChunkAsync(file, 1);
        Assert.Equal(HttpStatusCode.NoContent, test.StatusCode);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Dir.StorageRoot, "tmp")));
    }

    [Fact]
    public async Task Declared_Current_Chunk_Size_Must_Match_The_Geometry()
    {
        var file = TestFile.Random("cur-1", 4096, 1024);
        var parameters = UploadClient.Parameters(ClientKind.ResumableMultipart, file, 4);
        parameters["resumableCurrentChunkSize"] = "1000";
        using var response = await Client.PostAsync(parameters, new byte[1000], ClientKind.ResumableMultipart);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await AssertProblemAsync(response, "chunk_size_mismatch");
    }

    [Fact]
    public async Task Multipart_Without_File_Part_Is_400()
    {
        var file = TestFile.Random("nofile-1", 100, 1024);
        var form = new MultipartFormDataContent();
        foreach (var (name, value) in UploadClient.Parameters(ClientKind.FlowMultipart, file, 1))
            form.Add(new StringContent(value), name);
        using var response = await Client.Http.PostAsync("/upload", form);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await AssertProblemAsync(response, "missing_file_part");
    }

    [Fact]
    public async Task Truncated_Multipart_Is_400()
    {
        var content = new StringContent("--abc\r\nContent-Disposition: form-data; name=\"flowChunkNumber\"\r\n\r\n1\r\n--ab");
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("multipart/form-data; boundary=abc");
        using var response = await Client.Http.PostAsync("/upload", content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
    }

    [Fact]
    public async Task Missing_Parameters_Are_400_On_Test_And_Upload_Never_404()
    {
        using var test = await Client.Http.GetAsync("/upload?flowChunkNumber=1");
        Assert.Equal(HttpStatusCode.BadRequest, test.StatusCode);
        await AssertProblemAsync(test, "missing_parameter");

        using var post = await Client.Http.PostAsync("/upload", new ByteArrayContent([1, 2, 3]));
        Assert.Equal(HttpStatusCode.BadRequest, post.StatusCode);
    }

    [Fact]
    public async Task Health_Config_And_Swagger_Describe_The_Server()
    {
        using var health = await Client.Http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);

        var config = await Client.Http.GetFromJsonAsync<JsonElement>("/config");
        Assert.Equal(8 * 1024 * 1024, config.GetProperty("chunkSize").GetInt64());
        Assert.Contains(400, config.GetProperty("permanentErrors").EnumerateArray().Select(e => e.GetInt32()));
        Assert.DoesNotContain(503, config.GetProperty("permanentErrors").EnumerateArray().Select(e => e.GetInt32()));

        var swagger = await Client.Http.GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json");
        var paths = swagger.GetProperty("paths");
        foreach (var path in new[] { "/upload", "/uploads/{identifier}", "/files/{identifier}", "/healthz" })
            Assert.True(paths.TryGetProperty(path, out _), path + " is not documented");
        using var ui = await Client.Http.GetAsync("/swagger/index.html");
        Assert.Equal(HttpStatusCode.OK, ui.StatusCode);
    }

    [Fact]
    public async Task Cors_Allows_Configured_Origins_Only()
    {
        using var app = new ChunkUploadApplication(Dir.StorageRoot + "-cors", new Dictionary<string, string?> { ["Cors:AllowedOrigins:0"] = "http://page.example" });
        var http = app.CreateClient();
        foreach (var (origin, allowed) in new[] { ("http://page.example", true), ("http://evil.example", false) })
        {
            var preflight = new HttpRequestMessage(HttpMethod.Options, "/upload");
            preflight.Headers.Add("Origin", origin);
            preflight.Headers.Add("Access-Control-Request-Method", "POST");
            preflight.Headers.Add("Access-Control-Request-Headers", "x-requested-with, content-range");
            using var response = await http.SendAsync(preflight);
            Assert.Equal(allowed, response.Headers.TryGetValues("Access-Control-Allow-Origin", out var values) && values.Single() == origin);
        }
    }

    private async Task<byte[]> DownloadAsync(string identifier) => await Client.Http.GetByteArrayAsync("/files/" + Uri.EscapeDataString(identifier));

    internal static async Task AssertProblemAsync(HttpResponseMessage response, string code)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(code, problem.GetProperty("code").GetString());
        Assert.Equal((int)response.StatusCode, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()));
    }
}
