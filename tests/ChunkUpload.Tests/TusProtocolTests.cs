using System.Globalization;
using System.Net;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>
/// tus 1.0.0 at /tus, status by status (../shared/PROTOCOLS.md section 10): discovery, creation (with upload, with a
/// deferred length), HEAD, PATCH, checksum, termination and the method override.
/// </summary>
public sealed class TusProtocolTests : ServerTest
{
    private static readonly string[] AllExtensions =
    [
        "creation", "creation-with-upload", "creation-defer-length", "termination", "checksum", "checksum-trailer",
        "expiration", "concatenation", "concatenation-unfinished",
    ];

    public TusProtocolTests()
    {
        Tus = TusClient.Of(App);
    }

    private TusClient Tus { get; }

    [Theory]
    [InlineData("/tus")]
    [InlineData("/tus/some-upload")]
    public async Task Options_Returns_204_With_Version_Every_Extension_Max_Size_And_Checksum_Algorithms(string url)
    {
        using var response = await Tus.OptionsAsync(url);
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal("1.0.0", TusClient.Header(response, "Tus-Version"));
        Assert.Equal("1.0.0", TusClient.Header(response, "Tus-Resumable"));
        var extensions = TusClient.Header(response, "Tus-Extension")!.Split(',').Select(e => e.Trim()).ToList();
        Assert.Equal(AllExtensions.Order(), extensions.Order());
        Assert.Equal((100L * 1024 * 1024 * 1024).ToString(CultureInfo.InvariantCulture), TusClient.Header(response, "Tus-Max-Size"));
        var algorithms = TusClient.Header(response, "Tus-Checksum-Algorithm")!.Split(',');
        Assert.Contains("sha1", algorithms);
        Assert.Contains("md5", algorithms);
        Assert.Contains("sha256", algorithms);
    }

