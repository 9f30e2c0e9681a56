using System.Net;
using System.Text;
using System.Text.Json;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// Hostile tus headers: every one is a 4xx problem+json with a stable code, stores nothing, and is never a 5xx.
/// </summary>
public sealed class TusHostileInputTests : ServerTest
{
    private const string Sha1OfNothing = "2jmj7l5rSw0yVb/vlWAYkK/YBwk=";
    private static readonly string[] ConcatenationCodes = ["invalid_concatenation", "invalid_parameter", "invalid_identifier"];

    public TusHostileInputTests()
    {
        Tus = TusClient.Of(App);
    }

    private TusClient Tus { get; }

    public static TheoryData<string, string> BadNumbers => new()
    {
        { "-1", "invalid_parameter" },
        { "-0", "invalid_parameter" },
        { "abc", "invalid_parameter" },
        { "1e3", "invalid_parameter" },
        { "0x10", "invalid_parameter" },
        { "+5", "invalid_parameter" },
        { "5.0", "invalid_parameter" },
        { "5 5", "invalid_parameter" },
        { "\u0663", "invalid_parameter" },
        { "9223372036854775808", "invalid_parameter" },
        { "18446744073709551616", "invalid_parameter" },
        { "99999999999999999999999999999999", "invalid_parameter" },
    };

    [Theory]
    [MemberData(nameof(BadNumbers))]
    public async Task Creation_With_A_Bad_Upload_Length_Is_400_And_Creates_Nothing(string value, string code)
    {
        using var response = await Tus.SendAsync(HttpMethod.Post, "/tus", null, [("Upload-Length", value)]);
        await AssertRefusedAsync(response, HttpStatusCode.BadRequest, code);
        AssertNoUploads();
    }

    [Theory]
    [MemberData(nameof(BadNumbers))]
    public async Task Patch_With_A_Bad_Upload_Offset_Is_400_And_Stores_Nothing(string value, string code)
    {
        string location = await Tus.CreateUploadAsync(100);
        using var response = await Tus.PatchAsync(location, value, TusClient.Octets(new byte[10]));
        await AssertRefusedAsync(response, HttpStatusCode.BadRequest, code);
        Assert.Equal(0, await Tus.OffsetAsync(location));
    }

    [Theory]
    [MemberData(nameof(BadNumbers))]
    public async Task Patch_With_A_Bad_Upload_Length_Is_400_And_Stores_Nothing(string value, string code)
    {
        string location = await Tus.CreateUploadAsync(null, defer: true);
        using var response = await Tus.PatchAsync(location, 0, new byte[10], [("Upload-Length", value)]);
        await AssertRefusedAsync(response, HttpStatusCode.BadRequest, code);
        using var head = await Tus.HeadAsync(location);
        Assert.Equal(0, TusClient.OffsetOf(head));
        Assert.Equal("1", TusClient.Header(head, "Upload-Defer-Length"));
    }

    [Fact]
    public async Task Missing_Upload_Offset_Is_400()
    {
        string location = await Tus.CreateUploadAsync(100);
        using var response = await Tus.PatchAsync(location, null, TusClient.Octets(new byte[10]));
        await AssertRefusedAsync(response, HttpStatusCode.BadRequest, "invalid_parameter");
        Assert.Equal(0, await Tus.OffsetAsync(location));
    }

    [Fact]
    public async Task Repeated_Numbers_With_Different_Values_Are_400_And_The_Same_Value_Twice_Is_Fine()
    {
        using (var create = await Tus.SendAsync(HttpMethod.Post, "/tus", null, [("Upload-Length", "10"), ("Upload-Length", "20")]))
            await AssertRefusedAsync(create, HttpStatusCode.BadRequest, "conflicting_parameter");
        AssertNoUploads();

        string location = await Tus.CreateUploadAsync(100);
        using (var patch = await Tus.PatchAsync(location, "0", TusClient.Octets(new byte[10]), [("Upload-Offset", "10")]))
            await AssertRefusedAsync(patch, HttpStatusCode.BadRequest, "conflicting_parameter");
        Assert.Equal(0, await Tus.OffsetAsync(location));

        using (var same = await Tus.PatchAsync(location, "0", TusClient.Octets(new byte[10]), [("Upload-Offset", "0")]))
            Assert.Equal(HttpStatusCode.NoContent, same.StatusCode);
        Assert.Equal(10, await Tus.OffsetAsync(location));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("2")]
    [InlineData("true")]
    [InlineData("-1")]
    public async Task Upload_Defer_Length_Other_Than_1_Is_400(string value)
    {
        using var response = await Tus.SendAsync(HttpMethod.Post, "/tus", null, [("Upload-Defer-Length", value)]);
        await AssertRefusedAsync(response, HttpStatusCode.BadRequest, "invalid_parameter");
        AssertNoUploads();
    }

