using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Hooks;
using ChunkUpload.Server.Security;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Tests;

/// <summary>Access control: API keys, signed tokens, per-principal sessions, the authorization callback, quotas and rate limits.</summary>
public sealed class SecurityTests : IDisposable
{
    private const string Secret = "a-signing-secret-of-at-least-32-characters!";
    private const string AliceKey = "alice-key-0123456789abcdef";
    private const string BobKey = "bob-key-0123456789abcdef";
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static Dictionary<string, string?> AuthOn() => new()
    {
        ["Auth:Enabled"] = "true",
        ["Auth:TokenSigningKey"] = Secret,
        ["Auth:ApiKeys:0:Key"] = AliceKey,
        ["Auth:ApiKeys:0:Owner"] = "alice",
        ["Auth:ApiKeys:1:Key"] = BobKey,
        ["Auth:ApiKeys:1:Owner"] = "bob",
    };

    private static UploadClient As(ChunkUploadApplication app, string? apiKey = null, string? bearer = null)
    {
        var http = app.CreateClient();
        if (apiKey is not null)
            http.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        if (bearer is not null)
            http.DefaultRequestHeaders.Authorization = new("Bearer", bearer);
        return new UploadClient(http);
    }

    private static string Token(string subject, TimeSpan lifetime, long? max = null) =>
        UploadTokens.Create(Secret, new UploadTokenClaims(subject, DateTimeOffset.UtcNow.Add(lifetime).ToUnixTimeSeconds(), max));