    [Fact]
    public async Task Creation_Returns_201_With_Location_And_Expiry_And_Stores_The_Metadata_Name_And_Type()
    {
        string name = "résumé 東京.bin";
        string metadata = TusClient.Metadata(("filename", name), ("filetype", "video/mp4"), ("empty", null));
        var before = DateTimeOffset.UtcNow.AddSeconds(-1);
        using var response = await Tus.CreateAsync(3, metadata);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("1.0.0", TusClient.Header(response, "Tus-Resumable"));
        string location = response.Headers.Location!.OriginalString;
        Assert.Matches("^/tus/[0-9a-f]{32}$", location);
        var expires = DateTimeOffset.Parse(TusClient.Header(response, "Upload-Expires")!, CultureInfo.InvariantCulture);
        Assert.True(expires > before, $"Upload-Expires {expires:R} is in the past.");

        string id = TusClient.IdOf(location);
        var status = await Client.StatusAsync(id);
        Assert.Equal(name, status.GetProperty("fileName").GetString());
        Assert.Equal("tus", status.GetProperty("protocol").GetString());
        Assert.Equal(3, status.GetProperty("totalSize").GetInt64());
        var record = (await App.Services.GetRequiredService<UploadEngine>().FindAsync(Caller.Anonymous, id, CancellationToken.None))!.Record;
        Assert.Equal("video/mp4", record.ContentType);

        using (var head = await Tus.HeadAsync(location))
            Assert.Equal(metadata, TusClient.Header(head, "Upload-Metadata"));

        using (var patch = await Tus.PatchAsync(location, 0, "abc"u8.ToArray()))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        await Client.WaitForCompleteAsync(id);
        using var download = await Client.Http.GetAsync("/files/" + id);
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        Assert.Equal("attachment", download.Content.Headers.ContentDisposition!.DispositionType);
        Assert.Equal(name, download.Content.Headers.ContentDisposition.FileNameStar);
        Assert.Equal("abc", await download.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Creation_Without_Upload_Length_Or_Defer_Length_Is_400()
    {
        using var response = await Tus.CreateAsync(null);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await ResumableContractTests.AssertProblemAsync(response, "length_required");
        AssertNoUploads();
    }

    [Fact]
    public async Task Creation_With_Both_Upload_Length_And_Defer_Length_Is_400()
    {
        using var response = await Tus.CreateAsync(10, defer: true);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await ResumableContractTests.AssertProblemAsync(response, "conflicting_parameter");
        AssertNoUploads();
    }

    [Fact]
    public async Task Creation_Over_The_Max_Size_Is_413()
    {
        using var response = await Tus.CreateAsync(100L * 1024 * 1024 * 1024 + 1);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        await ResumableContractTests.AssertProblemAsync(response, "file_too_large");
        AssertNoUploads();
    }

    [Fact]
    public async Task Creation_With_Upload_Stores_The_First_Bytes_And_Answers_201_With_Upload_Offset()
    {
        byte[] data = UploadClient.RandomBytes(5000, 7);
        using var response = await Tus.CreateAsync(data.Length, body: data[..2000]);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal(2000, TusClient.OffsetOf(response));
        string location = response.Headers.Location!.OriginalString;
        Assert.Equal(2000, await Tus.OffsetAsync(location));

        using (var patch = await Tus.PatchAsync(location, 2000, data[2000..]))
        {
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
            Assert.Equal(5000, TusClient.OffsetOf(patch));
        }

        var status = await Client.WaitForCompleteAsync(TusClient.IdOf(location));
        Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task Creation_With_Upload_Of_The_Whole_File_Completes_It()
    {
        byte[] data = UploadClient.RandomBytes(3000, 8);
        using var response = await Tus.CreateAsync(data.Length, body: data);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal(3000, TusClient.OffsetOf(response));
        var status = await Client.WaitForCompleteAsync(TusClient.IdOf(response.Headers.Location!.OriginalString));
        Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task Deferred_Length_Is_Reported_By_Head_And_Set_Once_By_A_Later_Patch()
    {
        byte[] data = UploadClient.RandomBytes(4000, 9);
        string location = await Tus.CreateUploadAsync(null, defer: true);
        using (var head = await Tus.HeadAsync(location))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal("1", TusClient.Header(head, "Upload-Defer-Length"));
            Assert.Null(TusClient.Header(head, "Upload-Length"));
            Assert.Equal(0, TusClient.OffsetOf(head));
        }

        using (var first = await Tus.PatchAsync(location, 0, data[..1000]))
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        using (var withLength = await Tus.PatchAsync(location, 1000, data[1000..2500], [("Upload-Length", "4000")]))
            Assert.Equal(HttpStatusCode.NoContent, withLength.StatusCode);
        using (var head = await Tus.HeadAsync(location))
        {
            Assert.Equal("4000", TusClient.Header(head, "Upload-Length"));
            Assert.Null(TusClient.Header(head, "Upload-Defer-Length"));
        }

        // The length is set once: the same value again is fine, another one is refused and nothing of the body is kept.
        using (var conflicting = await Tus.PatchAsync(location, 2500, data[2500..3000], [("Upload-Length", "5000")]))
        {
            Assert.Equal(HttpStatusCode.BadRequest, conflicting.StatusCode);
            await ResumableContractTests.AssertProblemAsync(conflicting, "length_conflict");
        }

        Assert.Equal(2500, await Tus.OffsetAsync(location));
        using (var last = await Tus.PatchAsync(location, 2500, data[2500..], [("Upload-Length", "4000")]))
        {
            Assert.Equal(HttpStatusCode.NoContent, last.StatusCode);
            Assert.Equal(4000, TusClient.OffsetOf(last));
        }

        var status = await Client.WaitForCompleteAsync(TusClient.IdOf(location));
        Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task Head_Reports_Offset_Length_Metadata_Expiry_And_No_Store_Without_A_Body()
    {
        string metadata = TusClient.Metadata(("filename", "a.bin"));
        string location = await Tus.CreateUploadAsync(10, metadata);
        using (var patch = await Tus.PatchAsync(location, 0, new byte[4]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);

        using var head = await Tus.HeadAsync(location);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(4, TusClient.OffsetOf(head));
        Assert.Equal("10", TusClient.Header(head, "Upload-Length"));
        Assert.Equal(metadata, TusClient.Header(head, "Upload-Metadata"));
        Assert.Equal("no-store", TusClient.Header(head, "Cache-Control"));
        Assert.Equal("1.0.0", TusClient.Header(head, "Tus-Resumable"));
        Assert.NotNull(TusClient.Header(head, "Upload-Expires"));
        Assert.Null(TusClient.Header(head, "Upload-Concat"));
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Head_Of_An_Unknown_Upload_Is_404_Without_A_Body()
    {
        using var head = await Tus.HeadAsync("/tus/0123456789abcdef0123456789abcdef");
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        Assert.Null(TusClient.Header(head, "Upload-Offset"));
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Patch_Appends_And_Returns_204_With_The_New_Offset_And_Expiry()
    {
        byte[] data = UploadClient.RandomBytes(3000, 10);
        string location = await Tus.CreateUploadAsync(data.Length);
        for (int offset = 0; offset < data.Length; offset += 1000)
        {
            using var patch = await Tus.PatchAsync(location, offset, data[offset..(offset + 1000)]);
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
            Assert.Equal(offset + 1000, TusClient.OffsetOf(patch));
            if (offset + 1000 < data.Length)
                Assert.NotNull(TusClient.Header(patch, "Upload-Expires"));
            else
                Assert.Null(TusClient.Header(patch, "Upload-Expires")); // complete: it no longer expires
            Assert.Equal("1.0.0", TusClient.Header(patch, "Tus-Resumable"));
        }

        var status = await Client.WaitForCompleteAsync(TusClient.IdOf(location));
        Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());
        Assert.Equal(data, await Client.Http.GetByteArrayAsync(location));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(500)]
    [InlineData(2000)]
    public async Task Patch_At_Another_Offset_Is_409_With_The_Stored_Offset(long offset)
    {
        string location = await Tus.CreateUploadAsync(3000);
        using (var first = await Tus.PatchAsync(location, 0, new byte[1000]))
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);

        using var patch = await Tus.PatchAsync(location, offset, new byte[100]);
        Assert.Equal(HttpStatusCode.Conflict, patch.StatusCode);
        Assert.Equal(1000, TusClient.OffsetOf(patch));
        await ResumableContractTests.AssertProblemAsync(patch, "offset_mismatch");
        Assert.Equal(1000, await Tus.OffsetAsync(location));
    }

    [Theory]
    [InlineData("application/octet-stream")]
    [InlineData("text/plain")]
    [InlineData(null)]
    public async Task Patch_With_Another_Content_Type_Is_415(string? contentType)
    {
        string location = await Tus.CreateUploadAsync(100);
        var content = new ByteArrayContent(new byte[10]);
        if (contentType is not null)
            content.Headers.ContentType = new(contentType);
        using var patch = await Tus.PatchAsync(location, "0", content);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, patch.StatusCode);
        await ResumableContractTests.AssertProblemAsync(patch, "unsupported_media_type");
        Assert.Equal(0, await Tus.OffsetAsync(location));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("0.2.2")]
    [InlineData("2.0.0")]
    [InlineData("")]
    public async Task Requests_Without_Tus_Resumable_1_0_0_Are_412_With_Tus_Version(string? version)
    {
        string location = await Tus.CreateUploadAsync(100);
        var requests = new List<Func<Task<HttpResponseMessage>>>
        {
            () => Tus.SendAsync(HttpMethod.Patch, location, TusClient.Octets(new byte[10]), [("Upload-Offset", "0")], tusResumable: version),
            () => Tus.SendAsync(HttpMethod.Post, "/tus", null, [("Upload-Length", "10")], tusResumable: version),
            () => Tus.SendAsync(HttpMethod.Delete, location, tusResumable: version),
            () => Tus.SendAsync(HttpMethod.Head, location, tusResumable: version),
        };
        foreach (var send in requests)
        {
            using var response = await send();
            Assert.Equal(HttpStatusCode.PreconditionFailed, response.StatusCode);
            Assert.Equal("1.0.0", TusClient.Header(response, "Tus-Version"));
            if (response.RequestMessage!.Method != HttpMethod.Head)
                await ResumableContractTests.AssertProblemAsync(response, "unsupported_version");
        }

        Assert.Equal(0, await Tus.OffsetAsync(location));
        Assert.Single(Directory.EnumerateDirectories(Path.Combine(Dir.StorageRoot, "sessions")));
    }

    [Fact]
    public async Task Patch_Of_An_Unknown_Upload_Is_404()
    {
        using var patch = await Tus.PatchAsync("/tus/0123456789abcdef0123456789abcdef", 0, new byte[10]);
        Assert.Equal(HttpStatusCode.NotFound, patch.StatusCode);
        await ResumableContractTests.AssertProblemAsync(patch, "upload_not_found");
    }

    [Fact]
    public async Task Patch_Past_The_Declared_Length_Is_413_And_Nothing_Is_Stored()
    {
        string location = await Tus.CreateUploadAsync(1000);
        using (var first = await Tus.PatchAsync(location, 0, new byte[400]))
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);

        using (var over = await Tus.PatchAsync(location, 400, new byte[601]))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, over.StatusCode);
            await ResumableContractTests.AssertProblemAsync(over, "beyond_length");
        }

        // The same without a Content-Length (a streamed body): still 413, nothing of it kept.
        using (var over = await Tus.PatchAsync(location, "400", new ChunkedContent(new byte[700])))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, over.StatusCode);
            await ResumableContractTests.AssertProblemAsync(over, "beyond_length");
        }

