using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ChunkUpload.Core.Engine;
using ChunkUpload.Server.Endpoints;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>The IETF draft at /rufh in its surroundings: CORS, the OpenAPI document, credentials, size limits, expiry.</summary>
public sealed class ResumableUploadsHostingTests
{
    private const string Origin = "http://page.example";

    [Theory]
    [InlineData("/rufh/", "POST")]
    [InlineData("/rufh/0123456789abcdef0123456789abcdef", "PATCH")]
    [InlineData("/rufh/0123456789abcdef0123456789abcdef", "HEAD")]
    [InlineData("/rufh/0123456789abcdef0123456789abcdef", "DELETE")]
    public async Task A_Preflight_Allows_The_Drafts_Request_Headers(string path, string method)
    {
        using var server = ProtocolServer.With(new Dictionary<string, string?> { ["Cors:AllowedOrigins:0"] = Origin });
        var preflight = new HttpRequestMessage(HttpMethod.Options, path);
        preflight.Headers.Add("Origin", Origin);
        preflight.Headers.Add("Access-Control-Request-Method", method);
        preflight.Headers.Add("Access-Control-Request-Headers", string.Join(", ", ResumableUploadsApi.RequestHeaders.Append("Content-Type").Select(h => h.ToLowerInvariant())));

        using var response = await server.Http.SendAsync(preflight);

        Assert.True(response.IsSuccessStatusCode, response.StatusCode.ToString());
        var allowed = response.Headers.GetValues("Access-Control-Allow-Headers").SelectMany(v => v.Split(',')).Select(v => v.Trim()).ToHashSet(StringComparer.OrdinalIgnoreCase);
        Assert.All(ResumableUploadsApi.RequestHeaders, h => Assert.Contains(h, allowed));
        Assert.Contains(method, response.Headers.GetValues("Access-Control-Allow-Methods").SelectMany(v => v.Split(',')).Select(v => v.Trim()));
    }