    public static TheoryData<string, string> BadMetadata => new()
    {
        { ",filename YQ==", "invalid_parameter" },                                       // an item without a key
        { "filename YQ==,,filetype Yg==", "invalid_parameter" },
        { "filename YQ==,", "invalid_parameter" },
        { "my key YQ==", "invalid_parameter" },                                          // a key with a space
        { "filename YQ== Yg==", "invalid_parameter" },                                   // a value with a space
        { "filename YW Jj", "invalid_parameter" },                                       // "abc" in base64 once the space is dropped
        { "clé YQ==", "invalid_parameter" },                                             // a key beyond ASCII
        { "file\u0001name YQ==", "invalid_parameter" },
        { "filename !!!!", "invalid_parameter" },                                        // not base64
        { "filename YQ=", "invalid_parameter" },
        { "filename YQ", "invalid_parameter" },
        { "filename " + Convert.ToBase64String([0xFF, 0xFE, 0xFD]), "invalid_parameter" },  // base64 of invalid UTF-8
        { "filename " + Convert.ToBase64String([0xED, 0xA0, 0x80]), "invalid_parameter" },  // an encoded lone surrogate
        { "filename YQ==,filename Yg==", "invalid_parameter" },                         // a duplicate key
        { "filename " + Convert.ToBase64String("a\0b.bin"u8.ToArray()), "invalid_file_name" },
        { "filename " + Convert.ToBase64String("a\nb.bin"u8.ToArray()), "invalid_file_name" },
        { "filename " + Convert.ToBase64String(Encoding.UTF8.GetBytes(new string('n', 2000))), "invalid_file_name" },
    };

    [Theory]
    [MemberData(nameof(BadMetadata))]
    public async Task Malformed_Upload_Metadata_Is_400_And_Creates_Nothing(string metadata, string code)
    {
        using var response = await Tus.CreateAsync(10, metadata);
        await AssertRefusedAsync(response, HttpStatusCode.BadRequest, code);
        AssertNoUploads();
    }

    [Fact]
    public async Task Upload_Metadata_Over_Its_Limit_Is_400_And_Creates_Nothing()
    {
        // The limit fits Uppy's metadata at the name and relative-path limits (about 30 KB with the defaults).
        string metadata = TusClient.Metadata(("filename", "a.bin"), ("padding", new string('p', 30_000)));
        Assert.True(metadata.Length > 40_000);
        using var response = await Tus.CreateAsync(10, metadata);
        await AssertRefusedAsync(response, HttpStatusCode.BadRequest, "invalid_parameter");
        AssertNoUploads();
    }

    [Fact]
    public async Task Metadata_Keys_Without_Values_And_Empty_Values_Are_Accepted()
    {
        string metadata = "is_confidential,filename " + Convert.ToBase64String("ok.bin"u8.ToArray()) + ",note ";
        using var response = await Tus.CreateAsync(10, metadata);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var status = await Client.StatusAsync(TusClient.IdOf(response.Headers.Location!.OriginalString));
        Assert.Equal("ok.bin", status.GetProperty("fileName").GetString());
    }

    [Theory]
    [InlineData("TRACE")]
    [InlineData("GET")]
    [InlineData("PUT")]
    [InlineData("patch, delete")]
    [InlineData("PATCH\u0001")]
    public async Task Method_Overrides_Other_Than_Patch_Delete_Head_Are_405(string method)
    {
        string location = await Tus.CreateUploadAsync(100);
        using var response = await Tus.SendAsync(HttpMethod.Post, location, TusClient.Octets(new byte[10]), [("X-HTTP-Method-Override", method), ("Upload-Offset", "0")]);
        await AssertRefusedAsync(response, HttpStatusCode.MethodNotAllowed, "method_not_allowed");
        Assert.Equal(0, await Tus.OffsetAsync(location));
    }

