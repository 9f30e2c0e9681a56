using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// The Fine Uploader 5.16.2 traditional endpoint at /fineuploader (../shared/PROTOCOLS.md section 4): every answer is
/// JSON with "success"; failures carry "error", a stable "code", and "preventRetry" or "reset" as the client needs.
/// </summary>
public sealed class FineUploaderTests : ServerTest
{
    private const int AssembledEvent = 1004;

    // ------------------------------------------------------------------ whole files

    [Fact]
    public async Task Whole_File_Multipart_Returns_200_Success_And_The_File_Completes()
    {
        var file = FuFile.Random("whole-multipart.bin", 300_000, partSize: 2_000_000);
        using var response = await PostWholeAsync(file, raw: false);

        var json = await AssertSuccessAsync(response);
        Assert.Equal(file.Uuid, json.GetProperty("uuid").GetString());
        Assert.Equal("complete", json.GetProperty("state").GetString());
        Assert.Equal(file.Sha256, json.GetProperty("sha256").GetString());
        await AssertStoredAsync(file);
    }

    [Fact]
    public async Task Whole_File_Raw_With_Parameters_In_The_Query_String_Completes()
    {
        // forceMultipart and paramsInBody off: octet body, qquuid, qqfilename and qqfile=<name> in the query, no size.
        var file = FuFile.Random("whole-raw.bin", 123_457, partSize: 2_000_000);
        var content = new ByteArrayContent(file.Data);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add("X-Mime-Type", "application/x-test");
        var query = Query(new() { ["qquuid"] = file.Uuid, ["qqfilename"] = file.Name, ["qqfile"] = file.Name });
        using var response = await Client.Http.PostAsync("/fineuploader?" + query, content);

        await AssertSuccessAsync(response);
        await AssertStoredAsync(file);
    }

    [Fact]
    public async Task Empty_Whole_File_Completes()
    {
        var file = FuFile.Random("empty.bin", 0, partSize: 1000);
        using var response = await PostWholeAsync(file, raw: false);
        await AssertSuccessAsync(response);
        var status = await Client.WaitForCompleteAsync(file.Uuid);
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", status.GetProperty("sha256").GetString());
    }

    // ------------------------------------------------------------------ chunked

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Parts_In_Order_Complete_The_File_With_The_Last_Part_Answer(bool raw)
    {
        // The 2,459,177-byte fixture of PROTOCOLS.md section 10 in Fine Uploader's default 2,000,000-byte parts.
        var file = FuFile.Random("F.bin", 2_459_177, partSize: 2_000_000);
        Assert.Equal(2, file.Parts);
        using (var first = await PostPartAsync(file, 0, raw))
        {
            var json = await AssertSuccessAsync(first);
            Assert.Equal(0, json.GetProperty("partIndex").GetInt32());
            Assert.Equal("receiving", json.GetProperty("state").GetString());
        }

        var parameters = file.PartParameters(1);
        Assert.Equal("2000000", parameters["qqpartbyteoffset"]);
        Assert.Equal("459177", parameters["qqchunksize"]);
        using (var last = await PostPartAsync(file, 1, raw))
        {
            // Without a done endpoint the last part's answer is the file's completion answer.
            var json = await AssertSuccessAsync(last);
            Assert.Equal("complete", json.GetProperty("state").GetString());
            Assert.Equal(file.Sha256, json.GetProperty("sha256").GetString());
        }

        await AssertStoredAsync(file);
    }

    [Fact]
    public async Task Parts_In_Reverse_Order_Then_Done_Returns_200_And_A_Repeated_Done_Assembles_Nothing_Again()
    {
        var file = FuFile.Random("reverse.bin", 10_500, partSize: 1000);
        for (int i = file.Parts - 1; i >= 0; i--)
        {
            using var part = await PostPartAsync(file, i);
            await AssertSuccessAsync(part);
        }

        using (var done = await DoneAsync(file))
        {
            var json = await AssertSuccessAsync(done);
            Assert.Equal("complete", json.GetProperty("state").GetString());
            Assert.Equal(file.Sha256, json.GetProperty("sha256").GetString());
        }

        using (var again = await DoneAsync(file))
            await AssertSuccessAsync(again);
        await AssertStoredAsync(file);
        Assert.Equal(1, App.Logs.Count(AssembledEvent, $"Upload {file.Uuid} assembled"));
    }

