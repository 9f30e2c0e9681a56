using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// Issue 11, hostile input still accepted: numbers are exactly what the query string accepts (plain decimal digits;
/// .NET's own parsing skips a trailing NUL), in every protocol; a multipart body is read to its end before anything
/// is kept, so a second file part or a parameter after the file part that contradicts the chunk is refused; the
/// fields are bounded in number and bytes; fields a client adds of its own are read and dropped.
/// </summary>
public sealed class StrictParameterTests : ServerTest
{
    // ------------------------------------------------------------------ numbers with a trailing NUL

    public static TheoryData<ClientKind, string, string> NulNumbers()
    {
        var data = new TheoryData<ClientKind, string, string>();
        foreach (var kind in new[] { ClientKind.ResumableMultipart, ClientKind.ResumableOctet, ClientKind.FlowMultipart, ClientKind.FlowOctet })
        {
            data.Add(kind, "ChunkNumber", "1\0");
            data.Add(kind, "TotalSize", "2500\0");
            data.Add(kind, "ChunkSize", "1000\0");
            data.Add(kind, "CurrentChunkSize", "1000\0");
            data.Add(kind, "TotalChunks", "2\0\0");
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(NulNumbers))]
    public async Task Chunk_Numbers_With_A_Trailing_Nul_Are_Invalid_And_Nothing_Is_Stored(ClientKind kind, string field, string value)
    {
        var file = TestFile.Random("nul-number", 2500, 1000);
        string prefix = kind is ClientKind.FlowMultipart or ClientKind.FlowOctet ? "flow" : "resumable";
        var parameters = UploadClient.Parameters(kind, file, 1);
        parameters[prefix + field] = value;
        using (var post = await Client.PostAsync(parameters, file.Slice(1), kind))
            await Refusals.AssertRefusedAsync(post, HttpStatusCode.BadRequest, "invalid_parameter");
        using (var test = await Client.Http.GetAsync("/upload?" + UploadClient.Query(parameters)))
            await Refusals.AssertRefusedAsync(test, HttpStatusCode.BadRequest, "invalid_parameter");
        AssertNoUploads();
    }

    [Theory]
    [InlineData("qqpartindex", "1\0")]
    [InlineData("qqtotalfilesize", "5000\0")]
    [InlineData("qqpartbyteoffset", "1000\0")]
    [InlineData("qqchunksize", "1000\0")]
    [InlineData("qqtotalparts", "5\0")]
    public async Task Fine_Uploader_Numbers_With_A_Trailing_Nul_Are_Invalid_And_Nothing_Is_Stored(string name, string value)
    {
        var parameters = FineUploaderPart("nul-fu", part: 1);
        parameters[name] = value;
        using (var multipart = await Client.Http.PostAsync("/fineuploader", FineUploaderForm(parameters, new byte[1000])))
            await Refusals.AssertRefusedAsync(multipart, HttpStatusCode.BadRequest, "invalid_parameter");
        using (var raw = await Client.Http.PostAsync("/fineuploader?" + UploadClient.Query(parameters), Octets(new byte[1000])))
            await Refusals.AssertRefusedAsync(raw, HttpStatusCode.BadRequest, "invalid_parameter");
        if (name is "qqtotalfilesize" or "qqtotalparts")
        {
            var done = new Dictionary<string, string> { ["qquuid"] = parameters["qquuid"], ["qqfilename"] = "f.bin", ["qqtotalfilesize"] = "5000", ["qqtotalparts"] = "5" };
            done[name] = value;
            using var form = new FormUrlEncodedContent(done);
            using var response = await Client.Http.PostAsync("/fineuploader/done", form);
            await Refusals.AssertRefusedAsync(response, HttpStatusCode.BadRequest, "invalid_parameter");
        }

        AssertNoUploads();
    }

    public static TheoryData<string> NulHeaders => new()
    {
        "tus Upload-Length", "tus Upload-Offset", "tus Upload-Length on a deferred upload", "ietf Upload-Length", "google Content-Range total",
        "google Content-Range first", "google X-Upload-Content-Length", "nginx X-Content-Range", "nginx Content-Range last",
        "append X-Start-Byte", "append X-File-Size", "append Upload-Length",
    };

