using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// Per-request integrity is the same for every protocol: a body whose Content-Digest does not match is refused (400,
/// code checksum_mismatch, in the protocol's own error shape) and nothing of it is kept; a matching one is stored.
/// </summary>
public sealed class IntegrityAcrossProtocolsTests : ServerTest
{
    public static TheoryData<string> Protocols => new() { "fineuploader", "google", "nginx", "append" };

    private static HttpRequestMessage Request(string protocol, string id, byte[] body)
    {
        var request = protocol switch
        {
            "fineuploader" => new HttpRequestMessage(HttpMethod.Post, $"/fineuploader?qquuid={id}&qqfilename={id}.bin&qqtotalfilesize={body.Length}"),
            "google" => new HttpRequestMessage(HttpMethod.Put, $"/upload/{id}"),
            "nginx" => new HttpRequestMessage(HttpMethod.Post, "/nginx-upload"),
            _ => new HttpRequestMessage(HttpMethod.Post, "/append"),
        };
        request.Content = new ByteArrayContent(body);
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        switch (protocol)
        {
            case "nginx":
                request.Headers.Add("Session-ID", id);
                request.Headers.Add("X-Content-Range", $"bytes 0-{body.Length - 1}/{body.Length}");
                request.Content.Headers.ContentDisposition = new ContentDispositionHeaderValue("attachment") { FileName = "\"f.bin\"" };
                break;
            case "append":
                request.Headers.Add("X-File-Id", id);
                request.Headers.Add("X-Start-Byte", "0");
                break;
        }

        return request;
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_Body_That_Does_Not_Match_Its_Content_Digest_Is_Refused_And_Nothing_Is_Kept(string protocol)
    {
        string id = "digest-" + protocol;
        var body = UploadClient.RandomBytes(5000, 3);
        var wrong = SHA256.HashData(body.AsSpan(1));

        using (var request = Request(protocol, id, body))
        {
            request.Headers.Add("Content-Digest", $"sha-256=:{Convert.ToBase64String(wrong)}:");
            using var refused = await Client.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("checksum_mismatch", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var status = await Client.Http.GetAsync("/uploads/" + id))
        {
            // Either the upload was never created, or it holds nothing.
            if (status.StatusCode == HttpStatusCode.OK)
                Assert.Equal(0, (await Client.StatusAsync(id)).GetProperty("storedBytes").GetInt64());
            else
                Assert.Equal(HttpStatusCode.NotFound, status.StatusCode);
        }

        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Dir.StorageRoot, "tmp")));

        using (var request = Request(protocol, id, body))
        {
            request.Headers.Add("Content-Digest", $"sha-256=:{Convert.ToBase64String(SHA256.HashData(body))}:");
            using var stored = await Client.Http.SendAsync(request);
            Assert.True(stored.IsSuccessStatusCode, $"{protocol}: {(int)stored.StatusCode} {await stored.Content.ReadAsStringAsync()}");
        }

        var done = await Client.WaitForCompleteAsync(id);
        Assert.Equal(UploadClient.Sha256Hex(body), done.GetProperty("sha256").GetString());
    }
}
