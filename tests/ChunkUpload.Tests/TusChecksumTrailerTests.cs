using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>
/// tus checksum-trailer: Upload-Checksum sent as an HTTP trailer after a chunked PATCH body. HttpClient cannot send
/// request trailers and the in-process TestServer does not pass them on, so these tests run the server on a real
/// Kestrel (127.0.0.1, a free port) and speak HTTP/1.1 over a socket.
/// </summary>
public sealed class TusChecksumTrailerTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly ChunkUploadApplication _app;
    private readonly Uri _base;
    private readonly TusClient _tus;

    public TusChecksumTrailerTests()
    {
        _app = new ChunkUploadApplication(_dir.StorageRoot);
        _app.UseKestrel(options => options.Listen(IPAddress.Loopback, 0));
        _app.StartServer();
        string address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        _base = new Uri(address);
        _tus = new TusClient(new HttpClient { BaseAddress = _base });
    }

    public void Dispose()
    {
        _tus.Http.Dispose();
        _app.Dispose();
        _dir.Dispose();
    }

    [Theory]
    [InlineData("sha1")]
    [InlineData("md5")]
    [InlineData("sha256")]
    public async Task A_Chunked_Patch_With_A_Matching_Trailer_Is_Stored(string algorithm)
    {
        byte[] data = UploadClient.RandomBytes(300_000, 51);
        string location = await _tus.CreateUploadAsync(data.Length);
        var response = await PatchWithTrailerAsync(location, 0, data, TusClient.Checksum(algorithm, data));
        Assert.True(response.Status == 204, response.Text);
        Assert.Equal(data.Length.ToString(CultureInfo.InvariantCulture), response.Headers["upload-offset"]);
        var status = await new UploadClient(_tus.Http).WaitForCompleteAsync(TusClient.IdOf(location));
        Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task A_Mismatching_Trailer_Is_460_And_Nothing_Of_The_Body_Is_Kept()
    {
        byte[] data = UploadClient.RandomBytes(300_000, 52);
        string location = await _tus.CreateUploadAsync(data.Length);
        byte[] wrong = TusClient.Digest("sha1", data);
        wrong[0] ^= 0xFF;
        var response = await PatchWithTrailerAsync(location, 0, data, "sha1 " + Convert.ToBase64String(wrong));
        Assert.True(response.Status == 460, response.Text);
        Assert.Contains("checksum_mismatch", response.Body, StringComparison.Ordinal);
        Assert.Equal(0, await _tus.OffsetAsync(location));

        var retry = await PatchWithTrailerAsync(location, 0, data, TusClient.Checksum("sha1", data));
        Assert.True(retry.Status == 204, retry.Text);
    }

    [Theory]
    [InlineData(null, "invalid_parameter")]
    [InlineData("crc32 AAAAAA==", "unsupported_checksum")]
    [InlineData("sha1 !!!", "invalid_parameter")]
    public async Task An_Announced_Trailer_That_Is_Missing_Or_Bad_Is_400_And_Nothing_Is_Kept(string? trailer, string code)
    {
        byte[] data = UploadClient.RandomBytes(1000, 53);
        string location = await _tus.CreateUploadAsync(data.Length);
        var response = await PatchWithTrailerAsync(location, 0, data, trailer);
        Assert.True(response.Status == 400, response.Text);
        Assert.Contains(code, response.Body, StringComparison.Ordinal);
        Assert.Equal(0, await _tus.OffsetAsync(location));
    }

    private async Task<RawReply> PatchWithTrailerAsync(string location, long offset, byte[] body, string? trailer)
    {
        using var client = new TcpClient();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await client.ConnectAsync(_base.Host, _base.Port, timeout.Token);
        var stream = client.GetStream();
        var head = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"PATCH {location} HTTP/1.1\r\n")
            .Append(CultureInfo.InvariantCulture, $"Host: {_base.Authority}\r\n")
            .Append("Connection: close\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n")
            .Append(CultureInfo.InvariantCulture, $"Upload-Offset: {offset}\r\n")
            .Append("Transfer-Encoding: chunked\r\nTrailer: Upload-Checksum\r\n\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()), timeout.Token);
        for (int at = 0; at < body.Length; at += 64 * 1024)
        {
            int length = Math.Min(64 * 1024, body.Length - at);
            await stream.WriteAsync(Encoding.ASCII.GetBytes(length.ToString("x", CultureInfo.InvariantCulture) + "\r\n"), timeout.Token);
            await stream.WriteAsync(body.AsMemory(at, length), timeout.Token);
            await stream.WriteAsync("\r\n"u8.ToArray(), timeout.Token);
        }

        await stream.WriteAsync(Encoding.ASCII.GetBytes("0\r\n" + (trailer is null ? "" : $"Upload-Checksum: {trailer}\r\n") + "\r\n"), timeout.Token);
        using var received = new MemoryStream();
        await stream.CopyToAsync(received, timeout.Token);
        return RawReply.Parse(Encoding.UTF8.GetString(received.ToArray()));
    }

    private sealed record RawReply(int Status, Dictionary<string, string> Headers, string Body, string Text)
    {
        public static RawReply Parse(string text)
        {
            int end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            var lines = text[..end].Split("\r\n");
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var line in lines.Skip(1))
            {
                int colon = line.IndexOf(':', StringComparison.Ordinal);
                headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
            }

            return new RawReply(int.Parse(lines[0].Split(' ')[1], CultureInfo.InvariantCulture), headers, text[(end + 4)..], text);
        }
    }
}
