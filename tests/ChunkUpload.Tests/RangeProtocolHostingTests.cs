using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ChunkUpload.Server.Endpoints;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>What browsers and API readers see of the Google-style, nginx and append protocols: CORS and the OpenAPI document.</summary>
public sealed class RangeProtocolHostingTests : IDisposable
{
    private const string Origin = "http://page.example";

    // PROTOCOLS.md section 8: every header these clients send, and those the adapters declare.
    private static readonly string[] ClientHeaders =
    [
        .. new[] { "X-File-Id", "X-Start-Byte", "Content-Range", "X-Content-Range", "Content-Disposition", "Session-ID", "X-Session-ID", "X-Upload-Content-Type", "X-Upload-Content-Length" }
            .Concat(GoogleApi.RequestHeaders).Concat(NginxUploadApi.RequestHeaders).Concat(AppendApi.RequestHeaders)
            .Distinct(StringComparer.OrdinalIgnoreCase),
    ];

    private readonly ProtocolServer _server = ProtocolServer.With(new Dictionary<string, string?> { ["Cors:AllowedOrigins:0"] = Origin });

    public void Dispose() => _server.Dispose();

    [Theory]
    [InlineData("/upload/video.mp4", "PUT")]
    [InlineData("/nginx-upload", "POST")]
    [InlineData("/append", "POST")]
    [InlineData("/append/status", "GET")]
    public async Task A_Preflight_Allows_Every_Header_Of_These_Protocols_Without_Credentials(string path, string method)
    {
        var preflight = new HttpRequestMessage(HttpMethod.Options, path);
        preflight.Headers.Add("Origin", Origin);
        preflight.Headers.Add("Access-Control-Request-Method", method);
        preflight.Headers.Add("Access-Control-Request-Headers", string.Join(", ", ClientHeaders.Select(h => h.ToLowerInvariant())));
        using var response = await _server.Http.SendAsync(preflight);
        Assert.True(response.IsSuccessStatusCode, response.StatusCode.ToString());
        Assert.Equal(Origin, response.Headers.GetValues("Access-Control-Allow-Origin").Single());
        var allowed = response.Headers.GetValues("Access-Control-Allow-Headers").SelectMany(v => v.Split(',')).Select(v => v.Trim()).ToHashSet(StringComparer.OrdinalIgnoreCase);
        Assert.All(ClientHeaders, h => Assert.Contains(h, allowed));
        Assert.Contains(method, response.Headers.GetValues("Access-Control-Allow-Methods").SelectMany(v => v.Split(',')).Select(v => v.Trim()));
    }

    [Fact]
    public async Task Answers_Expose_Range_Location_And_Upload_Offset_To_Pages()
    {
        var request = new HttpRequestMessage(HttpMethod.Put, "/upload/cors.bin") { Content = new ByteArrayContent(new byte[10]) };
        request.Content.Headers.TryAddWithoutValidation("Content-Range", "bytes 0-9/20");
        request.Headers.Add("Origin", Origin);
        using var response = await _server.Http.SendAsync(request);
        Assert.Equal(308, (int)response.StatusCode);
        var exposed = response.Headers.GetValues("Access-Control-Expose-Headers").SelectMany(v => v.Split(',')).Select(v => v.Trim()).ToHashSet(StringComparer.OrdinalIgnoreCase);
        Assert.Contains("Range", exposed);
        Assert.Contains("Location", exposed);
        Assert.Contains("Upload-Offset", exposed);
    }

    [Fact]
    public async Task With_Auth_On_Every_Endpoint_Needs_Credentials_And_Each_Principal_Has_Its_Own_Ids()
    {
        using var server = ProtocolServer.With(new Dictionary<string, string?>
        {
            ["Auth:Enabled"] = "true",
            ["Auth:ApiKeys:0:Key"] = "alice-key-0123456789abcdef",
            ["Auth:ApiKeys:0:Owner"] = "alice",
            ["Auth:ApiKeys:1:Key"] = "bob-key-0123456789abcdef",
            ["Auth:ApiKeys:1:Owner"] = "bob",
        });
        var requests = new Func<HttpRequestMessage>[]
        {
            () => new HttpRequestMessage(HttpMethod.Post, "/upload/auth.bin?uploadType=resumable"),
            () => new HttpRequestMessage(HttpMethod.Put, "/upload/auth.bin") { Content = new ByteArrayContent(new byte[6]) },
            () => NginxUploadProtocolTests.Segment("auth", new byte[6], 0, 5, 6),
            () => AppendProtocolTests.Post("auth-6-1", "0", new byte[6]),
            () => AppendProtocolTests.Post("auth-6-1", "0", new byte[6], "/append/upload"),
            () => new HttpRequestMessage(HttpMethod.Get, "/append/status") { Headers = { { "X-File-Id", "auth-6-1" } } },
        };
        foreach (var request in requests)
        {
            using var response = await server.Http.SendAsync(request());
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        foreach (var (key, body) in new[] { ("alice-key-0123456789abcdef", new byte[] { 1, 2, 3 }), ("bob-key-0123456789abcdef", new byte[] { 4, 5, 6, 7 }) })
        {
            var post = AppendProtocolTests.Post("same-id-1-1", "0", body);
            post.Headers.Add("X-Api-Key", key);
            using var response = await server.Http.SendAsync(post);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var download = new HttpRequestMessage(HttpMethod.Get, "/files/same-id-1-1") { Headers = { { "X-Api-Key", key } } };
            using var file = await server.Http.SendAsync(download);
            Assert.Equal(body, await file.Content.ReadAsByteArrayAsync());
        }
    }

    [Fact]
    public async Task Every_Endpoint_Is_Documented_With_A_Summary()
    {
        var swagger = await _server.Http.GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json");
        var paths = swagger.GetProperty("paths");
        foreach (var (path, method) in new[] { ("/upload/{name}", "post"), ("/upload/{name}", "put"), ("/nginx-upload", "post"), ("/append", "post"), ("/append/upload", "post"), ("/append/status", "get") })
        {
            Assert.True(paths.TryGetProperty(path, out var item), path + " is not documented");
            Assert.False(string.IsNullOrWhiteSpace(item.GetProperty(method).GetProperty("summary").GetString()), $"{method} {path} has no summary");
        }

        Assert.True(paths.TryGetProperty("/upload", out _));
        Assert.False(paths.GetProperty("/nginx-upload").TryGetProperty("get", out _)); // the 405 answers are not part of the API
        using var ui = await _server.Http.GetAsync("/swagger/index.html");
        Assert.Equal(HttpStatusCode.OK, ui.StatusCode);
    }
}