        Assert.Equal(400, await Tus.OffsetAsync(location));

        // A streamed body that only shows it is too long after more than the server reads at once: still nothing kept,
        // and the upload does not complete with the first bytes of a body that is not the file.
        string other = await Tus.CreateUploadAsync(300 * 1024);
        using (var over = await Tus.PatchAsync(other, "0", new ChunkedContent(new byte[600 * 1024])))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, over.StatusCode);
            await ResumableContractTests.AssertProblemAsync(over, "beyond_length");
        }

        Assert.Equal(0, await Tus.OffsetAsync(other));
        Assert.Equal("receiving", (await Client.StatusAsync(TusClient.IdOf(other))).GetProperty("state").GetString());
    }

    [Fact]
    public async Task A_Deferred_Length_Upload_Streamed_Past_The_Max_Size_Is_413()
    {
        using var app = new ChunkUploadApplication(Dir.StorageRoot + "-small", new Dictionary<string, string?> { ["Upload:MaxFileSize"] = "1000" });
        var tus = TusClient.Of(app);
        string location = await tus.CreateUploadAsync(null, defer: true);
        using (var declared = await tus.PatchAsync(location, 0, new byte[1001]))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, declared.StatusCode);
            await ResumableContractTests.AssertProblemAsync(declared, "file_too_large");
        }

        using (var streamed = await tus.PatchAsync(location, "0", new ChunkedContent(new byte[1500])))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, streamed.StatusCode);
            await ResumableContractTests.AssertProblemAsync(streamed, "file_too_large");
        }

        Assert.Equal(0, await tus.OffsetAsync(location));
    }

    [Theory]
    [InlineData("sha1")]
    [InlineData("md5")]
    [InlineData("sha256")]
    [InlineData("sha512")]
    public async Task Checksum_Is_Verified_And_A_Mismatch_Is_460_With_Nothing_Kept(string algorithm)
    {
        byte[] data = UploadClient.RandomBytes(3000, 11);
        string location = await Tus.CreateUploadAsync(data.Length);
        using (var good = await Tus.PatchAsync(location, 0, data[..1000], [("Upload-Checksum", TusClient.Checksum(algorithm, data[..1000]))]))
        {
            Assert.Equal(HttpStatusCode.NoContent, good.StatusCode);
            Assert.Equal(1000, TusClient.OffsetOf(good));
        }

        byte[] wrong = TusClient.Digest(algorithm, data[1000..]);
        wrong[0] ^= 0xFF;
        using (var bad = await Tus.PatchAsync(location, 1000, data[1000..], [("Upload-Checksum", $"{algorithm} {Convert.ToBase64String(wrong)}")]))
        {
            Assert.Equal(460, (int)bad.StatusCode);
            await ResumableContractTests.AssertProblemAsync(bad, "checksum_mismatch");
        }

        Assert.Equal(1000, await Tus.OffsetAsync(location));
        using (var retry = await Tus.PatchAsync(location, 1000, data[1000..], [("Upload-Checksum", TusClient.Checksum(algorithm, data[1000..]))]))
            Assert.Equal(HttpStatusCode.NoContent, retry.StatusCode);
        var status = await Client.WaitForCompleteAsync(TusClient.IdOf(location));
        Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task Checksum_Mismatch_Over_Several_Pieces_Keeps_Nothing()
    {
        // 20 MiB: more than two 8 MiB pieces; a streaming write would have kept them, a checksummed one must not.
        byte[] data = UploadClient.RandomBytes(20 * 1024 * 1024, 12);
        string location = await Tus.CreateUploadAsync(data.Length);
        byte[] wrong = TusClient.Digest("sha1", data);
        wrong[^1] ^= 1;
        using (var bad = await Tus.PatchAsync(location, 0, data, [("Upload-Checksum", "sha1 " + Convert.ToBase64String(wrong))]))
            Assert.Equal(460, (int)bad.StatusCode);
        Assert.Equal(0, await Tus.OffsetAsync(location));
        var status = await Client.StatusAsync(TusClient.IdOf(location));
        Assert.Equal(0, status.GetProperty("storedBytes").GetInt64());
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Dir.StorageRoot, "tmp")));
    }

    [Theory]
    [InlineData("crc32 AAAAAA==", "unsupported_checksum")]
    [InlineData("SHA1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "unsupported_checksum")]
    [InlineData("sha3-256 AAAA", "unsupported_checksum")]
    [InlineData("sha1", "invalid_parameter")]
    [InlineData("sha1 ", "invalid_parameter")]
    [InlineData("sha1 !!!notbase64!!!", "invalid_parameter")]
    [InlineData("sha1 AAAA", "invalid_parameter")]
    [InlineData(" 2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "invalid_parameter")]
    public async Task Unknown_Or_Malformed_Checksums_Are_400_With_Nothing_Kept(string checksum, string code)
    {
        string location = await Tus.CreateUploadAsync(100);
        using var patch = await Tus.PatchAsync(location, 0, new byte[10], [("Upload-Checksum", checksum)]);
        Assert.Equal(HttpStatusCode.BadRequest, patch.StatusCode);
        await ResumableContractTests.AssertProblemAsync(patch, code);
        Assert.Equal(0, await Tus.OffsetAsync(location));
    }

    [Fact]
    public async Task Termination_Returns_204_Then_The_Upload_Is_404()
    {
        string location = await Tus.CreateUploadAsync(100);
        using (var patch = await Tus.PatchAsync(location, 0, new byte[10]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        using (var delete = await Tus.DeleteAsync(location))
        {
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
            Assert.Equal("1.0.0", TusClient.Header(delete, "Tus-Resumable"));
        }

        using (var head = await Tus.HeadAsync(location))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        using (var patch = await Tus.PatchAsync(location, 10, new byte[10]))
            Assert.Equal(HttpStatusCode.NotFound, patch.StatusCode);
        using (var again = await Tus.DeleteAsync(location))
        {
            Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
            await ResumableContractTests.AssertProblemAsync(again, "upload_not_found");
        }

        AssertNoUploads();
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Dir.StorageRoot, "parts")));
    }

    [Fact]
    public async Task Method_Override_Lets_A_Post_Act_As_Patch_Head_And_Delete()
    {
        byte[] data = UploadClient.RandomBytes(2000, 13);
        string location = await Tus.CreateUploadAsync(data.Length);
        using (var patch = await Tus.SendAsync(HttpMethod.Post, location, TusClient.Octets(data[..1200]), [("X-HTTP-Method-Override", "PATCH"), ("Upload-Offset", "0")]))
        {
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
            Assert.Equal(1200, TusClient.OffsetOf(patch));
        }

        using (var head = await Tus.SendAsync(HttpMethod.Post, location, null, [("X-HTTP-Method-Override", "HEAD")]))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(1200, TusClient.OffsetOf(head));
            Assert.Equal("2000", TusClient.Header(head, "Upload-Length"));
        }

        using (var patch = await Tus.SendAsync(HttpMethod.Post, location, TusClient.Octets(data[1200..]), [("X-HTTP-Method-Override", "patch"), ("Upload-Offset", "1200")]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        await Client.WaitForCompleteAsync(TusClient.IdOf(location));

        using (var delete = await Tus.SendAsync(HttpMethod.Post, location, null, [("X-HTTP-Method-Override", "DELETE")]))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using (var head = await Tus.HeadAsync(location))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
    }

    [Theory]
    [InlineData("TRACE")]
    [InlineData("GET")]
    [InlineData("PUT")]
    [InlineData("POST")]
    [InlineData("OPTIONS")]
    [InlineData("CONNECT")]
    [InlineData("")]
    [InlineData(null)]
    public async Task Method_Override_To_Any_Other_Method_Is_405(string? method)
    {
        string location = await Tus.CreateUploadAsync(100);
        var headers = method is null ? new List<(string, string)>() : [("X-HTTP-Method-Override", method)];
        using var response = await Tus.SendAsync(HttpMethod.Post, location, TusClient.Octets(new byte[10]), [.. headers, ("Upload-Offset", "0")]);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        await ResumableContractTests.AssertProblemAsync(response, "method_not_allowed");
        Assert.Equal(0, await Tus.OffsetAsync(location));
    }

    [Fact]
    public async Task Get_On_The_Upload_Url_Downloads_The_Finished_File()
    {
        byte[] data = UploadClient.RandomBytes(1500, 14);
        string location = await Tus.UploadAsync(data);
        await Client.WaitForCompleteAsync(TusClient.IdOf(location));
        using var response = await Client.Http.GetAsync(location);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(data, await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Empty_Upload_Completes_At_Creation()
    {
        string location = await Tus.CreateUploadAsync(0, TusClient.Metadata(("filename", "empty.txt")));
        var status = await Client.WaitForCompleteAsync(TusClient.IdOf(location));
        Assert.Equal(UploadClient.Sha256Hex([]), status.GetProperty("sha256").GetString());
        using var head = await Tus.HeadAsync(location);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(0, TusClient.OffsetOf(head));
        Assert.Equal("0", TusClient.Header(head, "Upload-Length"));
    }

    private void AssertNoUploads()
    {
        string sessions = Path.Combine(Dir.StorageRoot, "sessions");
        Assert.True(!Directory.Exists(sessions) || !Directory.EnumerateFileSystemEntries(sessions).Any(), "An upload record exists.");
    }

    /// <summary>An application/offset+octet-stream body without a Content-Length: it goes out chunked.</summary>
    internal sealed class ChunkedContent : HttpContent
    {
        private readonly byte[] _body;

        public ChunkedContent(byte[] body)
        {
            _body = body;
            Headers.ContentType = new(TusClient.OffsetOctetStream);
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => stream.WriteAsync(_body).AsTask();

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