    // Kestrel refuses a NUL in a header before the application sees it; the in-process server does not, so the
    // parsers are tried here as they would be behind anything that passes the byte on.
    [Theory]
    [MemberData(nameof(NulHeaders))]
    public async Task Header_Numbers_With_A_Trailing_Nul_Are_Invalid_In_Every_Protocol(string which)
    {
        var tus = TusClient.Of(App);
        string? upload = which.StartsWith("tus Upload-Offset", StringComparison.Ordinal) ? await tus.CreateUploadAsync(10) : null;
        string? deferred = which.EndsWith("deferred upload", StringComparison.Ordinal) ? await tus.CreateUploadAsync(null, defer: true) : null;
        var request = which switch
        {
            "tus Upload-Length" => Request(HttpMethod.Post, "/tus", null, ("Tus-Resumable", "1.0.0"), ("Upload-Length", "10\0")),
            "tus Upload-Offset" => Request(HttpMethod.Patch, upload!, Typed(new byte[10], TusClient.OffsetOctetStream), ("Tus-Resumable", "1.0.0"), ("Upload-Offset", "0\0")),
            "tus Upload-Length on a deferred upload" => Request(HttpMethod.Patch, deferred!, Typed(new byte[10], TusClient.OffsetOctetStream),
                ("Tus-Resumable", "1.0.0"), ("Upload-Offset", "0"), ("Upload-Length", "10\0")),
            "ietf Upload-Length" => Request(HttpMethod.Post, "/rufh", Typed([], "application/octet-stream"), ("Upload-Complete", "?0"), ("Upload-Length", "10\0")),
            "google Content-Range total" => Request(HttpMethod.Put, "/upload/nul-google.bin", Typed(new byte[10], "application/octet-stream"), ("Content-Range", "bytes 0-9/10\0")),
            "google Content-Range first" => Request(HttpMethod.Put, "/upload/nul-google.bin", Typed(new byte[10], "application/octet-stream"), ("Content-Range", "bytes 0\0-9/10")),
            "google X-Upload-Content-Length" => Request(HttpMethod.Post, "/upload/nul-google.bin?uploadType=resumable", null, ("X-Upload-Content-Length", "10\0")),
            "nginx X-Content-Range" => Nginx(("X-Content-Range", "bytes 0-9/10\0")),
            "nginx Content-Range last" => Nginx(("Content-Range", "bytes 0-9\0/10")),
            "append X-Start-Byte" => Request(HttpMethod.Post, "/append", Typed(new byte[10], "application/octet-stream"), ("X-File-Id", "nul-append"), ("X-Start-Byte", "0\0")),
            "append X-File-Size" => Request(HttpMethod.Post, "/append", Typed(new byte[10], "application/octet-stream"), ("X-File-Id", "nul-append"), ("X-Start-Byte", "0"), ("X-File-Size", "10\0")),
            "append Upload-Length" => Request(HttpMethod.Post, "/append", Typed(new byte[10], "application/octet-stream"), ("X-File-Id", "nul-append"), ("X-Start-Byte", "0"), ("Upload-Length", "10\0")),
            _ => throw new ArgumentOutOfRangeException(nameof(which), which, null),
        };
        using var response = await tus.Http.SendAsync(request);
        await Refusals.AssertRefusedAsync(response, HttpStatusCode.BadRequest, "invalid_parameter");
        foreach (string id in new[] { "nul-google.bin", "nul-append", "nul-nginx" })
        {
            using var status = await Client.Http.GetAsync("/uploads/" + id);
            Assert.Equal(HttpStatusCode.NotFound, status.StatusCode);
        }

        foreach (string? location in new[] { upload, deferred })
        {
            if (location is not null)
                Assert.Equal(0, await tus.OffsetAsync(location));
        }

        static HttpRequestMessage Nginx((string Name, string Value) range)
        {
            var content = Typed(new byte[10], "application/octet-stream");
            content.Headers.TryAddWithoutValidation("Content-Disposition", "attachment; filename=\"n.bin\"");
            return Request(HttpMethod.Post, "/nginx-upload", content, ("Session-ID", "nul-nginx"), range);
        }
    }

    // ------------------------------------------------------------------ the rest of a multipart body

