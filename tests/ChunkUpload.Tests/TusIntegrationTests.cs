using System.Net;
using System.Text.Json;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Hooks;
using ChunkUpload.Server.Services;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>
/// A tus upload is an upload like any other: the protocol-neutral API, the webhook, quotas, principals, the
/// authorization callback and CORS apply to it as to the chunk protocols.
/// </summary>
public sealed class TusIntegrationTests : IDisposable
{
    private const string AliceKey = "alice-key-0123456789abcdef";
    private const string BobKey = "bob-key-0123456789abcdef";
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static Dictionary<string, string?> AuthOn() => new()
    {
        ["Auth:Enabled"] = "true",
        ["Auth:ApiKeys:0:Key"] = AliceKey,
        ["Auth:ApiKeys:0:Owner"] = "alice",
        ["Auth:ApiKeys:1:Key"] = BobKey,
        ["Auth:ApiKeys:1:Owner"] = "bob",
    };

    private static TusClient As(ChunkUploadApplication app, string? apiKey) => TusClient.Of(app, apiKey);

    [Fact]
    public async Task Tus_Uploads_Are_Seen_Deleted_And_Downloaded_Through_The_Uploads_Api_And_Announced_Once()
    {
        var webhook = new WebhookTests.Receiver(failFirst: 0);
        using var app = new ChunkUploadApplication(
            _dir.StorageRoot,
            new Dictionary<string, string?> { ["Webhook:Url"] = "http://app.test/uploads/completed", ["Webhook:InitialRetryDelay"] = "00:00:00.010" },
            services => services.AddHttpClient<WebhookService>().ConfigurePrimaryHttpMessageHandler(() => webhook));
        var tus = TusClient.Of(app);
        var uploads = new UploadClient(tus.Http);
        byte[] data = UploadClient.RandomBytes(5000, 21);

        string location = await tus.CreateUploadAsync(data.Length, TusClient.Metadata(("filename", "film.mkv"), ("filetype", "video/x-matroska")));
        string id = TusClient.IdOf(location);
        using (var patch = await tus.PatchAsync(location, 0, data[..2000]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);

        var partial = await uploads.StatusAsync(id);
        Assert.Equal("receiving", partial.GetProperty("state").GetString());
        Assert.Equal(2000, partial.GetProperty("offset").GetInt64());
        var ranges = partial.GetProperty("storedRanges").EnumerateArray().Select(r => (r.GetProperty("offset").GetInt64(), r.GetProperty("length").GetInt64())).ToList();
        Assert.Equal([(0L, 2000L)], ranges);
        using (var early = await tus.Http.GetAsync("/files/" + id))
            Assert.Equal(HttpStatusCode.NotFound, early.StatusCode);

        using (var patch = await tus.PatchAsync(location, 2000, data[2000..]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        var done = await uploads.WaitForCompleteAsync(id);
        Assert.Equal(UploadClient.Sha256Hex(data), done.GetProperty("sha256").GetString());
        Assert.Equal(data, await tus.Http.GetByteArrayAsync("/files/" + id));
        Assert.Equal(data, await tus.Http.GetByteArrayAsync(location));

        // A re-sent last PATCH (the client lost the answer) changes nothing and announces nothing more.
        using (var again = await tus.PatchAsync(location, data.Length, []))
            Assert.Equal(HttpStatusCode.NoContent, again.StatusCode);
        var delivery = await webhook.WaitForAsync(1);
        var body = JsonDocument.Parse(delivery.Body).RootElement;
        Assert.Equal(id, body.GetProperty("identifier").GetString());
        Assert.Equal("film.mkv", body.GetProperty("fileName").GetString());
        Assert.Equal(UploadClient.Sha256Hex(data), body.GetProperty("sha256").GetString());
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Directory.EnumerateFiles(Path.Combine(_dir.StorageRoot, "outbox"), "*.json").Any())
        {
            Assert.True(DateTime.UtcNow < deadline, "The outbox was not emptied.");
            await Task.Delay(10);
        }

        Assert.Single(webhook.Deliveries);

        using (var delete = await tus.Http.DeleteAsync("/uploads/" + id))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using (var head = await tus.HeadAsync(location))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        using (var gone = await tus.Http.GetAsync("/files/" + id))
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task Unfinished_Tus_Uploads_Count_Against_The_Per_Client_Limit_With_429()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?> { ["Upload:MaxActiveUploadsPerClient"] = "2" });
        var tus = TusClient.Of(app);
        string first = await tus.CreateUploadAsync(10);
        await tus.CreateUploadAsync(10);
        using (var third = await tus.CreateAsync(10))
        {
            Assert.Equal((HttpStatusCode)429, third.StatusCode);
            Assert.NotNull(third.Headers.RetryAfter);
            await ResumableContractTests.AssertProblemAsync(third, "too_many_uploads");
        }

        using (var patch = await tus.PatchAsync(first, 0, new byte[10]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        await new UploadClient(tus.Http).WaitForCompleteAsync(TusClient.IdOf(first));
        await tus.CreateUploadAsync(10);
    }

    [Fact]
    public async Task With_Auth_On_Discovery_Is_Open_And_Everything_Else_Needs_Credentials()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, AuthOn());
        var anonymous = As(app, null);
        using (var options = await anonymous.OptionsAsync())
        {
            Assert.Equal(HttpStatusCode.NoContent, options.StatusCode);
            Assert.NotNull(TusClient.Header(options, "Tus-Extension"));
        }

        using (var options = await anonymous.OptionsAsync("/tus/abc"))
            Assert.Equal(HttpStatusCode.NoContent, options.StatusCode);
        using (var create = await anonymous.CreateAsync(10))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, create.StatusCode);
            await ResumableContractTests.AssertProblemAsync(create, "unauthenticated");
        }