    [Fact]
    public async Task Answers_Expose_The_Upload_State_Headers_To_Pages()
    {
        using var server = ProtocolServer.With(new Dictionary<string, string?> { ["Cors:AllowedOrigins:0"] = Origin });
        var request = Rufh.Create(8, "?0", new byte[10], length: 20);
        request.Headers.Add("Origin", Origin);

        using var response = await server.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var exposed = response.Headers.GetValues("Access-Control-Expose-Headers").SelectMany(v => v.Split(',')).Select(v => v.Trim()).ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var header in new[] { "Location", "Upload-Offset", "Upload-Complete", "Upload-Length", "Upload-Limit" })
            Assert.Contains(header, exposed);
    }

    [Fact]
    public async Task Every_Endpoint_Is_Documented_With_A_Summary()
    {
        using var server = new ProtocolServer();
        var swagger = await server.Http.GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json");
        var paths = swagger.GetProperty("paths");
        foreach (var (path, method) in new[] { ("/rufh", "post"), ("/rufh", "put"), ("/rufh", "options"), ("/rufh/{id}", "head"), ("/rufh/{id}", "get"), ("/rufh/{id}", "patch"), ("/rufh/{id}", "delete") })
        {
            Assert.True(paths.TryGetProperty(path, out var item), path + " is not documented");
            Assert.True(item.TryGetProperty(method, out var operation), $"{method} {path} is not documented");
            Assert.False(string.IsNullOrWhiteSpace(operation.GetProperty("summary").GetString()), $"{method} {path} has no summary");
        }
    }

    [Fact]
    public async Task With_Auth_Requests_Need_Credentials_Refused_In_The_Drafts_Shape_But_Discovery_Is_Open()
    {
        using var server = ProtocolServer.With(new Dictionary<string, string?>
        {
            ["Auth:Enabled"] = "true",
            ["Auth:ApiKeys:0:Key"] = "alice-key-0123456789abcdef",
            ["Auth:ApiKeys:0:Owner"] = "alice",
            ["Auth:ApiKeys:1:Key"] = "bob-key-0123456789abcdef",
            ["Auth:ApiKeys:1:Owner"] = "bob",
        });
        using (var options = await server.Http.SendAsync(new HttpRequestMessage(HttpMethod.Options, "/rufh/")))
            Assert.Equal(HttpStatusCode.NoContent, options.StatusCode);
        using (var anonymous = await server.Http.SendAsync(Rufh.Create(8, "?1", [1, 2, 3])))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            Assert.Equal("application/problem+json", anonymous.Content.Headers.ContentType?.MediaType);
            Assert.Equal("?0", Rufh.Header(anonymous, "Upload-Complete"));
        }

        var create = Rufh.Create(8, "?0", [1, 2, 3], length: 6);
        create.Headers.Add("X-Api-Key", "alice-key-0123456789abcdef");
        string url;
        using (var created = await server.Http.SendAsync(create))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            url = created.Headers.Location!.OriginalString;
        }

        // Bob does not see Alice's upload; Alice finishes it.
        var bobs = Rufh.Patch(url, 8, 3, "?1", [4, 5, 6]);
        bobs.Headers.Add("X-Api-Key", "bob-key-0123456789abcdef");
        using (var refused = await server.Http.SendAsync(bobs))
            await Rufh.AssertProblemAsync(refused, 404, "upload_not_found");
        var alices = Rufh.Patch(url, 8, 3, "?1", [4, 5, 6]);
        alices.Headers.Add("X-Api-Key", "alice-key-0123456789abcdef");
        using (var done = await server.Http.SendAsync(alices))
            Assert.Equal(HttpStatusCode.OK, done.StatusCode);
    }

    [Fact]
    public async Task An_Upload_Over_The_Size_Limit_Is_413_With_Upload_Limit_And_Creates_Nothing()
    {
        using var server = ProtocolServer.With(new Dictionary<string, string?> { ["Upload:MaxFileSize"] = "1000" });
        using (var options = await server.Http.SendAsync(new HttpRequestMessage(HttpMethod.Options, "/rufh/")))
            Assert.Equal("max-size=1000", Rufh.Header(options, "Upload-Limit"));

        using (var declared = await server.Http.SendAsync(Rufh.Create(8, "?0", length: 1001)))
        {
            await Rufh.AssertProblemAsync(declared, 413, "file_too_large");
            Assert.Equal("max-size=1000", Rufh.Header(declared, "Upload-Limit"));
            Assert.Null(declared.Headers.Location);
        }

        using (var whole = await server.Http.SendAsync(Rufh.Create(6, "?1", new byte[1001])))
        {
            await Rufh.AssertProblemAsync(whole, 413, "file_too_large");
            Assert.Equal("max-size=1000", Rufh.Header(whole, "Upload-Limit"));
        }

        // Without a length, the limit stops the content itself.
        string url = await Rufh.CreateEmptyAsync(server.Http, 8);
        using (var appended = await server.Http.SendAsync(Rufh.Patch(url, 8, 0, "?0", new byte[1001])))
            await Rufh.AssertProblemAsync(appended, 413, "file_too_large");
        Assert.Equal(0, await Rufh.OffsetAsync(server.Http, url));
        Assert.Equal(1, server.App.Services.GetRequiredService<UploadEngine>().ActiveCount); // only the upload without a length
    }

    [Fact]
    public async Task The_Lifetime_In_Upload_Limit_Counts_Down_And_An_Expired_Upload_Is_410()
    {
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 11, 1, 12, 0, 0, TimeSpan.Zero));
        using var server = ProtocolServer.With(null, clock);
        using var creation = await server.Http.SendAsync(Rufh.Create(8, "?0", [1, 2, 3], length: 10));
        string url = creation.Headers.Location!.OriginalString;
        long lifetime = LifetimeOf(creation);

        clock.Advance(TimeSpan.FromMinutes(10));
        using (var head = await server.Http.SendAsync(Rufh.Head(url, 8)))
            Assert.Equal(lifetime - 600, LifetimeOf(head));

        clock.Advance(TimeSpan.FromDays(8));
        using (var head = await server.Http.SendAsync(Rufh.Head(url, 8)))
            Assert.Equal(HttpStatusCode.Gone, head.StatusCode);
        using (var patch = await server.Http.SendAsync(Rufh.Patch(url, 8, 3, "?1", new byte[7])))
            await Rufh.AssertProblemAsync(patch, 410, "upload_expired");
        using (var delete = await server.Http.SendAsync(Rufh.Delete(url, 8)))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
    }

    private static long LifetimeOf(HttpResponseMessage response)
    {
        string limit = Rufh.Header(response, "Upload-Limit")!;
        string member = limit.Split(',').Select(m => m.Trim()).Single(m => m.StartsWith("max-age=", StringComparison.Ordinal));
        return long.Parse(member["max-age=".Length..], System.Globalization.CultureInfo.InvariantCulture);
    }
}
