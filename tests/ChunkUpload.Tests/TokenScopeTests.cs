using System.Buffers.Text;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ChunkUpload.Server.Security;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Tests;

/// <summary>
/// Upload tokens' scope in every protocol: which operations (<c>ops</c>) and which upload (<c>upl</c>) a token allows,
/// and the grace in which an expired token still finishes an upload it began (Auth:ExpiredTokenGrace).
/// </summary>
public sealed class TokenScopeTests : IDisposable
{
    private const string Secret = "a-signing-secret-of-at-least-32-characters!";
    private const string AliceKey = "alice-key-0123456789abcdef";
    private static readonly DateTimeOffset Start = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly TempDirectory _dir = new();
    private readonly ManualTimeProvider _clock = new(Start);
    private readonly List<ChunkUploadApplication> _apps = [];

    public void Dispose()
    {
        foreach (var app in _apps)
            app.Dispose();
        _dir.Dispose();
    }

    public static TheoryData<Wire> Wires => WireDriver.All;

    private ChunkUploadApplication StartServer(Dictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Auth:Enabled"] = "true",
            ["Auth:TokenSigningKey"] = Secret,
            ["Auth:ApiKeys:0:Key"] = AliceKey,
            ["Auth:ApiKeys:0:Owner"] = "alice",
        };
        foreach (var (key, value) in extra ?? [])
            settings[key] = value;
        var app = new ChunkUploadApplication(Path.Combine(_dir.StorageRoot, _apps.Count.ToString(System.Globalization.CultureInfo.InvariantCulture)), settings,
            services => services.AddSingleton<TimeProvider>(_clock));
        _apps.Add(app);
        return app;
    }

    private static HttpClient As(ChunkUploadApplication app, string? bearer = null, string? apiKey = null)
    {
        var http = app.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        if (bearer is not null)
            http.DefaultRequestHeaders.Authorization = new("Bearer", bearer);
        if (apiKey is not null)
            http.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        return http;
    }

    // Made as an issuer in another language would, from the README's description of the format.
    private string Token(string subject, TimeSpan lifetime, string[]? ops = null, string? upload = null)
    {
        var claims = new Dictionary<string, object> { ["sub"] = subject, ["exp"] = (_clock.GetUtcNow() + lifetime).ToUnixTimeSeconds() };
        if (ops is not null)
            claims["ops"] = ops;
        if (upload is not null)
            claims["upl"] = upload;
        string payload = "v1." + Base64Url.EncodeToString(JsonSerializer.SerializeToUtf8Bytes(claims));
        return payload + "." + Base64Url.EncodeToString(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), Encoding.UTF8.GetBytes(payload)));
    }

    private static byte[] Data(Wire wire) => UploadClient.RandomBytes(2000, (int)wire + 1);

    private static async Task<long> StoredBytesAsync(HttpClient http, string id)
    {
        using var response = await http.GetAsync("/uploads/" + Uri.EscapeDataString(id));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("storedBytes").GetInt64();
    }

    private static async Task<JsonElement> WaitForCompleteAsync(HttpClient http, string id)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            using var response = await http.GetAsync("/uploads/" + Uri.EscapeDataString(id));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var status = await response.Content.ReadFromJsonAsync<JsonElement>();
            if (status.GetProperty("state").GetString() == "complete")
                return status;
            Assert.True(DateTime.UtcNow < deadline, $"{id} did not complete: {status}");
            await Task.Delay(10);
        }
    }

    private static async Task StartHalfAsync(WireDriver driver, HttpClient http, string id, byte[] data, Action<string>? named = null)
    {
        var (response, actual) = await driver.StartAsync(http, id, data);
        using (response)
            await driver.AssertAcceptedAsync(response, "the first half");
        named?.Invoke(actual);
    }

    private static async Task AssertRefusedAsync(Task<HttpResponseMessage> sending, HttpStatusCode status, string code)
    {
        using var response = await sending;
        if (response.RequestMessage?.Method == HttpMethod.Head)
            Assert.Equal(status, response.StatusCode); // no body to carry the code (tus and IETF offset queries)
        else
            await Refusals.AssertRefusedAsync(response, status, code);
        if (status == HttpStatusCode.Unauthorized)
            Assert.NotEmpty(response.Headers.WwwAuthenticate);
    }

    // ------------------------------------------------------------------ upl: one upload

    [Theory]
    [MemberData(nameof(Wires))]
    public async Task A_Token_For_One_Upload_Cannot_Write_Read_Or_Delete_Another_Of_Its_Subject(Wire wire)
    {
        var driver = WireDriver.For(wire);
        var app = StartServer();
        var alice = As(app, apiKey: AliceKey);
        var data = Data(wire);
        string other = "other-" + wire;
        await StartHalfAsync(driver, alice, "other-" + wire, data, id => other = id);

        // The token names upload "mine-…": under that name it uploads a whole file (tus and the IETF draft create it
        // under that id, since their client does not name uploads)...
        string mine = "mine-" + wire;
        var scoped = As(app, bearer: Token("alice", TimeSpan.FromMinutes(10), upload: mine));
        await StartHalfAsync(driver, scoped, mine, data, id => Assert.Equal(mine, id));
        using (var rest = await driver.ResumeAsync(scoped, mine, data))
            await driver.AssertAcceptedAsync(rest, "the rest");
        await WaitForCompleteAsync(scoped, mine);
        Assert.Equal(data, await scoped.GetByteArrayAsync("/files/" + mine));

        // ...but the other upload of the same subject is out of its reach, whatever the request.
        await AssertRefusedAsync(driver.WriteRestAsync(scoped, other, data), HttpStatusCode.Forbidden, "token_scope");
        await AssertRefusedAsync(driver.StatusAsync(scoped, other, data), HttpStatusCode.Forbidden, "token_scope");
        await AssertRefusedAsync(driver.DeleteAsync(scoped, other), HttpStatusCode.Forbidden, "token_scope");
        await AssertRefusedAsync(scoped.GetAsync("/uploads/" + Uri.EscapeDataString(other)), HttpStatusCode.Forbidden, "token_scope");
        await AssertRefusedAsync(scoped.DeleteAsync("/uploads/" + Uri.EscapeDataString(other)), HttpStatusCode.Forbidden, "token_scope");
        await AssertRefusedAsync(scoped.GetAsync("/files/" + Uri.EscapeDataString(other)), HttpStatusCode.Forbidden, "token_scope");
        await AssertRefusedAsync(scoped.GetAsync("/uploads"), HttpStatusCode.Forbidden, "token_scope");
        var (another, _) = await driver.StartAsync(scoped, "another-" + wire, data); // tus and IETF: a second creation
        using (another)
            await Refusals.AssertRefusedAsync(another, HttpStatusCode.Forbidden, "token_scope");

        Assert.Equal(data.Length / 2, await StoredBytesAsync(alice, other));
    }

    // ------------------------------------------------------------------ ops: which operations

    [Theory]
    [MemberData(nameof(Wires))]
    public async Task A_Token_Without_Upload_Cannot_Upload_And_One_Without_Download_Or_Delete_Cannot_Do_Those(Wire wire)
    {
        var driver = WireDriver.For(wire);
        var app = StartServer();
        var data = Data(wire);
        var readOnly = As(app, bearer: Token("carol", TimeSpan.FromMinutes(10), ops: ["download", "list"]));
        var (refused, _) = await driver.StartAsync(readOnly, "ops-" + wire, data);
        using (refused)
            await Refusals.AssertRefusedAsync(refused, HttpStatusCode.Forbidden, "token_scope");
        using (var listing = await readOnly.GetAsync("/uploads"))
            Assert.Equal(0, (await listing.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("uploads").GetArrayLength());

        var uploadOnly = As(app, bearer: Token("carol", TimeSpan.FromMinutes(10), ops: ["upload"]));
        string id = "ops-" + wire;
        await StartHalfAsync(driver, uploadOnly, id, data, actual => id = actual);
        using (var rest = await driver.ResumeAsync(uploadOnly, id, data))
            await driver.AssertAcceptedAsync(rest, "the rest");
        await WaitForCompleteAsync(uploadOnly, id); // reading an upload's state is part of uploading
        await AssertRefusedAsync(uploadOnly.GetAsync("/files/" + Uri.EscapeDataString(id)), HttpStatusCode.Forbidden, "token_scope");
        await AssertRefusedAsync(driver.DeleteAsync(uploadOnly, id), HttpStatusCode.Forbidden, "token_scope");
        await AssertRefusedAsync(uploadOnly.GetAsync("/uploads"), HttpStatusCode.Forbidden, "token_scope");
        if (wire == Wire.Tus)
        {
            var tus = new TusClient(uploadOnly);
            await AssertRefusedAsync(tus.SendAsync(HttpMethod.Get, "/tus/" + id), HttpStatusCode.Forbidden, "token_scope");
            await AssertRefusedAsync(tus.SendAsync(HttpMethod.Post, "/tus/" + id, headers: [("X-HTTP-Method-Override", "DELETE")]), HttpStatusCode.Forbidden, "token_scope");
        }

        Assert.Equal(data, await readOnly.GetByteArrayAsync("/files/" + Uri.EscapeDataString(id)));
        var deleter = As(app, bearer: Token("carol", TimeSpan.FromMinutes(10), ops: ["delete"]));
        using (var deleted = await driver.DeleteAsync(deleter, id))
            Assert.True(deleted.IsSuccessStatusCode, $"{(int)deleted.StatusCode}: {await deleted.Content.ReadAsStringAsync()}");
        await AssertRefusedAsync(deleter.GetAsync("/files/" + Uri.EscapeDataString(id)), HttpStatusCode.Forbidden, "token_scope");
    }

    [Fact]
    public async Task Every_Route_That_Takes_Credentials_Declares_What_It_Does()
    {
        var app = StartServer();
        _ = app.Services.GetRequiredService<IOptions<AuthOptions>>().Value; // the host is built
        var endpoints = app.Services.GetServices<EndpointDataSource>().SelectMany(s => s.Endpoints).OfType<RouteEndpoint>().ToList();
        var guarded = endpoints.Where(e => e.Metadata.GetMetadata<IAuthorizeData>() is not null).ToList();
        Assert.True(guarded.Count >= 20, $"only {guarded.Count} credentialed routes found");
        var undeclared = guarded.Where(e => e.Metadata.GetMetadata<TokenScope.OperationMetadata>() is null).Select(e => e.DisplayName).ToList();
        Assert.True(undeclared.Count == 0, "Routes without an operation: " + string.Join(", ", undeclared));
    }

    // ------------------------------------------------------------------ a token that expires mid-file

    [Theory]
    [MemberData(nameof(Wires))]
    public async Task A_Token_That_Expires_Mid_File_Finishes_It_But_Starts_Downloads_Deletes_And_Lists_Nothing(Wire wire)
    {
        var driver = WireDriver.For(wire);
        var app = StartServer();
        var data = Data(wire);
        var token = As(app, bearer: Token("dana", TimeSpan.FromMinutes(10)));
        string id = "mid-file-" + wire;
        await StartHalfAsync(driver, token, id, data, actual => id = actual);

        _clock.Advance(TimeSpan.FromMinutes(15)); // past exp and its 30 s of skew, inside the default hour of grace
        using (var rest = await driver.ResumeAsync(token, id, data))
            await driver.AssertAcceptedAsync(rest, "the rest after the token expired");
        var status = await WaitForCompleteAsync(token, id);
        Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());

        // Going on is all it may do.
        var (started, _) = await driver.StartAsync(token, "new-" + wire, data);
        using (started)
        {
            await Refusals.AssertRefusedAsync(started, HttpStatusCode.Unauthorized, "unauthenticated");
            Assert.NotEmpty(started.Headers.WwwAuthenticate);
        }

        await AssertRefusedAsync(token.GetAsync("/files/" + Uri.EscapeDataString(id)), HttpStatusCode.Unauthorized, "unauthenticated");
        await AssertRefusedAsync(driver.DeleteAsync(token, id), HttpStatusCode.Unauthorized, "unauthenticated");
        await AssertRefusedAsync(token.GetAsync("/uploads"), HttpStatusCode.Unauthorized, "unauthenticated");
        await AssertRefusedAsync(token.GetAsync("/uploads/new-" + wire), HttpStatusCode.Unauthorized, "unauthenticated");

        var fresh = As(app, bearer: Token("dana", TimeSpan.FromMinutes(10)));
        Assert.Equal(data, await fresh.GetByteArrayAsync("/files/" + Uri.EscapeDataString(id)));
        using var listing = await fresh.GetAsync("/uploads");
        Assert.Equal(1, (await listing.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("uploads").GetArrayLength());
    }

    [Theory]
    [MemberData(nameof(Wires))]
    public async Task An_Expired_Token_Goes_On_Only_Until_Its_Grace_Ends(Wire wire)
    {
        var driver = WireDriver.For(wire);
        var app = StartServer(new() { ["Auth:ExpiredTokenGrace"] = "00:20:00" });
        var data = Data(wire);
        var token = As(app, bearer: Token("erin", TimeSpan.FromMinutes(10)));
        string id = "grace-" + wire;
        await StartHalfAsync(driver, token, id, data, actual => id = actual);

        _clock.Advance(TimeSpan.FromMinutes(30)); // 10 min + 30 s skew + 20 min grace: 30 s left
        using (var asked = await driver.StatusAsync(token, id, data))
            await driver.AssertAcceptedAsync(asked, "a status query in the grace");
        _clock.Advance(TimeSpan.FromSeconds(31));
        using (var late = await driver.WriteRestAsync(token, id, data))
        {
            await Refusals.AssertRefusedAsync(late, HttpStatusCode.Unauthorized, "unauthenticated");
            Assert.Contains("has expired", await late.Content.ReadAsStringAsync(), StringComparison.Ordinal); // why, not only that
        }

        await AssertRefusedAsync(driver.StatusAsync(token, id, data), HttpStatusCode.Unauthorized, "unauthenticated");
        Assert.Equal(data.Length / 2, await StoredBytesAsync(As(app, bearer: Token("erin", TimeSpan.FromMinutes(1))), id));
    }

    [Fact]
    public async Task An_Expired_Token_Finishes_Its_Own_Upload_But_Not_One_A_Newer_Token_Started()
    {
        var app = StartServer();
        var driver = WireDriver.For(Wire.Resumable);
        var data = Data(Wire.Resumable);
        var old = As(app, bearer: Token("fay", TimeSpan.FromMinutes(10)));
        await StartHalfAsync(driver, old, "older", data);
        _clock.Advance(TimeSpan.FromMinutes(11));
        var current = As(app, bearer: Token("fay", TimeSpan.FromMinutes(10)));
        await StartHalfAsync(driver, current, "newer", data);

        using (var rest = await driver.ResumeAsync(old, "older", data))
            await driver.AssertAcceptedAsync(rest, "the rest of the expired token's own upload");
        await AssertRefusedAsync(driver.WriteRestAsync(old, "newer", data), HttpStatusCode.Unauthorized, "unauthenticated");
        await AssertRefusedAsync(driver.StatusAsync(old, "newer", data), HttpStatusCode.Unauthorized, "unauthenticated");
        Assert.Equal(data.Length / 2, await StoredBytesAsync(current, "newer"));
    }

    [Fact]
    public async Task The_Grace_Is_Validated_At_Start_And_Zero_Turns_It_Off()
    {
        foreach (string invalid in new[] { "-00:00:01", "8.00:00:00" })
        {
            var bad = StartServer(new() { ["Auth:ExpiredTokenGrace"] = invalid });
            var error = Record.Exception(() => bad.CreateClient());
            Assert.Contains("Auth:ExpiredTokenGrace", error?.ToString() ?? "the server started", StringComparison.Ordinal);
        }

        var app = StartServer(new() { ["Auth:ExpiredTokenGrace"] = "00:00:00" });
        var driver = WireDriver.For(Wire.Resumable);
        var data = Data(Wire.Resumable);
        var token = As(app, bearer: Token("gus", TimeSpan.FromMinutes(10)));
        await StartHalfAsync(driver, token, "no-grace", data);
        _clock.Advance(TimeSpan.FromMinutes(11));
        await AssertRefusedAsync(driver.WriteRestAsync(token, "no-grace", data), HttpStatusCode.Unauthorized, "unauthenticated");
    }

    // ------------------------------------------------------------------ the token format

    [Fact]
    public void Tokens_Carry_Operations_And_An_Upload_And_Refuse_Unknown_Operations_None_Or_An_Empty_Upload()
    {
        var now = Start;
        long exp = (now + TimeSpan.FromMinutes(5)).ToUnixTimeSeconds();
        var claims = UploadTokens.Verify(Secret, UploadTokens.Create(Secret, new UploadTokenClaims("hal", exp, 10, ["upload", "list"], "file-1")), now);
        Assert.Equal(["upload", "list"], claims!.Operations);
        Assert.Equal("file-1", claims.UploadId);

        string json = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(
            UploadTokens.Create(Secret, new UploadTokenClaims("hal", exp)).Split('.')[1]));
        Assert.Equal($"{{\"sub\":\"hal\",\"exp\":{exp}}}", json); // an unscoped token is what it always was

        Assert.Null(UploadTokens.Verify(Secret, UploadTokens.Create(Secret, new UploadTokenClaims("hal", exp, null, ["upload", "admin"])), now));
        Assert.Null(UploadTokens.Verify(Secret, UploadTokens.Create(Secret, new UploadTokenClaims("hal", exp, null, [])), now));
        Assert.Null(UploadTokens.Verify(Secret, UploadTokens.Create(Secret, new UploadTokenClaims("hal", exp, null, null, "")), now));
    }

    [Fact]
    public void An_Expired_Token_Verifies_Only_In_Its_Grace_And_Says_When_It_Expired()
    {
        long exp = Start.ToUnixTimeSeconds();
        string token = UploadTokens.Create(Secret, new UploadTokenClaims("ida", exp));
        var grace = TimeSpan.FromHours(1);

        Assert.Null(UploadTokens.Verify(Secret, token, Start + TimeSpan.FromSeconds(29), TimeSpan.FromHours(1), grace)!.ExpiredAt); // the skew
        var expired = UploadTokens.Verify(Secret, token, Start + TimeSpan.FromMinutes(30), TimeSpan.FromHours(1), grace);
        Assert.Equal(Start + UploadTokens.ClockSkew, expired!.ExpiredAt);
        Assert.Equal("ida", expired.Claims.Subject);
        Assert.NotNull(UploadTokens.Verify(Secret, token, Start + UploadTokens.ClockSkew + grace - TimeSpan.FromSeconds(1), TimeSpan.FromHours(1), grace));
        Assert.Null(UploadTokens.Verify(Secret, token, Start + UploadTokens.ClockSkew + grace, TimeSpan.FromHours(1), grace));
        Assert.Null(UploadTokens.Verify(Secret, token, Start + TimeSpan.FromMinutes(30), TimeSpan.FromHours(1), TimeSpan.Zero));
        Assert.Null(UploadTokens.Verify(Secret, token, Start + TimeSpan.FromMinutes(30))); // the plain check knows no grace
    }
}