    [Fact]
    public async Task Concurrent_Parts_All_Succeed_And_Done_Completes_Once()
    {
        var file = FuFile.Random("concurrent.bin", 64 * 1024 + 17, partSize: 4096);
        var posts = Enumerable.Range(0, file.Parts).Select(async i =>
        {
            using var response = await PostPartAsync(file, i, raw: i % 2 == 1);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        });
        foreach (var (status, body) in await Task.WhenAll(posts))
        {
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.True(JsonDocument.Parse(body).RootElement.GetProperty("success").GetBoolean(), body);
        }

        using var done = await DoneAsync(file);
        await AssertSuccessAsync(done);
        await AssertStoredAsync(file);
        Assert.Equal(1, App.Logs.Count(AssembledEvent, $"Upload {file.Uuid} assembled"));
    }

    [Fact]
    public async Task A_Re_Sent_Part_Is_Answered_Success_And_Its_Stored_Bytes_Are_Not_Rewritten()
    {
        var file = FuFile.Random("resent.bin", 3000, partSize: 1000);
        using (var first = await PostPartAsync(file, 1))
            await AssertSuccessAsync(first);
        // The client lost the answer and sends the part again; these bytes differ, and must change nothing.
        using (var again = await PostPartAsync(file, 1, body: new byte[1000]))
            await AssertSuccessAsync(again);
        foreach (int i in new[] { 0, 2 })
        {
            using var part = await PostPartAsync(file, i);
            await AssertSuccessAsync(part);
        }

        using var done = await DoneAsync(file);
        await AssertSuccessAsync(done);
        await AssertStoredAsync(file);
    }

    [Fact]
    public async Task Done_Accepts_A_Json_Payload()
    {
        var file = FuFile.Random("json-done.bin", 2500, partSize: 1000);
        for (int i = 0; i < file.Parts; i++)
        {
            using var part = await PostPartAsync(file, i);
            await AssertSuccessAsync(part);
        }

        string json = $$"""{"qquuid":"{{file.Uuid}}","qqfilename":"{{file.Name}}","qqtotalfilesize":{{file.Data.Length}},"qqtotalparts":{{file.Parts}}}""";
        using var done = await Client.Http.PostAsync("/fineuploader/done", new StringContent(json, Encoding.UTF8, "application/json"));
        await AssertSuccessAsync(done);
        await AssertStoredAsync(file);
    }