    public static TheoryData<string> Protocols => new() { "resumable", "flow", "fineuploader" };

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_Second_File_Part_Is_Conflicting_And_Nothing_Is_Stored(string protocol)
    {
        var (url, fields, fileField, id) = SingleChunk(protocol, "two-files-" + protocol);
        var form = Form(fields);
        AddFile(form, fileField, Filled(1000, (byte)'a'));
        AddFile(form, fileField, Filled(1000, (byte)'b'));
        using var response = await Client.Http.PostAsync(url, form);
        await Refusals.AssertRefusedAsync(response, HttpStatusCode.BadRequest, "conflicting_parameter");
        await AssertNothingStoredAsync(id);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task An_Identifier_Sent_Twice_Before_The_File_Part_With_Different_Values_Is_Conflicting_And_Nothing_Is_Stored(string protocol)
    {
        var (url, fields, fileField, id) = SingleChunk(protocol, "twice-id-" + protocol);
        var form = Form(fields);
        form.Add(new StringContent(id + "-other"), IdentifierName(protocol));
        AddFile(form, fileField, Filled(1000, (byte)'a'));
        using var response = await Client.Http.PostAsync(url, form);
        await Refusals.AssertRefusedAsync(response, HttpStatusCode.BadRequest, "conflicting_parameter");
        await AssertNothingStoredAsync(id);
        await AssertNothingStoredAsync(id + "-other");
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task An_Identifier_Repeated_After_The_File_Part_With_Another_Value_Is_Conflicting_And_Nothing_Is_Stored(string protocol)
    {
        var (url, fields, fileField, id) = SingleChunk(protocol, "late-id-" + protocol);
        var form = Form(fields);
        AddFile(form, fileField, Filled(1000, (byte)'a'));
        form.Add(new StringContent(id + "-other"), IdentifierName(protocol));
        using var response = await Client.Http.PostAsync(url, form);
        await Refusals.AssertRefusedAsync(response, HttpStatusCode.BadRequest, "conflicting_parameter");
        await AssertNothingStoredAsync(id);
        await AssertNothingStoredAsync(id + "-other");
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_Parameter_Sent_Only_After_The_File_Part_Is_Conflicting_And_Nothing_Is_Stored(string protocol)
    {
        var (url, fields, fileField, id) = SingleChunk(protocol, "late-only-" + protocol);
        string late = protocol == "fineuploader" ? "qqresume" : protocol + "RelativePath";
        string value = protocol == "fineuploader" ? "false" : "folder/late.bin";
        fields.Remove(late);
        var form = Form(fields);
        AddFile(form, fileField, Filled(1000, (byte)'a'));
        form.Add(new StringContent(value), late);
        using var response = await Client.Http.PostAsync(url, form);
        await Refusals.AssertRefusedAsync(response, HttpStatusCode.BadRequest, "conflicting_parameter");
        await AssertNothingStoredAsync(id);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Parameters_Repeated_After_The_File_Part_With_The_Same_Value_And_Fields_Of_The_Clients_Own_Are_Accepted(string protocol)
    {
        var (url, fields, fileField, id) = SingleChunk(protocol, "same-late-" + protocol);
        var form = Form(fields);
        form.Add(new StringContent("csrf-0123456789"), "_token");
        AddFile(form, fileField, Filled(1000, (byte)'a'));
        form.Add(new StringContent(id), IdentifierName(protocol));
        form.Add(new StringContent("anything at all"), "note");
        using var response = await Client.Http.PostAsync(url, form);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var status = await Client.WaitForCompleteAsync(id);
        Assert.Equal(UploadClient.Sha256Hex(Filled(1000, (byte)'a')), status.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task A_Re_Sent_Chunk_With_A_Second_File_Part_Is_Refused_Though_Its_Bytes_Are_Stored()
    {
        var file = TestFile.Random("resent-two-files", 2500, 1000);
        using (var first = await Client.PostChunkAsync(file, 1, ClientKind.FlowMultipart))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var form = Form(UploadClient.Parameters(ClientKind.FlowMultipart, file, 1));
        AddFile(form, "file", file.Slice(1).ToArray());
        AddFile(form, "file", Filled(1000, (byte)'z'));
        using var again = await Client.Http.PostAsync("/upload", form);
        await Refusals.AssertRefusedAsync(again, HttpStatusCode.BadRequest, "conflicting_parameter");
        Assert.Equal(1000, (await Client.StatusAsync(file.Identifier)).GetProperty("storedBytes").GetInt64());
    }

    // ------------------------------------------------------------------ how many fields, how many bytes

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task More_Than_32_Fields_Are_Refused_Before_The_File_Part_Is_Read(string protocol)
    {
        var (url, fields, fileField, id) = SingleChunk(protocol, "many-fields-" + protocol);
        var form = Form(fields);
        for (int i = fields.Count; i <= 32; i++)
            form.Add(new StringContent("x"), "extra" + i.ToString(CultureInfo.InvariantCulture));
        AddFile(form, fileField, Filled(1000, (byte)'a'));
        using var response = await Client.Http.PostAsync(url, form);
        await Refusals.AssertRefusedAsync(response, HttpStatusCode.BadRequest, "too_many_fields");
        await AssertNothingStoredAsync(id);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Field_Data_Over_The_Limit_In_All_Is_Refused_Before_The_File_Part_Is_Read(string protocol)
    {
        // Each field is within the per-field limit (3 bytes for each of 4096 characters), together they are not.
        var (url, fields, fileField, id) = SingleChunk(protocol, "big-fields-" + protocol);
        var form = Form(fields);
        for (int i = 0; i < 3; i++)
            form.Add(new StringContent(new string('p', 10_000)), "padding" + i.ToString(CultureInfo.InvariantCulture));
        AddFile(form, fileField, Filled(1000, (byte)'a'));
        using var response = await Client.Http.PostAsync(url, form);
        await Refusals.AssertRefusedAsync(response, HttpStatusCode.BadRequest, "too_many_fields");
        await AssertNothingStoredAsync(id);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Two_Dozen_Fields_Of_The_Clients_Own_Are_Accepted(string protocol)
    {
        var (url, fields, fileField, id) = SingleChunk(protocol, "own-fields-" + protocol);
        var form = Form(fields);
        for (int i = fields.Count; i < 32; i++)
            form.Add(new StringContent("value " + i.ToString(CultureInfo.InvariantCulture)), "custom" + i.ToString(CultureInfo.InvariantCulture));
        AddFile(form, fileField, Filled(1000, (byte)'a'));
        using var response = await Client.Http.PostAsync(url, form);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        await Client.WaitForCompleteAsync(id);
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>A one-chunk file of 1,000 bytes as each client describes it (fields only, nothing in the query).</summary>
    private static (string Url, Dictionary<string, string> Fields, string FileField, string Id) SingleChunk(string protocol, string id)
    {
        if (protocol == "fineuploader")
        {
            id = Guid.NewGuid().ToString();
            return ("/fineuploader", new Dictionary<string, string> { ["qquuid"] = id, ["qqfilename"] = "f.bin", ["qqtotalfilesize"] = "1000" }, "qqfile", id);
        }

        var file = new TestFile(id, id + ".bin", new byte[1000], 1000);
        var kind = protocol == "flow" ? ClientKind.FlowMultipart : ClientKind.ResumableMultipart;
        return ("/upload", UploadClient.Parameters(kind, file, 1), "file", id);
    }

    private static string IdentifierName(string protocol) => protocol == "fineuploader" ? "qquuid" : protocol + "Identifier";

    private static Dictionary<string, string> FineUploaderPart(string name, int part) => new()
    {
        ["qquuid"] = Guid.NewGuid().ToString(),
        ["qqfilename"] = name + ".bin",
        ["qqtotalfilesize"] = "5000",
        ["qqpartindex"] = part.ToString(CultureInfo.InvariantCulture),
        ["qqpartbyteoffset"] = (part * 1000).ToString(CultureInfo.InvariantCulture),
        ["qqchunksize"] = "1000",
        ["qqtotalparts"] = "5",
    };

    private static MultipartFormDataContent FineUploaderForm(Dictionary<string, string> fields, byte[] part)
    {
        var form = Form(fields);
        AddFile(form, "qqfile", part);
        return form;
    }

    private static MultipartFormDataContent Form(Dictionary<string, string> fields)
    {
        var form = new MultipartFormDataContent();
        foreach (var (name, value) in fields)
            form.Add(new StringContent(value), name);
        return form;
    }

    private static void AddFile(MultipartFormDataContent form, string name, byte[] data)
    {
        var part = new ByteArrayContent(data);
        part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(part, name, "blob");
    }

    private static byte[] Filled(int length, byte value) => Enumerable.Repeat(value, length).ToArray();

    private static ByteArrayContent Octets(byte[] body) => Typed(body, "application/octet-stream");

    private static ByteArrayContent Typed(byte[] body, string type)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue(type);
        return content;
    }

    private static HttpRequestMessage Request(HttpMethod method, string url, HttpContent? content, params (string Name, string Value)[] headers)
    {
        var request = new HttpRequestMessage(method, url) { Content = content };
        foreach (var (name, value) in headers)
        {
            if (!request.Headers.TryAddWithoutValidation(name, value))
                Assert.True(content!.Headers.TryAddWithoutValidation(name, value), name);
        }

        return request;
    }

    // The chunk protocols make the upload from the parameters before its bytes arrive: it may exist, empty.
    private async Task AssertNothingStoredAsync(string id)
    {
        using var status = await Client.Http.GetAsync("/uploads/" + Uri.EscapeDataString(id));
        if (status.StatusCode == HttpStatusCode.NotFound)
            return;
        Assert.Equal(HttpStatusCode.OK, status.StatusCode);
        var json = await status.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(0, json.GetProperty("storedBytes").GetInt64());
        Assert.NotEqual("complete", json.GetProperty("state").GetString());
    }

    private void AssertNoUploads() =>
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(Dir.StorageRoot, "sessions")));
}