    [Theory]
    [InlineData("md4 AAAAAAAAAAAAAAAAAAAAAA==", "unsupported_checksum")]
    [InlineData("sha-256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "unsupported_checksum")]
    [InlineData("sha1 " + Sha1OfNothing + " extra", "invalid_parameter")]
    [InlineData("sha1:" + Sha1OfNothing, "invalid_parameter")]
    [InlineData("sha1 =" + Sha1OfNothing, "invalid_parameter")]
    [InlineData("sha256 " + Sha1OfNothing, "invalid_parameter")]
    public async Task Bad_Checksums_Are_400_And_Store_Nothing(string checksum, string code)
    {
        string location = await Tus.CreateUploadAsync(100);
        using var response = await Tus.PatchAsync(location, 0, [], [("Upload-Checksum", checksum)]);
        await AssertRefusedAsync(response, HttpStatusCode.BadRequest, code);
        Assert.Equal(0, await Tus.OffsetAsync(location));
    }

    [Fact]
    public async Task Two_Different_Checksums_Are_400()
    {
        string location = await Tus.CreateUploadAsync(100);
        using var response = await Tus.PatchAsync(location, 0, [], [("Upload-Checksum", "sha1 " + Sha1OfNothing), ("Upload-Checksum", "md5 1B2M2Y8AsgTpgAmY7PhCfg==")]);
        await AssertRefusedAsync(response, HttpStatusCode.BadRequest, "conflicting_parameter");
    }

    [Theory]
    [InlineData("final;/tus/0123456789abcdef0123456789abcdef")]
    [InlineData("final;http://other.example/tus/{partial}")]
    [InlineData("final;//other.example/tus/{partial}")]
    [InlineData("final;/tus/{partial}/../{partial}")]
    [InlineData("final;../tus/{partial}")]
    [InlineData("final;/tus/..%2F{partial}")]
    [InlineData("final;/tus/{partial}%00")]
    [InlineData("final;/tus/{partial} /tus/{partial}")]
    [InlineData("final;/tus/{plain}")]
    [InlineData("final;file:///tus/{partial}")]
    [InlineData("final;/uploads/{partial}")]
    [InlineData("final;")]
    [InlineData("final")]
    [InlineData("FINAL;/tus/{partial}")]
    [InlineData("partial;x")]
    public async Task Unusable_Concatenations_Are_400_And_Create_Nothing(string concat)
    {
        string partial = TusClient.IdOf(await Tus.CreateUploadAsync(10, concat: "partial"));
        string plain = TusClient.IdOf(await Tus.CreateUploadAsync(10));
        int before = Directory.EnumerateDirectories(Path.Combine(Dir.StorageRoot, "sessions")).Count();
        using var response = await Tus.CreateAsync(null, concat: concat.Replace("{partial}", partial, StringComparison.Ordinal).Replace("{plain}", plain, StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await ProblemAsync(response);
        Assert.Contains(problem.GetProperty("code").GetString(), ConcatenationCodes);
        Assert.Equal(before, Directory.EnumerateDirectories(Path.Combine(Dir.StorageRoot, "sessions")).Count());
    }

    [Fact]
    public async Task Concatenation_Of_Too_Many_Parts_Is_400()
    {
        string part = await Tus.CreateUploadAsync(10, concat: "partial");
        string concat = "final;" + string.Join(' ', Enumerable.Range(0, 1001).Select(i => part + "x" + i));
        using var response = await Tus.CreateAsync(null, concat: concat);
        await AssertRefusedAsync(response, HttpStatusCode.BadRequest, "invalid_concatenation");
    }

    [Theory]
    [InlineData("/tus/..%2F..%2Fsessions")]
    [InlineData("/tus/%2Fetc%2Fpasswd")]
    public async Task Hostile_Upload_Urls_Are_4xx_Problems(string url)
    {
        using (var patch = await Tus.PatchAsync(url, 0, new byte[10]))
            Assert.True(patch.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest, $"{(int)patch.StatusCode}");
        using (var delete = await Tus.DeleteAsync(url))
        {
            Assert.True(delete.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest, $"{(int)delete.StatusCode}");
            var problem = await ProblemAsync(delete);
            Assert.False(string.IsNullOrEmpty(problem.GetProperty("code").GetString()));
        }

        using (var head = await Tus.HeadAsync(url))
            Assert.True(head.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest, $"{(int)head.StatusCode}");
        AssertNoUploads();
    }

    private static async Task AssertRefusedAsync(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        Assert.True(response.StatusCode == status, $"Expected {(int)status} {code}, got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        await ResumableContractTests.AssertProblemAsync(response, code);
        Assert.Equal("1.0.0", TusClient.Header(response, "Tus-Resumable"));
    }

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
    }

    private void AssertNoUploads()
    {
        string sessions = Path.Combine(Dir.StorageRoot, "sessions");
        Assert.True(!Directory.Exists(sessions) || !Directory.EnumerateFileSystemEntries(sessions).Any(), "An upload record exists.");
    }
}