    [Fact]
    public async Task With_Auth_On_Requests_Without_Valid_Credentials_Are_401_Problems()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, AuthOn());
        var file = TestFile.Random("auth-1", 2000, 1000);
        foreach (var client in new[] { As(app), As(app, apiKey: "wrong-key-0123456789"), As(app, bearer: "v1.garbage.sig"), As(app, bearer: Token("alice", TimeSpan.FromMinutes(-1))) })
        {
            using var test = await client.TestChunkAsync(file, 1);
            Assert.Equal(HttpStatusCode.Unauthorized, test.StatusCode);
            await ResumableContractTests.AssertProblemAsync(test, "unauthenticated");
            using var post = await client.PostChunkAsync(file, 1);
            Assert.Equal(HttpStatusCode.Unauthorized, post.StatusCode);
            using var status = await client.Http.GetAsync("/uploads/auth-1");
            Assert.Equal(HttpStatusCode.Unauthorized, status.StatusCode);
            using var download = await client.Http.GetAsync("/files/auth-1");
            Assert.Equal(HttpStatusCode.Unauthorized, download.StatusCode);
        }

        // Health and client configuration stay open; nothing was stored.
        using var health = await As(app).Http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(_dir.StorageRoot, "sessions")));
    }

    [Fact]
    public async Task Tampered_Tokens_Are_Rejected_And_Valid_Ones_Verify()
    {
        string token = Token("carol", TimeSpan.FromMinutes(5), max: 1000);
        var claims = UploadTokens.Verify(Secret, token, DateTimeOffset.UtcNow);
        Assert.Equal("carol", claims!.Subject);
        Assert.Equal(1000, claims.MaxFileSize);

        Assert.Null(UploadTokens.Verify("another-secret-of-at-least-32-characters", token, DateTimeOffset.UtcNow));
        Assert.Null(UploadTokens.Verify(Secret, token, DateTimeOffset.UtcNow.AddMinutes(6)));
        string forged = UploadTokens.Create(Secret, new UploadTokenClaims("carol", 1, 1000)).Split('.')[1];
        Assert.Null(UploadTokens.Verify(Secret, "v1." + forged + "." + token.Split('.')[2], DateTimeOffset.UtcNow));
        foreach (var junk in new[] { "", "v1.", "v1..", "v1.!!.!!", "v2.a.b", new string('x', 10_000) })
            Assert.Null(UploadTokens.Verify(Secret, junk, DateTimeOffset.UtcNow));
    }

    [Fact]
    public async Task Token_Limits_The_File_Size_And_Query_Token_Works_For_Download_Links()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, AuthOn());
        string token = Token("dave", TimeSpan.FromMinutes(5), max: 3000);
        var client = As(app, bearer: token);

        var big = TestFile.Random("too-big", 5000, 1000);
        using (var refused = await client.PostChunkAsync(big, 1))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            await ResumableContractTests.AssertProblemAsync(refused, "quota_exceeded");
        }

        var file = TestFile.Random("fits", 3000, 1000);
        await client.UploadAllAsync(file);
        await client.WaitForCompleteAsync(file.Identifier);
        var link = await app.CreateClient().GetByteArrayAsync("/files/fits?access_token=" + Uri.EscapeDataString(token));
        Assert.Equal(file.Data, link);
    }

    [Fact]
    public async Task A_Token_In_The_Query_String_Is_Accepted_Only_For_Downloads()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, AuthOn());
        string token = Uri.EscapeDataString(Token("erin", TimeSpan.FromMinutes(5)));
        var http = app.CreateClient();
        var file = TestFile.Random("query-token", 1000, 1000);
        using var content = new ByteArrayContent(file.Data);
        using (var upload = await http.PostAsync("/upload?resumableChunkNumber=1&resumableChunkSize=1000&resumableTotalSize=1000&resumableIdentifier=query-token&resumableFilename=f.bin&resumableRelativePath=f.bin&access_token=" + token, content))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, upload.StatusCode);
            await ResumableContractTests.AssertProblemAsync(upload, "unauthenticated");
        }

        using (var status = await http.GetAsync("/uploads/query-token?access_token=" + token))
            Assert.Equal(HttpStatusCode.Unauthorized, status.StatusCode);
        using (var delete = await http.DeleteAsync("/uploads/query-token?access_token=" + token))
            Assert.Equal(HttpStatusCode.Unauthorized, delete.StatusCode);
        using (var download = await http.GetAsync("/files/query-token?access_token=" + token))
            Assert.Equal(HttpStatusCode.NotFound, download.StatusCode); // authenticated; there is no such file
    }

    [Fact]
    public void Tokens_Allow_A_Little_Clock_Skew_And_No_Lifetime_Beyond_The_Cap()
    {
        var now = DateTimeOffset.UtcNow;
        UploadTokenClaims? VerifyExpiring(TimeSpan from) =>
            UploadTokens.Verify(Secret, UploadTokens.Create(Secret, new UploadTokenClaims("frank", now.Add(from).ToUnixTimeSeconds())), now, TimeSpan.FromHours(1));

        Assert.NotNull(VerifyExpiring(TimeSpan.FromSeconds(-10))); // the issuer's clock is a little ahead
        Assert.Null(VerifyExpiring(TimeSpan.FromSeconds(-45)));
        Assert.NotNull(VerifyExpiring(TimeSpan.FromMinutes(59)));
        Assert.Null(VerifyExpiring(TimeSpan.FromHours(2))); // longer than Auth:MaxTokenLifetime
    }

    [Fact]
    public async Task A_Token_Living_Longer_Than_The_Configured_Cap_Is_Refused()
    {
        var settings = AuthOn();
        settings["Auth:MaxTokenLifetime"] = "00:10:00";
        using var app = new ChunkUploadApplication(_dir.StorageRoot, settings);
        var file = TestFile.Random("long-lived", 1000, 1000);
        using (var refused = await As(app, bearer: Token("gina", TimeSpan.FromDays(30))).PostChunkAsync(file, 1))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            await ResumableContractTests.AssertProblemAsync(refused, "unauthenticated");
        }

        await As(app, bearer: Token("gina", TimeSpan.FromMinutes(9))).UploadAllAsync(file);
    }

    [Fact]
    public async Task Sessions_Belong_To_Their_Principal_Even_With_The_Same_Identifier()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, AuthOn());
        var alice = As(app, apiKey: AliceKey);
        var bob = As(app, bearer: Token("bob", TimeSpan.FromMinutes(5)));
        var aliceFile = TestFile.Random("same-id", 3000, 1000, seed: 1);
        var bobFile = TestFile.Random("same-id", 3000, 1000, seed: 2);

        await alice.UploadAllAsync(aliceFile);
        await alice.WaitForCompleteAsync("same-id");

        // Bob sees nothing of Alice's upload and cannot touch it.
        using (var test = await bob.TestChunkAsync(bobFile, 1))
            Assert.Equal(HttpStatusCode.NoContent, test.StatusCode);
        using (var status = await bob.Http.GetAsync("/uploads/same-id"))
            Assert.Equal(HttpStatusCode.NotFound, status.StatusCode);
        using (var download = await bob.Http.GetAsync("/files/same-id"))
            Assert.Equal(HttpStatusCode.NotFound, download.StatusCode);
        using (var delete = await bob.Http.DeleteAsync("/uploads/same-id"))
            Assert.Equal(HttpStatusCode.NotFound, delete.StatusCode);

        // His own upload under the same identifier is independent (a token's subject and an API key's owner name
        // the same principal: Bob's key sees the upload his token made).
        await bob.UploadAllAsync(bobFile);
        await bob.WaitForCompleteAsync("same-id");
        Assert.Equal(bobFile.Data, await As(app, apiKey: BobKey).Http.GetByteArrayAsync("/files/same-id"));
        Assert.Equal(aliceFile.Data, await alice.Http.GetByteArrayAsync("/files/same-id"));
    }

    [Fact]
    public async Task Authorization_Callback_Refusals_Are_403_At_Start_And_Fail_The_Upload_At_Completion()
    {
        var authorizer = new RecordingAuthorizer();
        using var app = new ChunkUploadApplication(_dir.StorageRoot, null, services => services.AddSingleton<IUploadAuthorizer>(authorizer));
        var client = new UploadClient(app.CreateClient());

        var refused = TestFile.Random("refused-start", 2000, 1000, name: "forbidden.exe");
        using (var post = await client.PostChunkAsync(refused, 1))
        {
            Assert.Equal(HttpStatusCode.Forbidden, post.StatusCode);
            await ResumableContractTests.AssertProblemAsync(post, "upload_refused");
        }

        var allowed = TestFile.Random("allowed", 2000, 1000);
        await client.UploadAllAsync(allowed);
        await client.WaitForCompleteAsync("allowed");

        var rejectedAtEnd = TestFile.Random("refused-end", 2000, 1000, name: "reject-at-end.bin");
        await client.UploadAllAsync(rejectedAtEnd);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string state;
        do
        {
            state = (await client.StatusAsync("refused-end")).GetProperty("state").GetString()!;
            await Task.Delay(10);
        }
        while (state != "failed" && DateTime.UtcNow < deadline);
        Assert.Equal("failed", state);

        Assert.Contains(("Start", "allowed"), authorizer.Calls);
        Assert.Contains(("Complete", "allowed"), authorizer.Calls);
        Assert.Contains(("Complete", "refused-end"), authorizer.Calls);
    }

    [Fact]
    public async Task Http_Callback_Authorizer_Maps_Answers_To_Allow_Refuse_Or_Retry()
    {
        var options = Options.Create(new AuthOptions { AuthorizationUrl = new Uri("http://app.test/authorize"), AuthorizationTimeoutSeconds = 1 });
        var request = new UploadAuthorization(UploadEvent.Start, "alice", "id-1", "f.bin", 10, null);

        var ok = new StubHandler(_ => new HttpResponseMessage(HttpStatusCode.NoContent));
        await new HttpCallbackAuthorizer(new HttpClient(ok), options).AuthorizeAsync(request, CancellationToken.None);
        var sent = JsonDocument.Parse(ok.LastBody!).RootElement;
        Assert.Equal("start", sent.GetProperty("event").GetString());
        Assert.Equal("alice", sent.GetProperty("owner").GetString());

        var refuse = new StubHandler(_ => new HttpResponseMessage(HttpStatusCode.Forbidden) { Content = JsonContent.Create(new { reason = "quota used up" }) });
        var refused = await Assert.ThrowsAsync<UploadException>(() => new HttpCallbackAuthorizer(new HttpClient(refuse), options).AuthorizeAsync(request, CancellationToken.None));
        Assert.Equal(403, refused.Error.Status);
        Assert.Contains("quota used up", refused.Message, StringComparison.Ordinal);

        var broken = new StubHandler(_ => new HttpResponseMessage(HttpStatusCode.InternalServerError));
        var unavailable = await Assert.ThrowsAsync<UploadException>(() => new HttpCallbackAuthorizer(new HttpClient(broken), options).AuthorizeAsync(request, CancellationToken.None));
        Assert.Equal(503, unavailable.Error.Status);

        var silent = new StubHandler(_ => throw new TaskCanceledException("timed out"));
        var timedOut = await Assert.ThrowsAsync<UploadException>(() => new HttpCallbackAuthorizer(new HttpClient(silent), options).AuthorizeAsync(request, CancellationToken.None));
        Assert.Equal("authorization_unavailable", timedOut.Error.Code);
    }

    [Fact]
    public async Task Unfinished_Uploads_Per_Client_Are_Limited_With_429()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?> { ["Upload:MaxActiveUploadsPerClient"] = "2" });
        var client = new UploadClient(app.CreateClient());
        var files = Enumerable.Range(1, 3).Select(i => TestFile.Random($"quota-{i}", 2000, 1000, seed: i)).ToList();
        await client.UploadAllAsync(files[0], order: [1]);
        await client.UploadAllAsync(files[1], order: [1]);
        using (var third = await client.PostChunkAsync(files[2], 1))
        {
            Assert.Equal((HttpStatusCode)429, third.StatusCode);
            Assert.NotNull(third.Headers.RetryAfter);
            await ResumableContractTests.AssertProblemAsync(third, "too_many_uploads");
        }

        await client.UploadAllAsync(files[0], order: [2]);
        await client.WaitForCompleteAsync(files[0].Identifier);
        await client.UploadAllAsync(files[2]);
    }

    [Fact]
    public async Task Request_Rate_Is_Limited_With_429_And_Retry_After()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?>
        {
            ["RateLimit:BurstLimit"] = "5",
            ["RateLimit:TokensPerPeriod"] = "1",
            ["RateLimit:Period"] = "01:00:00",
        });
        var http = app.CreateClient();
        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? limited = null;
        for (int i = 0; i < 8; i++)
        {
            var response = await http.GetAsync("/healthz");
            statuses.Add(response.StatusCode);
            if ((int)response.StatusCode == 429)
                limited ??= response;
        }

        Assert.Equal(5, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.NotNull(limited);
        Assert.True(limited.Headers.RetryAfter!.Delta > TimeSpan.Zero);
        await ResumableContractTests.AssertProblemAsync(limited, "rate_limited");
    }

    [Fact]
    public async Task Completion_Deferred_By_A_Transient_Fault_Finishes_Once_It_Clears()
    {
        // The same path a full disk or an unreachable application takes at completion: keep everything, retry later.
        var flaky = new FlakyAuthorizer(failures: 2);
        using var app = new ChunkUploadApplication(_dir.StorageRoot, null, services => services.AddSingleton<IUploadAuthorizer>(flaky));
        var client = new UploadClient(app.CreateClient());
        var file = TestFile.Random("deferred", 3000, 1000);
        await client.UploadAllAsync(file);
        var status = await client.WaitForCompleteAsync(file.Identifier);
        Assert.Equal(file.Sha256, status.GetProperty("sha256").GetString());
        Assert.Equal(3, flaky.CompletionCalls);
    }

    [Fact]
    public async Task Cors_Credentials_Are_Allowed_Only_When_Configured()
    {
        foreach (bool credentials in new[] { false, true })
        {
            using var app = new ChunkUploadApplication(_dir.StorageRoot + credentials, new Dictionary<string, string?>
            {
                ["Cors:AllowedOrigins:0"] = "https://app.example",
                ["Cors:AllowCredentials"] = credentials.ToString(),
            });
            var preflight = new HttpRequestMessage(HttpMethod.Options, "/upload");
            preflight.Headers.Add("Origin", "https://app.example");
            preflight.Headers.Add("Access-Control-Request-Method", "POST");
            using var response = await app.CreateClient().SendAsync(preflight);
            Assert.Equal("https://app.example", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
            Assert.Equal(credentials, response.Headers.TryGetValues("Access-Control-Allow-Credentials", out var allow) && allow.Single() == "true");
        }
    }

    private sealed class FlakyAuthorizer(int failures) : IUploadAuthorizer
    {
        private int _completionCalls;

        public int CompletionCalls => _completionCalls;

        public Task AuthorizeAsync(UploadAuthorization request, CancellationToken cancellationToken)
        {
            if (request.Event == UploadEvent.Complete && Interlocked.Increment(ref _completionCalls) <= failures)
                throw new UploadException(UploadErrors.AuthorizationUnavailable, "Not reachable right now.");
            return Task.CompletedTask;
        }
    }

    private sealed class RecordingAuthorizer : IUploadAuthorizer
    {
        public List<(string Event, string Identifier)> Calls { get; } = [];

        public Task AuthorizeAsync(UploadAuthorization request, CancellationToken cancellationToken)
        {
            lock (Calls)
                Calls.Add((request.Event.ToString(), request.Identifier));
            if (request.Event == UploadEvent.Start && request.FileName.EndsWith(".exe", StringComparison.Ordinal))
                throw new UploadException(UploadErrors.UploadRefused, "Executables are not accepted.");
            if (request.Event == UploadEvent.Complete && request.FileName.StartsWith("reject", StringComparison.Ordinal))
                throw new UploadException(UploadErrors.UploadRefused, "The content was rejected.");
            return Task.CompletedTask;
        }
    }

    private sealed class StubHandler(Func<HttpRequestMessage, HttpResponseMessage> respond) : HttpMessageHandler
    {
        public string? LastBody { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            LastBody = request.Content is null ? null : Encoding.UTF8.GetString(await request.Content.ReadAsByteArrayAsync(cancellationToken));
            return respond(request);
        }
    }
}