    [Fact]
    public async Task Done_With_Parts_Missing_Returns_409_With_Reset_Naming_The_Parts()
    {
        var file = FuFile.Random("missing.bin", 4500, partSize: 1000);
        foreach (int i in new[] { 0, 2, 4 })
        {
            using var part = await PostPartAsync(file, i);
            await AssertSuccessAsync(part);
        }

        using var done = await DoneAsync(file);
        // A reset is the only way this client sends parts again: it starts over from part 0 (stored parts are drained).
        var json = await AssertFailureAsync(done, HttpStatusCode.Conflict, "parts_missing", preventRetry: false, reset: true);
        Assert.Contains("Parts 1, 3 of 5", json.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal("receiving", (await Client.StatusAsync(file.Uuid)).GetProperty("state").GetString());

        foreach (int i in new[] { 0, 1, 2, 3, 4 })
        {
            using var part = await PostPartAsync(file, i);
            await AssertSuccessAsync(part);
        }

        using var again = await DoneAsync(file);
        await AssertSuccessAsync(again);
        await AssertStoredAsync(file);
    }

    [Fact]
    public async Task Done_For_Parts_That_Never_Came_Returns_404_With_Reset_And_Stores_Nothing()
    {
        var file = FuFile.Random("never.bin", 4500, partSize: 1000);
        using var done = await DoneAsync(file);
        await AssertFailureAsync(done, HttpStatusCode.NotFound, "upload_not_found", preventRetry: false, reset: true);
        AssertNothingStored();
    }

    [Fact]
    public async Task Status_Reports_Parts_As_Chunks_And_The_Download_Works()
    {
        var file = FuFile.Random("status.bin", 4500, partSize: 1000);
        foreach (int i in new[] { 1, 4 })
        {
            using var part = await PostPartAsync(file, i);
            await AssertSuccessAsync(part);
        }

        var status = await Client.StatusAsync(file.Uuid);
        Assert.Equal("fineuploader", status.GetProperty("protocol").GetString());
        Assert.Equal(1000, status.GetProperty("chunkSize").GetInt64());
        Assert.Equal(5, status.GetProperty("totalChunks").GetInt32());
        Assert.Equal(2, status.GetProperty("receivedChunks").GetInt32());
        Assert.Equal([1, 3, 4], status.GetProperty("missingChunks").EnumerateArray().Select(e => e.GetInt32())); // 1-based
        using (var early = await Client.Http.GetAsync("/files/" + file.Uuid))
            Assert.Equal(HttpStatusCode.NotFound, early.StatusCode);
    }

    // ------------------------------------------------------------------ resume

    [Fact]
    public async Task A_Resumed_Request_For_A_Stored_Part_Is_Answered_Success_And_The_Upload_Goes_On()
    {
        var file = FuFile.Random("resume.bin", 5000, partSize: 1000);
        foreach (int i in new[] { 0, 1, 2 })
        {
            using var part = await PostPartAsync(file, i);
            await AssertSuccessAsync(part);
        }

        // After a reload the in-progress part 2 went back to "remaining": it is sent again, with qqresume=true.
        using (var resumed = await PostPartAsync(file, 2, tweak: p => p["qqresume"] = "true"))
            await AssertSuccessAsync(resumed);
        using (var next = await PostPartAsync(file, 3, raw: true, tweak: p => p["qqresume"] = "true"))
            await AssertSuccessAsync(next);
        using (var last = await PostPartAsync(file, 4))
            await AssertSuccessAsync(last);
        using var done = await DoneAsync(file);
        await AssertSuccessAsync(done);
        await AssertStoredAsync(file);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_Resumed_Request_For_An_Upload_The_Server_No_Longer_Has_Returns_Reset_And_Stores_Nothing(bool raw)
    {
        var file = FuFile.Random("gone.bin", 5000, partSize: 1000);
        using var resumed = await PostPartAsync(file, 3, raw, tweak: p => p["qqresume"] = "true");
        var json = await AssertFailureAsync(resumed, HttpStatusCode.NotFound, "upload_not_found", preventRetry: false, reset: true);
        Assert.Contains("send the file again from its first part", json.GetProperty("error").GetString(), StringComparison.Ordinal);
        AssertNothingStored();
    }

    [Fact]
    public async Task A_Resumed_Request_After_The_Upload_Was_Deleted_Returns_Reset()
    {
        var file = FuFile.Random("deleted-then-resumed.bin", 3000, partSize: 1000);
        using (var part = await PostPartAsync(file, 0))
            await AssertSuccessAsync(part);
        using (var delete = await Client.Http.DeleteAsync("/uploads/" + file.Uuid))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);

        using var resumed = await PostPartAsync(file, 1, tweak: p => p["qqresume"] = "true");
        await AssertFailureAsync(resumed, HttpStatusCode.NotFound, "upload_not_found", preventRetry: false, reset: true);
        using var status = await Client.Http.GetAsync("/uploads/" + file.Uuid);
        Assert.Equal(HttpStatusCode.NotFound, status.StatusCode);
    }

    // ------------------------------------------------------------------ delete, conflicts

    [Fact]
    public async Task Delete_Removes_The_Upload_And_A_Second_Delete_Is_404()
    {
        var file = FuFile.Random("delete-me.bin", 3000, partSize: 1000);
        using (var part = await PostPartAsync(file, 0))
            await AssertSuccessAsync(part);

        using (var delete = await Client.Http.DeleteAsync("/fineuploader/" + file.Uuid + "?qquuid=" + file.Uuid))
        {
            var json = await AssertSuccessAsync(delete);
            Assert.Equal(file.Uuid, json.GetProperty("uuid").GetString());
        }

        using (var status = await Client.Http.GetAsync("/uploads/" + file.Uuid))
            Assert.Equal(HttpStatusCode.NotFound, status.StatusCode);
        using var again = await Client.Http.DeleteAsync("/fineuploader/" + file.Uuid);
        await AssertFailureAsync(again, HttpStatusCode.NotFound, "upload_not_found");
        AssertNothingStored();
    }

    [Fact]
    public async Task Writes_Done_And_Delete_For_An_Upload_Of_Another_Protocol_Are_409_Wrong_Protocol()
    {
        var other = TestFile.Random("0b9a1f2e-other-protocol", 3000, 1000);
        using (var chunk = await Client.PostChunkAsync(other, 1))
            Assert.Equal(HttpStatusCode.OK, chunk.StatusCode);
        var file = new FuFile(other.Identifier, other.Name, other.Data, 1000);

        using (var part = await PostPartAsync(file, 1))
            await AssertFailureAsync(part, HttpStatusCode.Conflict, "wrong_protocol");
        using (var done = await DoneAsync(file))
            await AssertFailureAsync(done, HttpStatusCode.Conflict, "wrong_protocol");
        using (var delete = await Client.Http.DeleteAsync("/fineuploader/" + file.Uuid))
            await AssertFailureAsync(delete, HttpStatusCode.Conflict, "wrong_protocol");

        var status = await Client.StatusAsync(other.Identifier);
        Assert.Equal("resumable", status.GetProperty("protocol").GetString());
        Assert.Equal(1, status.GetProperty("receivedChunks").GetInt32());
    }

    [Fact]
    public async Task A_Part_That_Disagrees_With_Its_Upload_Is_409_Session_Mismatch()
    {
        var file = FuFile.Random("mismatch.bin", 3000, partSize: 1000);
        using (var part = await PostPartAsync(file, 0))
            await AssertSuccessAsync(part);

        var bigger = file with { Data = new byte[4000] };
        using (var size = await PostPartAsync(bigger, 1))
            await AssertFailureAsync(size, HttpStatusCode.Conflict, "session_mismatch");
        var renamed = file with { Name = "other.bin" };
        using (var name = await PostPartAsync(renamed, 1))
            await AssertFailureAsync(name, HttpStatusCode.Conflict, "session_mismatch");
        var resized = file with { PartSize = 1500 };
        using (var geometry = await PostPartAsync(resized, 1))
            await AssertFailureAsync(geometry, HttpStatusCode.Conflict, "session_mismatch");
        using (var done = await DoneAsync(file, tweak: p => p["qqtotalparts"] = "2"))
            await AssertFailureAsync(done, HttpStatusCode.Conflict, "session_mismatch");
        Assert.Equal(1000, (await Client.StatusAsync(file.Uuid)).GetProperty("storedBytes").GetInt64());
    }

    [Fact]
    public async Task Swagger_Documents_The_Endpoints_With_Summaries()
    {
        var swagger = await Client.Http.GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json");
        var paths = swagger.GetProperty("paths");
        foreach (var (path, method) in new[] { ("/fineuploader", "post"), ("/fineuploader/done", "post"), ("/fineuploader/{uuid}", "delete") })
        {
            Assert.True(paths.TryGetProperty(path, out var item), path + " is not documented");
            Assert.False(string.IsNullOrWhiteSpace(item.GetProperty(method).GetProperty("summary").GetString()), path + " has no summary");
        }
    }

    [Fact]
    public async Task Cors_Preflight_Allows_The_Headers_Fine_Uploader_Sends()
    {
        using var app = new ChunkUploadApplication(Dir.StorageRoot + "-cors", new Dictionary<string, string?> { ["Cors:AllowedOrigins:0"] = "http://page.example" });
        var preflight = new HttpRequestMessage(HttpMethod.Options, "/fineuploader");
        preflight.Headers.Add("Origin", "http://page.example");
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "cache-control, x-requested-with, x-mime-type");
        using var response = await app.CreateClient().SendAsync(preflight);
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal("http://page.example", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
        var allowed = string.Join(',', response.Headers.GetValues("Access-Control-Allow-Headers"));
        foreach (var header in new[] { "cache-control", "x-requested-with", "x-mime-type" })
            Assert.Contains(header, allowed, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task With_Auth_On_A_Request_Without_Credentials_Is_401_In_Fine_Uploader_Json()
    {
        using var app = new ChunkUploadApplication(Dir.StorageRoot + "-auth", new Dictionary<string, string?>
        {
            ["Auth:Enabled"] = "true",
            ["Auth:ApiKeys:0:Key"] = "alice-key-0123456789abcdef",
            ["Auth:ApiKeys:0:Owner"] = "alice",
        });
        var anonymous = app.CreateClient();
        var file = FuFile.Random("auth.bin", 2000, partSize: 1000);
        using (var part = await anonymous.PostAsync("/fineuploader", Multipart(file.PartParameters(0), file.Slice(0))))
            await AssertFailureAsync(part, HttpStatusCode.Unauthorized, "unauthenticated");
        using (var done = await anonymous.PostAsync("/fineuploader/done", Form(file.DoneParameters())))
            await AssertFailureAsync(done, HttpStatusCode.Unauthorized, "unauthenticated");

        var alice = app.CreateClient();
        alice.DefaultRequestHeaders.Add("X-Api-Key", "alice-key-0123456789abcdef");
        using var allowed = await alice.PostAsync("/fineuploader", Multipart(file.PartParameters(0), file.Slice(0)));
        await AssertSuccessAsync(allowed);
    }

    // ------------------------------------------------------------------ hostile input

    public static TheoryData<string, string, string> RefusedValues => new()
    {
        { "qqpartindex", "-1", "invalid_parameter" },
        { "qqpartindex", "abc", "invalid_parameter" },
        { "qqpartindex", "1e3", "invalid_parameter" },
        { "qqpartindex", "+1", "invalid_parameter" },
        { "qqpartindex", " 1", "invalid_parameter" },
        { "qqpartindex", "0x1", "invalid_parameter" },
        { "qqpartindex", "9223372036854775808", "invalid_parameter" },
        { "qqpartindex", "99999999999999999999999", "invalid_parameter" },
        { "qqpartindex", "5", "chunk_out_of_range" },
        { "qqpartindex", "9223372036854775807", "chunk_out_of_range" },
        { "qqpartindex", "", "missing_parameter" },
        { "qqtotalfilesize", "-5", "invalid_parameter" },
        { "qqtotalfilesize", "0", "invalid_parameter" },
        { "qqtotalfilesize", "18446744073709551616", "invalid_parameter" },
        { "qqtotalfilesize", "9223372036854775807", "file_too_large" },
        { "qqtotalfilesize", "3000", "chunk_count_mismatch" },
        { "qqtotalfilesize", "4.5e3", "invalid_parameter" },
        { "qqchunksize", "0", "invalid_parameter" },
        { "qqchunksize", "999", "part_offset_mismatch" },
        { "qqchunksize", "1001", "part_offset_mismatch" },
        { "qqchunksize", "9223372036854775807", "chunk_size_too_large" },
        { "qqtotalparts", "7", "chunk_count_mismatch" },
        { "qqtotalparts", "0", "invalid_parameter" },
        { "qqtotalparts", "1", "chunk_out_of_range" },
        { "qqtotalparts", "1000001", "too_many_chunks" },
        { "qqpartbyteoffset", "1001", "part_offset_mismatch" },
        { "qqpartbyteoffset", "0", "part_offset_mismatch" },
        { "qqpartbyteoffset", "-1000", "invalid_parameter" },
        { "qquuid", "../../../../tmp/fineuploader-escape", "invalid_identifier" },
        { "qquuid", "/etc/passwd", "invalid_identifier" },
        { "qquuid", "a/b", "invalid_identifier" },
        { "qquuid", "..", "invalid_identifier" },
        { "qquuid", "C:\\Windows\\evil", "invalid_identifier" },
        { "qquuid", new string('x', 5000), "invalid_identifier" },
        { "qquuid", "a\0b", "invalid_identifier" },
        { "qquuid", "tab\there", "invalid_identifier" },
        { "qquuid", "", "missing_parameter" },
        { "qqfilename", "evil\0.bin", "invalid_file_name" },
        { "qqfilename", "line\nbreak.bin", "invalid_file_name" },
        { "qqfilename", new string('n', 5000), "invalid_file_name" },
        { "qqfilename", "", "missing_parameter" },
        { "qqresume", "yes", "invalid_parameter" },
    };

    [Theory]
    [MemberData(nameof(RefusedValues))]
    public async Task Hostile_Part_Parameters_Are_400_In_Fine_Uploader_Json_And_Nothing_Is_Stored(string name, string value, string code)
    {
        // Part 1 of a 5,000-byte file in 1,000-byte parts, with one parameter replaced; multipart fields, then raw query.
        var file = FuFile.Random("hostile.bin", 5000, partSize: 1000);
        foreach (bool raw in new[] { false, true })
        {
            if (raw && value.Length > 3000)
                continue; // past the test server's URL limits; the multipart case covers it
            using var response = await PostPartAsync(file, 1, raw, tweak: p => p[name] = value);
            var json = await AssertFailureAsync(response, HttpStatusCode.BadRequest, code);
            Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("error").GetString()));
        }

        AssertNothingStored();
    }

    [Theory]
    [InlineData("qqtotalfilesize", "-1", "invalid_parameter")]
    [InlineData("qqtotalfilesize", "abc", "invalid_parameter")]
    [InlineData("qqtotalfilesize", "9223372036854775807", "file_too_large")]
    [InlineData("qqtotalfilesize", "", "missing_parameter")]
    [InlineData("qquuid", "x/../../y", "invalid_identifier")]
    public async Task Hostile_Whole_File_Parameters_Are_400_And_Nothing_Is_Stored(string name, string value, string code)
    {
        var file = FuFile.Random("hostile-whole.bin", 2000, partSize: 1_000_000);
        using var response = await PostWholeAsync(file, raw: false, tweak: p => p[name] = value);
        await AssertFailureAsync(response, HttpStatusCode.BadRequest, code);
        AssertNothingStored();
    }

    [Fact]
    public async Task Duplicated_Parameters_With_Different_Values_Are_Conflicting()
    {
        var file = FuFile.Random("dup.bin", 3000, partSize: 1000);
        var fields = file.PartParameters(1);
        var form = Multipart(fields, file.Slice(1));
        using (var response = await Client.Http.PostAsync("/fineuploader?qqpartindex=2", form))
            await AssertFailureAsync(response, HttpStatusCode.BadRequest, "conflicting_parameter");

        var query = Query(file.PartParameters(1)) + "&qqtotalfilesize=3001";
        using (var response = await Client.Http.PostAsync("/fineuploader?" + query, Octet(file.Slice(1))))
            await AssertFailureAsync(response, HttpStatusCode.BadRequest, "conflicting_parameter");

        var named = new Dictionary<string, string> { ["qquuid"] = file.Uuid, ["qqfilename"] = file.Name, ["qqfile"] = "other.bin" };
        using (var response = await Client.Http.PostAsync("/fineuploader?" + Query(named), Octet(file.Data)))
            await AssertFailureAsync(response, HttpStatusCode.BadRequest, "conflicting_parameter");

        using (var done = await Client.Http.PostAsync("/fineuploader/done?qqtotalparts=4", Form(file.DoneParameters())))
            await AssertFailureAsync(done, HttpStatusCode.BadRequest, "conflicting_parameter");
        AssertNothingStored();
    }

    [Fact]
    public async Task A_Raw_Body_Of_The_Wrong_Length_Is_Refused_Before_Anything_Is_Stored()
    {
        var file = FuFile.Random("raw-length.bin", 3000, partSize: 1000);
        using (var shorter = await PostPartAsync(file, 1, raw: true, body: new byte[999]))
            await AssertFailureAsync(shorter, HttpStatusCode.BadRequest, "chunk_length_mismatch");
        using (var longer = await PostPartAsync(file, 2, raw: true, body: new byte[1001]))
            await AssertFailureAsync(longer, HttpStatusCode.BadRequest, "chunk_length_mismatch");
        var whole = new Dictionary<string, string> { ["qquuid"] = file.Uuid, ["qqfilename"] = file.Name, ["qqtotalfilesize"] = "3000" };
        using (var mismatch = await Client.Http.PostAsync("/fineuploader?" + Query(whole), Octet(new byte[2999])))
            await AssertFailureAsync(mismatch, HttpStatusCode.BadRequest, "chunk_length_mismatch");
        AssertNothingStored();
    }

    [Theory]
    [InlineData(999)]
    [InlineData(1001)]
    [InlineData(0)]
    public async Task A_Multipart_Part_Of_The_Wrong_Length_Stores_No_Byte(int length)
    {
        var file = FuFile.Random("multipart-length.bin", 3000, partSize: 1000);
        using (var response = await PostPartAsync(file, 1, body: new byte[length]))
            await AssertFailureAsync(response, HttpStatusCode.BadRequest, "chunk_length_mismatch");
        var whole = file with { Uuid = file.Uuid + "-whole" };
        using (var response = await PostWholeAsync(whole, raw: false, body: new byte[length]))
            await AssertFailureAsync(response, HttpStatusCode.BadRequest, "chunk_length_mismatch");

        // The part's upload may exist (made by the part's parameters), but without a byte of the refused body.
        foreach (var id in new[] { file.Uuid, whole.Uuid })
        {
            using var status = await Client.Http.GetAsync("/uploads/" + id);
            if (status.StatusCode == HttpStatusCode.OK)
                Assert.Equal(0, (await status.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("storedBytes").GetInt64());
            else
                Assert.Equal(HttpStatusCode.NotFound, status.StatusCode);
        }
    }

    [Fact]
    public async Task A_Multipart_Body_Without_The_File_Part_Is_400()
    {
        var file = FuFile.Random("no-file.bin", 3000, partSize: 1000);
        var form = new MultipartFormDataContent();
        foreach (var (name, value) in file.PartParameters(1))
            form.Add(new StringContent(value), name);
        using var response = await Client.Http.PostAsync("/fineuploader", form);
        await AssertFailureAsync(response, HttpStatusCode.BadRequest, "missing_file_part");
        AssertNothingStored();
    }

    public static TheoryData<string> HostileDeletePaths => new()
    {
        "/fineuploader/..%2F..%2Fetc%2Fpasswd",
        "/fineuploader/a%01b",
        "/fineuploader/a%09b",
        "/fineuploader/" + new string('u', 3000),
    };

    [Theory]
    [MemberData(nameof(HostileDeletePaths))]
    public async Task Delete_Of_A_Hostile_Uuid_Is_400_Invalid_Identifier(string path)
    {
        using var response = await Client.Http.DeleteAsync(path);
        await AssertFailureAsync(response, HttpStatusCode.BadRequest, "invalid_identifier");
        Assert.Equal([Dir.StorageRoot], Directory.EnumerateFileSystemEntries(Dir.Path));
    }

    public static TheoryData<string, string, string> RefusedDoneValues => new()
    {
        { "qqtotalparts", "", "missing_parameter" },
        { "qqtotalparts", "-1", "invalid_parameter" },
        { "qqtotalfilesize", "1e9", "invalid_parameter" },
        { "qqtotalfilesize", "99999999999999999999", "invalid_parameter" },
        { "qqfilename", "", "missing_parameter" },
        { "qqfilename", "a\u0001b", "invalid_file_name" },
        { "qquuid", "../x", "invalid_identifier" },
        { "qquuid", "", "missing_parameter" },
    };

    [Theory]
    [MemberData(nameof(RefusedDoneValues))]
    public async Task Hostile_Done_Parameters_Are_400_And_Nothing_Is_Stored(string name, string value, string code)
    {
        var file = FuFile.Random("hostile-done.bin", 3000, partSize: 1000);
        using var done = await DoneAsync(file, tweak: p => p[name] = value);
        await AssertFailureAsync(done, HttpStatusCode.BadRequest, code);
        AssertNothingStored();
    }

    [Fact]
    public async Task Done_Bodies_That_Cannot_Be_Read_Are_Refused()
    {
        using (var text = await Client.Http.PostAsync("/fineuploader/done", new StringContent("qquuid=x", Encoding.UTF8, "text/plain")))
            await AssertFailureAsync(text, HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
        using (var json = await Client.Http.PostAsync("/fineuploader/done", new StringContent("{\"qquuid\":", Encoding.UTF8, "application/json")))
            await AssertFailureAsync(json, HttpStatusCode.BadRequest, "invalid_parameter");
        using (var nested = await Client.Http.PostAsync("/fineuploader/done", new StringContent("{\"qquuid\":{\"a\":1}}", Encoding.UTF8, "application/json")))
            await AssertFailureAsync(nested, HttpStatusCode.BadRequest, "invalid_parameter");
        using (var array = await Client.Http.PostAsync("/fineuploader/done", new StringContent("[1,2]", Encoding.UTF8, "application/json")))
            await AssertFailureAsync(array, HttpStatusCode.BadRequest, "invalid_parameter");
        var many = string.Join('&', Enumerable.Range(0, 500).Select(i => "p" + i.ToString(CultureInfo.InvariantCulture) + "=1"));
        using (var form = await Client.Http.PostAsync("/fineuploader/done", new StringContent(many, Encoding.UTF8, "application/x-www-form-urlencoded")))
            await AssertFailureAsync(form, HttpStatusCode.BadRequest, "invalid_parameter");
        AssertNothingStored();
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>A file as Fine Uploader cuts it (PROTOCOLS.md 4.2): ceil(size / partSize) parts, the last the remainder.</summary>
    private sealed record FuFile(string Uuid, string Name, byte[] Data, long PartSize)
    {
        public int Parts => (int)Math.Max(1, (Data.LongLength + PartSize - 1) / PartSize);

        public string Sha256 => UploadClient.Sha256Hex(Data);

        public long OffsetOf(int part) => part * PartSize;

        public long LengthOf(int part) => Math.Min(PartSize, Data.LongLength - OffsetOf(part));

        public ReadOnlyMemory<byte> Slice(int part) => Data.AsMemory((int)OffsetOf(part), (int)LengthOf(part));

        public static FuFile Random(string name, int size, long partSize) =>
            new(Guid.NewGuid().ToString(), name, UploadClient.RandomBytes(size, size), partSize);

        public Dictionary<string, string> PartParameters(int part) => new()
        {
            ["qquuid"] = Uuid,
            ["qqfilename"] = Name,
            ["qqtotalfilesize"] = Data.Length.ToString(CultureInfo.InvariantCulture),
            ["qqpartindex"] = part.ToString(CultureInfo.InvariantCulture),
            ["qqpartbyteoffset"] = OffsetOf(part).ToString(CultureInfo.InvariantCulture),
            ["qqchunksize"] = LengthOf(part).ToString(CultureInfo.InvariantCulture),
            ["qqtotalparts"] = Parts.ToString(CultureInfo.InvariantCulture),
        };

        public Dictionary<string, string> DoneParameters() => new()
        {
            ["qquuid"] = Uuid,
            ["qqfilename"] = Name,
            ["qqtotalfilesize"] = Data.Length.ToString(CultureInfo.InvariantCulture),
            ["qqtotalparts"] = Parts.ToString(CultureInfo.InvariantCulture),
        };
    }

    /// <summary>One part as the client sends it: multipart (fields, then 'qqfile' named "blob") or raw with a query.</summary>
    private Task<HttpResponseMessage> PostPartAsync(FuFile file, int part, bool raw = false, Action<Dictionary<string, string>>? tweak = null, byte[]? body = null)
    {
        var parameters = file.PartParameters(part);
        tweak?.Invoke(parameters);
        var bytes = body is null ? file.Slice(part) : body;
        return raw
            ? Client.Http.PostAsync("/fineuploader?" + Query(parameters), Octet(bytes))
            : Client.Http.PostAsync("/fineuploader", Multipart(parameters, bytes));
    }

    private Task<HttpResponseMessage> PostWholeAsync(FuFile file, bool raw, Action<Dictionary<string, string>>? tweak = null, byte[]? body = null)
    {
        var parameters = new Dictionary<string, string>
        {
            ["qquuid"] = file.Uuid,
            ["qqfilename"] = file.Name,
            ["qqtotalfilesize"] = file.Data.Length.ToString(CultureInfo.InvariantCulture),
        };
        tweak?.Invoke(parameters);
        var bytes = body ?? file.Data;
        return raw
            ? Client.Http.PostAsync("/fineuploader?" + Query(parameters), Octet(bytes))
            : Client.Http.PostAsync("/fineuploader", Multipart(parameters, bytes, file.Name));
    }

    private Task<HttpResponseMessage> DoneAsync(FuFile file, Action<Dictionary<string, string>>? tweak = null)
    {
        var parameters = file.DoneParameters();
        tweak?.Invoke(parameters);
        return Client.Http.PostAsync("/fineuploader/done", Form(parameters));
    }

    private static MultipartFormDataContent Multipart(Dictionary<string, string> fields, ReadOnlyMemory<byte> body, string fileName = "blob")
    {
        var form = new MultipartFormDataContent();
        foreach (var (name, value) in fields)
            form.Add(new StringContent(value), name);
        var part = new ReadOnlyMemoryContent(body);
        part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(part, "qqfile", fileName);
        return form;
    }

    private static ByteArrayContent Octet(ReadOnlyMemory<byte> body)
    {
        var content = new ByteArrayContent(body.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return content;
    }

    private static ByteArrayContent Form(Dictionary<string, string> fields)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(Query(fields)));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-www-form-urlencoded");
        return content;
    }

    private static string Query(Dictionary<string, string> values) => UploadClient.Query(values);

    private static async Task<JsonElement> AssertSuccessAsync(HttpResponseMessage response)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var json = JsonDocument.Parse(body).RootElement;
        Assert.True(json.GetProperty("success").GetBoolean(), body);
        Assert.False(json.TryGetProperty("reset", out _), body);
        return json;
    }

    private static async Task<JsonElement> AssertFailureAsync(HttpResponseMessage response, HttpStatusCode status, string code, bool preventRetry = true, bool reset = false)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var json = JsonDocument.Parse(body).RootElement;
        Assert.False(json.GetProperty("success").GetBoolean(), body);
        Assert.Equal(code, json.GetProperty("code").GetString());
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("error").GetString()), body);
        Assert.Equal(preventRetry, json.TryGetProperty("preventRetry", out var p) && p.GetBoolean());
        Assert.Equal(reset, json.TryGetProperty("reset", out var r) && r.GetBoolean());
        return json;
    }

    private async Task AssertStoredAsync(FuFile file)
    {
        var status = await Client.WaitForCompleteAsync(file.Uuid);
        Assert.Equal(file.Sha256, status.GetProperty("sha256").GetString());
        Assert.Equal(file.Name, status.GetProperty("fileName").GetString());
        Assert.Equal("fineuploader", status.GetProperty("protocol").GetString());
        using var download = await Client.Http.GetAsync("/files/" + file.Uuid);
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        Assert.Equal(file.Data, await download.Content.ReadAsByteArrayAsync());
    }

    private void AssertNothingStored()
    {
        Assert.Equal([Dir.StorageRoot], Directory.EnumerateFileSystemEntries(Dir.Path));
        foreach (var folder in new[] { "sessions", "parts", "completed" })
        {
            string path = Path.Combine(Dir.StorageRoot, folder);
            Assert.True(!Directory.Exists(path) || !Directory.EnumerateFileSystemEntries(path).Any(), $"something was stored in {folder}/");
        }

        Assert.False(File.Exists("/tmp/fineuploader-escape"));
    }
}
