using System.Net;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>
/// Who an anonymous request counts against: the address a configured reverse proxy forwards (X-Forwarded-For), never
/// one an unknown peer claims; IPv6 clients by their /64 network, not by each of its addresses.
/// </summary>
public sealed class ForwardedClientTests : IDisposable
{
    private const string Proxy = "10.0.0.1";
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    // Two requests per client, then 429 (no refill within the test).
    private ChunkUploadApplication Start(Dictionary<string, string?>? extra = null, TimeProvider? clock = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["RateLimit:BurstLimit"] = "2",
            ["RateLimit:TokensPerPeriod"] = "1",
            ["RateLimit:Period"] = "01:00:00",
            ["ForwardedHeaders:KnownProxies:0"] = Proxy,
        };
        foreach (var (key, value) in extra ?? [])
            settings[key] = value;
        return new ChunkUploadApplication(_dir.StorageRoot, settings, services =>
        {
            services.AddSingleton<IStartupFilter, TestPeerAddress>();
            if (clock is not null)
                services.AddSingleton(clock);
        });
    }

    private static async Task<HttpStatusCode> GetAsync(HttpClient http, string peer, string? forwardedFor = null, string path = "/config")
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add(TestPeerAddress.Header, peer);
        if (forwardedFor is not null)
            request.Headers.Add("X-Forwarded-For", forwardedFor);
        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }

    [Fact]
    public async Task Returns_429_Per_Forwarded_Client_Behind_A_Trusted_Proxy()
    {
        using var app = Start();
        var http = app.CreateClient();
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, Proxy, "198.51.100.1"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, Proxy, "198.51.100.1"));
        Assert.Equal((HttpStatusCode)429, await GetAsync(http, Proxy, "198.51.100.1"));

        // Another client behind the same proxy has a bucket of its own.
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, Proxy, "198.51.100.2"));
        // A chain of proxies: the client is the address the trusted proxy received the request from.
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, Proxy, "203.0.113.7, 198.51.100.3"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, Proxy, "203.0.113.8, 198.51.100.3"));
        Assert.Equal((HttpStatusCode)429, await GetAsync(http, Proxy, "203.0.113.9, 198.51.100.3"));
    }

    [Fact]
    public async Task Forwarded_Addresses_From_Peers_That_Are_Not_Trusted_Proxies_Are_Ignored()
    {
        using var app = Start();
        var http = app.CreateClient();
        // A client that claims to be many clients is still one.
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "192.0.2.9", "198.51.100.10"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "192.0.2.9", "198.51.100.11"));
        Assert.Equal((HttpStatusCode)429, await GetAsync(http, "192.0.2.9", "198.51.100.12"));
        // Loopback is not trusted unless configured (ASP.NET Core's defaults would trust it).
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "127.0.0.1", "198.51.100.20"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "127.0.0.1", "198.51.100.21"));
        Assert.Equal((HttpStatusCode)429, await GetAsync(http, "127.0.0.1", "198.51.100.22"));
    }

    [Fact]
    public async Task IPv6_Clients_Are_Counted_By_Their_64_Bit_Network()
    {
        using var app = Start();
        var http = app.CreateClient();
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "2001:db8:1:2::1"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "2001:db8:1:2:aaaa:bbbb:cccc:dddd"));
        Assert.Equal((HttpStatusCode)429, await GetAsync(http, "2001:db8:1:2::ffff")); // same /64: one client
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "2001:db8:1:3::1")); // the next /64 is another

        // Forwarded IPv6 clients too; an IPv4 client seen as IPv4-mapped IPv6 is the IPv4 client.
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, Proxy, "2001:db8:9:9::1"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, Proxy, "2001:db8:9:9::2"));
        Assert.Equal((HttpStatusCode)429, await GetAsync(http, Proxy, "2001:db8:9:9::3"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "::ffff:198.51.100.30"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "198.51.100.30"));
        Assert.Equal((HttpStatusCode)429, await GetAsync(http, "::ffff:198.51.100.30"));
    }

    [Fact]
    public async Task Unfinished_Upload_Quota_Counts_The_Forwarded_Client()
    {
        using var app = Start(new() { ["RateLimit:TokensPerPeriod"] = "0", ["Upload:MaxActiveUploadsPerClient"] = "1" });
        var http = app.CreateClient();

        async Task<HttpStatusCode> CreateAsync(string client)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/tus");
            request.Headers.Add(TestPeerAddress.Header, Proxy);
            request.Headers.Add("X-Forwarded-For", client);
            request.Headers.Add("Tus-Resumable", "1.0.0");
            request.Headers.Add("Upload-Length", "10");
            using var response = await http.SendAsync(request);
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.Created, await CreateAsync("198.51.100.40"));
        Assert.Equal((HttpStatusCode)429, await CreateAsync("198.51.100.40"));
        Assert.Equal(HttpStatusCode.Created, await CreateAsync("198.51.100.41"));
    }

    [Fact]
    public async Task A_Trusted_Proxy_Names_The_Scheme_The_Client_Used()
    {
        using var app = Start(new() { ["RateLimit:TokensPerPeriod"] = "0" });
        var http = app.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false });

        async Task<Uri> InitiateAsync(string peer)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/upload/scheme-" + peer.Replace('.', '-') + ".bin?uploadType=resumable");
            request.Headers.Add(TestPeerAddress.Header, peer);
            request.Headers.Add("X-Forwarded-For", "198.51.100.50");
            request.Headers.Add("X-Forwarded-Proto", "https");
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return response.Headers.Location!;
        }

        Assert.Equal("https", (await InitiateAsync(Proxy)).Scheme); // Google-style session URLs are absolute
        Assert.Equal("http", (await InitiateAsync("192.0.2.60")).Scheme);
    }

    [Fact]
    public async Task Idle_Clients_Leave_The_Rate_Table_Once_Their_Budget_Has_Refilled()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        // Budget 2, one request back per minute: a client that spent it is whole again after two minutes.
        using var app = Start(new() { ["RateLimit:Period"] = "00:01:00" }, clock);
        var http = app.CreateClient();
        var limiter = app.Services.GetRequiredService<ChunkUpload.Server.Security.ClientRateLimiter>();
        for (int i = 0; i < 50; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "198.51.100." + (i + 100)));
            Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "198.51.100." + (i + 100)));
        }

        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "192.0.2.1"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "192.0.2.1"));
        Assert.Equal((HttpStatusCode)429, await GetAsync(http, "192.0.2.1"));
        Assert.Equal(51, limiter.TrackedClients);

        // One minute on: everyone got one request back, nobody is whole yet, so nobody goes.
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "192.0.2.1"));
        Assert.Equal((HttpStatusCode)429, await GetAsync(http, "192.0.2.1"));
        Assert.Equal(51, limiter.TrackedClients);

        // Two more minutes: every idle bucket is full and goes; the next request starts the only entry.
        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "203.0.113.1"));
        Assert.Equal(1, limiter.TrackedClients);
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "192.0.2.1"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(http, "192.0.2.1"));
        Assert.Equal((HttpStatusCode)429, await GetAsync(http, "192.0.2.1"));
    }
}
