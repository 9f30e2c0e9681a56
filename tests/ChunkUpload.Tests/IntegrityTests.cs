#pragma warning disable CA5351 // MD5 is what Content-MD5 and tus "md5" checksums are: the tests must compute it
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// Per-request integrity for the chunk protocol: a Content-Digest (RFC 9530) or Content-MD5 of the request content is
/// checked before the chunk is kept (a mismatch is a 400 checksum_mismatch and nothing is stored); a Repr-Digest names
/// the whole file's SHA-256, checked at completion.
/// </summary>
public sealed class IntegrityTests : ServerTest
{
    private static string Sfv(string algorithm, byte[] digest) => $"{algorithm}=:{Convert.ToBase64String(digest)}:";

    private Task<HttpResponseMessage> PostOctetAsync(TestFile file, int chunk, Action<HttpRequestHeaders, HttpContentHeaders> headers)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/upload?" + UploadClient.Query(UploadClient.Parameters(ClientKind.ResumableOctet, file, chunk)))
        {
            Content = new ReadOnlyMemoryContent(file.Slice(chunk)),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        headers(request.Headers, request.Content.Headers);
        return Client.Http.SendAsync(request);
    }

    [Theory]
    [InlineData("sha-256")]
    [InlineData("sha-512")]
    [InlineData("md5")]
    public async Task A_Chunk_With_A_Matching_Content_Digest_Is_Stored(string algorithm)
    {
        var file = TestFile.Random("digest-ok-" + algorithm, 3000, 1000);
        byte[] digest = algorithm switch
        {
            "sha-256" => SHA256.HashData(file.Slice(1).Span),
            "sha-512" => SHA512.HashData(file.Slice(1).Span),
            _ => MD5.HashData(file.Slice(1).Span),
        };
        using var response = await PostOctetAsync(file, 1, (h, _) => h.Add("Content-Digest", Sfv(algorithm, digest) + ", unknown-algo=:AAAA:"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var test = await Client.TestChunkAsync(file, 1);
        Assert.Equal(HttpStatusCode.OK, test.StatusCode);
    }

    [Fact]
    public async Task A_Chunk_That_Does_Not_Match_Its_Digest_Is_Refused_And_Not_Kept()
    {
        var file = TestFile.Random("digest-bad", 3000, 1000);
        var wrong = SHA256.HashData(file.Slice(2).Span);
        using (var response = await PostOctetAsync(file, 1, (h, _) => h.Add("Content-Digest", Sfv("sha-256", wrong))))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            await ResumableContractTests.AssertProblemAsync(response, "checksum_mismatch");
        }

        using (var response = await PostOctetAsync(file, 1, (_, c) => c.ContentMD5 = MD5.HashData(file.Slice(3).Span)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            await ResumableContractTests.AssertProblemAsync(response, "checksum_mismatch");
        }

        using (var test = await Client.TestChunkAsync(file, 1))
            Assert.Equal(HttpStatusCode.NoContent, test.StatusCode);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Dir.StorageRoot, "tmp")));
        Assert.Equal(0, (await Client.StatusAsync(file.Identifier)).GetProperty("storedBytes").GetInt64());
    }

    [Theory]
    [InlineData("sha-256=abc")]
    [InlineData("sha-256=:not base64!:")]
    [InlineData("sha-256=:AAAA:")]
    [InlineData("=:AAAA:")]
    public async Task A_Malformed_Digest_Is_A_400(string header)
    {
        var file = TestFile.Random("digest-malformed", 3000, 1000);
        using var response = await PostOctetAsync(file, 1, (h, _) => h.TryAddWithoutValidation("Content-Digest", header));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await ResumableContractTests.AssertProblemAsync(response, "invalid_parameter");
    }

    [Fact]
    public async Task A_Multipart_Chunk_Is_Checked_Against_The_Digest_Of_The_Whole_Request_Content()
    {
        var file = TestFile.Random("digest-multipart", 3000, 1000);
        var parameters = UploadClient.Parameters(ClientKind.ResumableMultipart, file, 1);
        var form = new MultipartFormDataContent();
        foreach (var (name, value) in parameters)
            form.Add(new StringContent(value), name);
        form.Add(new ReadOnlyMemoryContent(file.Slice(1)), "file", "blob");
        byte[] body = await form.ReadAsByteArrayAsync();

        foreach (bool intact in new[] { false, true })
        {
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = form.Headers.ContentType;
            var request = new HttpRequestMessage(HttpMethod.Post, "/upload?" + UploadClient.Query(parameters)) { Content = content };
            request.Headers.Add("Content-Digest", Sfv("sha-256", intact ? SHA256.HashData(body) : SHA256.HashData(file.Slice(1).Span)));
            using var response = await Client.Http.SendAsync(request);
            Assert.Equal(intact ? HttpStatusCode.OK : HttpStatusCode.BadRequest, response.StatusCode);
            using var test = await Client.TestChunkAsync(file, 1);
            Assert.Equal(intact ? HttpStatusCode.OK : HttpStatusCode.NoContent, test.StatusCode);
        }
    }

    [Fact]
    public async Task A_Repr_Digest_That_Does_Not_Match_The_Finished_File_Fails_The_Upload()
    {
        var file = TestFile.Random("repr-digest", 3000, 1000);
        var other = SHA256.HashData(new byte[3000]);
        using (var first = await PostOctetAsync(file, 1, (h, _) => h.Add("Repr-Digest", Sfv("sha-256", other))))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        await Client.UploadAllAsync(file, ClientKind.ResumableOctet, order: [2, 3]);

        var deadline = DateTime.UtcNow.AddSeconds(30);
        string state;
        do
        {
            state = (await Client.StatusAsync(file.Identifier)).GetProperty("state").GetString()!;
            await Task.Delay(10);
        }
        while (state != "failed" && DateTime.UtcNow < deadline);
        Assert.Equal("failed", state);

        var good = TestFile.Random("repr-digest-good", 3000, 1000);
        using (var first = await PostOctetAsync(good, 1, (h, _) => h.Add("Repr-Digest", Sfv("sha-256", SHA256.HashData(good.Data)))))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        await Client.UploadAllAsync(good, ClientKind.ResumableOctet, order: [2, 3]);
        Assert.Equal(good.Sha256, (await Client.WaitForCompleteAsync(good.Identifier)).GetProperty("sha256").GetString());
    }
}