        string location = await As(app, AliceKey).CreateUploadAsync(10);
        using (var head = await anonymous.HeadAsync(location))
            Assert.Equal(HttpStatusCode.Unauthorized, head.StatusCode);
        using (var patch = await anonymous.PatchAsync(location, 0, new byte[10]))
            Assert.Equal(HttpStatusCode.Unauthorized, patch.StatusCode);
        using (var delete = await anonymous.DeleteAsync(location))
            Assert.Equal(HttpStatusCode.Unauthorized, delete.StatusCode);
        Assert.Equal(0, await As(app, AliceKey).OffsetAsync(location));
    }

    [Fact]
    public async Task Another_Principal_Gets_404_For_An_Upload_And_Cannot_Concatenate_Its_Parts()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, AuthOn());
        var alice = As(app, AliceKey);
        var bob = As(app, BobKey);
        byte[] data = UploadClient.RandomBytes(100, 22);
        string location = await alice.CreateUploadAsync(data.Length);
        using (var patch = await alice.PatchAsync(location, 0, data[..50]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);

        using (var head = await bob.HeadAsync(location))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        using (var patch = await bob.PatchAsync(location, 50, data[50..]))
        {
            Assert.Equal(HttpStatusCode.NotFound, patch.StatusCode);
            await ResumableContractTests.AssertProblemAsync(patch, "upload_not_found");
        }

        using (var delete = await bob.DeleteAsync(location))
            Assert.Equal(HttpStatusCode.NotFound, delete.StatusCode);
        using (var status = await bob.Http.GetAsync("/uploads/" + TusClient.IdOf(location)))
            Assert.Equal(HttpStatusCode.NotFound, status.StatusCode);

        string part = await alice.CreateUploadAsync(10, concat: "partial");
        using (var patch = await alice.PatchAsync(part, 0, new byte[10]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        using (var final = await bob.CreateAsync(null, concat: "final;" + part))
        {
            Assert.Equal(HttpStatusCode.BadRequest, final.StatusCode);
            await ResumableContractTests.AssertProblemAsync(final, "invalid_concatenation");
        }

        // Alice's upload is untouched and hers to finish.
        Assert.Equal(50, await alice.OffsetAsync(location));
        using (var patch = await alice.PatchAsync(location, 50, data[50..]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        Assert.Equal(data, await alice.Http.GetByteArrayAsync("/files/" + TusClient.IdOf(location)));
        await new UploadClient(alice.Http).WaitForCompleteAsync(TusClient.IdOf(part));
    }

    [Fact]
    public async Task Authorization_Callback_Refusing_The_Start_Is_403_And_Refusing_The_File_Fails_It()
    {
        var authorizer = new NameAuthorizer();
        using var app = new ChunkUploadApplication(_dir.StorageRoot, null, services => services.AddSingleton<IUploadAuthorizer>(authorizer));
        var tus = TusClient.Of(app);
        using (var refused = await tus.CreateAsync(10, TusClient.Metadata(("filename", "setup.exe"))))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            await ResumableContractTests.AssertProblemAsync(refused, "upload_refused");
        }

        Assert.Empty(Directory.EnumerateDirectories(Path.Combine(_dir.StorageRoot, "sessions")));

        string location = await tus.CreateUploadAsync(10, TusClient.Metadata(("filename", "reject-at-end.bin")));
        using (var patch = await tus.PatchAsync(location, 0, new byte[10]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        var uploads = new UploadClient(tus.Http);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await uploads.StatusAsync(TusClient.IdOf(location))).GetProperty("state").GetString() != "failed")
        {
            Assert.True(DateTime.UtcNow < deadline, "The refused file did not fail.");
            await Task.Delay(10);
        }

        using var more = await tus.PatchAsync(location, 10, [1]);
        Assert.Equal(HttpStatusCode.Conflict, more.StatusCode);
        await ResumableContractTests.AssertProblemAsync(more, "upload_failed");
    }

    [Fact]
    public async Task Cors_Preflight_Allows_The_Tus_Request_Headers_And_Responses_Expose_The_Tus_Headers()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?>
        {
            ["Cors:AllowedOrigins:0"] = "https://app.example",
            ["Auth:Enabled"] = "true",
            ["Auth:ApiKeys:0:Key"] = AliceKey,
            ["Auth:ApiKeys:0:Owner"] = "alice",
        });
        var alice = As(app, AliceKey);
        string location = await alice.CreateUploadAsync(10);
        string[] requestHeaders = ["tus-resumable", "upload-length", "upload-offset", "upload-metadata", "upload-defer-length", "upload-concat", "upload-checksum", "content-type", "x-http-method-override", "x-api-key"];

        foreach (var (url, method) in new[] { (location, "PATCH"), ("/tus", "POST"), (location, "HEAD"), (location, "DELETE") })
        {
            var preflight = new HttpRequestMessage(HttpMethod.Options, url);
            preflight.Headers.Add("Origin", "https://app.example");
            preflight.Headers.Add("Access-Control-Request-Method", method);
            preflight.Headers.Add("Access-Control-Request-Headers", string.Join(',', requestHeaders));
            using var response = await app.CreateClient().SendAsync(preflight); // no credentials, as a browser sends it
            Assert.True(response.StatusCode is HttpStatusCode.NoContent or HttpStatusCode.OK, $"{method} {url}: {(int)response.StatusCode}");
            Assert.Equal("https://app.example", TusClient.Header(response, "Access-Control-Allow-Origin"));
            Assert.Contains(method, TusClient.Header(response, "Access-Control-Allow-Methods")!.Split(',').Select(m => m.Trim()));
            var allowed = TusClient.Header(response, "Access-Control-Allow-Headers")!.Split(',').Select(h => h.Trim().ToLowerInvariant()).ToList();
            foreach (var header in requestHeaders)
                Assert.Contains(header, allowed);
        }

        var request = new HttpRequestMessage(HttpMethod.Patch, location) { Content = TusClient.Octets(new byte[10]) };
        request.Headers.Add("Origin", "https://app.example");
        request.Headers.Add("Tus-Resumable", "1.0.0");
        request.Headers.Add("Upload-Offset", "0");
        using var patch = await alice.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        Assert.Equal("https://app.example", TusClient.Header(patch, "Access-Control-Allow-Origin"));
        var exposed = TusClient.Header(patch, "Access-Control-Expose-Headers")!.Split(',').Select(h => h.Trim()).ToList();
        foreach (var header in new[] { "Upload-Offset", "Location", "Upload-Expires", "Upload-Length", "Upload-Metadata", "Upload-Defer-Length", "Upload-Concat", "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm" })
            Assert.Contains(header, exposed, StringComparer.OrdinalIgnoreCase);

        var other = new HttpRequestMessage(HttpMethod.Options, location);
        other.Headers.Add("Origin", "https://evil.example");
        other.Headers.Add("Access-Control-Request-Method", "PATCH");
        using var refused = await app.CreateClient().SendAsync(other);
        Assert.Null(TusClient.Header(refused, "Access-Control-Allow-Origin"));
    }

    private sealed class NameAuthorizer : IUploadAuthorizer
    {
        public Task AuthorizeAsync(UploadAuthorization request, CancellationToken cancellationToken)
        {
            if (request.Event == UploadEvent.Start && request.FileName.EndsWith(".exe", StringComparison.Ordinal))
                throw new UploadException(UploadErrors.UploadRefused, "Executables are not accepted.");
            if (request.Event == UploadEvent.Complete && request.FileName.StartsWith("reject", StringComparison.Ordinal))
                throw new UploadException(UploadErrors.UploadRefused, "The content was rejected.");
            return Task.CompletedTask;
        }
    }
}
