using System.Net;
using ChunkUpload.Core.Engine;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>Idle uploads of the Google-style, nginx and append protocols expire as the engine decides, each answered in its protocol's way.</summary>
public sealed class RangeProtocolExpiryTests : IDisposable
{
    private readonly ManualTimeProvider _clock = new(new DateTimeOffset(2026, 11, 1, 12, 0, 0, TimeSpan.Zero));
    private readonly ProtocolServer _server;

    public RangeProtocolExpiryTests() => _server = ProtocolServer.With(null, _clock);

    public void Dispose() => _server.Dispose();

    [Fact]
    public async Task Expired_Uploads_Are_410_For_Google_And_Nginx_And_Start_Over_For_Append()
    {
        var http = _server.Http;
        var data = UploadClient.RandomBytes(24, 1);
        using (var google = await GoogleProtocolTests.SendPutAsync(http, "/upload/idle-g", data[..10], "bytes 0-9/24"))
            Assert.Equal(308, (int)google.StatusCode);
        using (var nginx = await http.SendAsync(NginxUploadProtocolTests.Segment("idle-n", data, 0, 9, 24)))
            Assert.Equal(HttpStatusCode.Created, nginx.StatusCode);
        using (var append = await http.SendAsync(WithSize(AppendProtocolTests.Post("idle-a-24-1", "0", data[..10]), "24")))
            Assert.Equal(HttpStatusCode.OK, append.StatusCode);

        _clock.Advance(TimeSpan.FromDays(7) + TimeSpan.FromMinutes(1));

        using (var query = await GoogleProtocolTests.SendPutAsync(http, "/upload/idle-g", [], "bytes */*"))
            await GoogleProtocolTests.AssertGoogleErrorAsync(query, 410, "upload_expired");
        using (var chunk = await GoogleProtocolTests.SendPutAsync(http, "/upload/idle-g", data[10..], "bytes 10-23/24"))
            await GoogleProtocolTests.AssertGoogleErrorAsync(chunk, 410, "upload_expired");
        using (var segment = await http.SendAsync(NginxUploadProtocolTests.Segment("idle-n", data, 10, 23, 24)))
            await NginxUploadProtocolTests.AssertTextErrorAsync(segment, 410, "upload_expired");
        using (var count = await AppendProtocolTests.StatusAsync(http, "idle-a-24-1"))
            Assert.Equal("0", await count.Content.ReadAsStringAsync()); // what the tutorial's server says of a file it lost
        using (var resume = await http.SendAsync(AppendProtocolTests.Post("idle-a-24-1", "10", data[10..])))
        {
            await AppendProtocolTests.AssertTextErrorAsync(resume, 409, "offset_mismatch");
            Assert.Equal("0", resume.Headers.GetValues("Upload-Offset").Single());
        }

        using (var restart = await http.SendAsync(AppendProtocolTests.Post("idle-a-24-1", "0", data)))
            Assert.Equal("24", await restart.Content.ReadAsStringAsync());
        Assert.Equal(data, await _server.DownloadAsync("idle-a-24-1"));

        // A new Google session replaces the expired one; the sweeper removes the rest.
        using (var init = await http.PostAsync("/upload/idle-g?uploadType=resumable", null))
            Assert.Equal(HttpStatusCode.OK, init.StatusCode);
        using (var fresh = await GoogleProtocolTests.SendPutAsync(http, "/upload/idle-g", [], "bytes */*"))
        {
            Assert.Equal(308, (int)fresh.StatusCode);
            Assert.Null(GoogleProtocolTests.RangeOf(fresh));
        }

        await _server.App.Services.GetRequiredService<UploadEngine>().SweepAsync(CancellationToken.None);
        Assert.Equal(HttpStatusCode.NotFound, await _server.UploadStatusCodeAsync("idle-n"));
    }

    private static HttpRequestMessage WithSize(HttpRequestMessage request, string size)
    {
        request.Headers.Add("X-File-Size", size);
        return request;
    }
}
