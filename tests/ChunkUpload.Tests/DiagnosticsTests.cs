using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>/metrics (Prometheus text, access control) and /readyz (readiness with a JSON body naming the failing check).</summary>
public sealed class DiagnosticsTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>The in-process server with requests coming from <paramref name="remote"/> (the test host has no address of its own).</summary>
    private ChunkUploadApplication App(string remote = "127.0.0.1", Dictionary<string, string?>? settings = null) =>
        new(_dir.StorageRoot, settings, services => services.AddSingleton<IStartupFilter>(new RemoteAddress(IPAddress.Parse(remote))));

    [Fact]
    public async Task Metrics_After_An_Upload_Count_Its_Bytes_Acknowledgements_And_Completion()
    {
        using var app = App();
        var client = new UploadClient(app.CreateClient());
        var file = TestFile.Random("metrics-1", 200_000, 65_536);
        await client.UploadAllAsync(file);
        await client.WaitForCompleteAsync(file.Identifier);

        using (var response = await app.CreateClient().GetAsync("/metrics"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        }

        // Observers hear of a completion just after the waiting requests are answered.
        string text = await ScrapeUntilAsync(app, t => Sum(t, "chunkupload_uploads_completed_total") >= 1);
        Assert.Equal(file.Data.Length, Sum(text, "chunkupload_received_bytes_total"));
        Assert.Equal(1, Sum(text, "chunkupload_uploads_created_total"));
        Assert.Equal(1, Sum(text, "chunkupload_uploads_completed_total"));
        Assert.True(Sum(text, "chunkupload_write_acknowledgement_seconds_count") >= file.TotalChunks, text);
        Assert.True(Sum(text, "chunkupload_completion_seconds_count") >= 1, text);
        Assert.True(Sum(text, "chunkupload_assembly_batch_pieces_count") >= 1, text);
        Assert.True(Sum(text, "chunkupload_storage_free_bytes") > 0, text);
        Assert.Equal(0, Sum(text, "chunkupload_webhook_backlog"));
        Assert.Equal(0, Sum(text, "chunkupload_assembly_queue_length"));
        Assert.Contains("# TYPE chunkupload_uploads_in_progress gauge", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE chunkupload_completion_seconds histogram", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_Count_An_Upload_In_Progress_By_Protocol_And_State()
    {
        using var app = App();
        var client = new UploadClient(app.CreateClient());
        var file = TestFile.Random("metrics-progress", 3000, 1000);
        using (var first = await client.PostChunkAsync(file, 1))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        string text = await ScrapeUntilAsync(app, t => Sum(t, "chunkupload_received_bytes_total") >= 1000);
        Assert.Equal(1, Sum(text, "chunkupload_uploads_in_progress", "state=\"receiving\""));
        Assert.Equal(1000, Sum(text, "chunkupload_received_bytes_total"));

        await client.UploadAllAsync(file);
        await client.WaitForCompleteAsync(file.Identifier);
        text = await ScrapeUntilAsync(app, t => Sum(t, "chunkupload_uploads_completed_total") >= 1);
        Assert.Equal(0, Sum(text, "chunkupload_uploads_in_progress"));
        Assert.Equal(3000, Sum(text, "chunkupload_received_bytes_total"));
    }

    [Fact]
    public async Task A_Rejection_Increments_Rejections_By_Its_Code_And_Status()
    {
        using var app = App();
        var http = app.CreateClient();
        for (int i = 0; i < 2; i++)
        {
            using var missing = await http.GetAsync("/uploads/no-such-upload");
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }

        using (var badLimit = await http.GetAsync("/uploads?limit=0"))
            Assert.Equal(HttpStatusCode.BadRequest, badLimit.StatusCode);

        string text = await ScrapeAsync(app);
        Assert.Equal(2, Sum(text, "chunkupload_rejections_total", "code=\"upload_not_found\",status=\"404\""));
        Assert.Equal(1, Sum(text, "chunkupload_rejections_total", "code=\"invalid_limit\",status=\"400\""));
    }

    [Fact]
    public async Task Metrics_Are_403_For_A_Remote_Client_Unless_It_Presents_The_Scrape_Key()
    {
        const string key = "scrape-key-0123456789abcdef";
        using var app = App("203.0.113.7", new() { ["Metrics:ApiKey"] = key });
        var http = app.CreateClient();

        using (var anonymous = await http.GetAsync("/metrics"))
        {
            Assert.Equal(HttpStatusCode.Forbidden, anonymous.StatusCode);
            await ResumableContractTests.AssertProblemAsync(anonymous, "metrics_forbidden");
        }

        using (var wrong = await Get(http, "/metrics", "wrong-key-0123456789abcdef"))
            Assert.Equal(HttpStatusCode.Forbidden, wrong.StatusCode);

        using var right = await Get(http, "/metrics", key);
        Assert.Equal(HttpStatusCode.OK, right.StatusCode);
        Assert.Contains("chunkupload_rejections_total{code=\"metrics_forbidden\",status=\"403\"} 2", await right.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_Are_Served_To_An_Allowed_Network_And_Absent_When_Disabled()
    {
        using (var app = App("10.1.2.3", new() { ["Metrics:AllowedNetworks:0"] = "10.0.0.0/8" }))
        {
            using var allowed = await app.CreateClient().GetAsync("/metrics");
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        }

        using (var app = App(settings: new() { ["Metrics:Enabled"] = "false" }))
        {
            using var disabled = await app.CreateClient().GetAsync("/metrics");
            Assert.Equal(HttpStatusCode.NotFound, disabled.StatusCode);
        }
    }

    [Fact]
    public async Task Readyz_Is_200_When_Storage_Is_Writable_With_Room()
    {
        using var app = App();
        using var response = await app.CreateClient().GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("healthy", body.RootElement.GetProperty("status").GetString());
        Assert.Equal("healthy", body.RootElement.GetProperty("checks").GetProperty("storage").GetProperty("status").GetString());
        Assert.Empty(Directory.EnumerateFiles(_dir.StorageRoot, ".ready-*")); // the probe file is gone
    }

    [Fact]
    public async Task Readyz_Is_503_Naming_Storage_When_The_Root_Cannot_Be_Written_While_Healthz_Stays_200()
    {
        using var app = App();
        var http = app.CreateClient();
        using (var before = await http.GetAsync("/readyz"))
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);

        // Root ignores permissions: a file where the storage directory was makes every write below it fail.
        Directory.Delete(_dir.StorageRoot, recursive: true);
        await File.WriteAllTextAsync(_dir.StorageRoot, "not a directory");

        using var response = await http.GetAsync("/readyz");
        await AssertStorageUnhealthyAsync(response, "cannot be written");
        using var health = await http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Readyz_Is_503_Naming_Storage_When_Free_Space_Is_Below_The_Floor()
    {
        using var app = App(settings: new() { ["Upload:MinFreeSpace"] = (1L << 60).ToString(CultureInfo.InvariantCulture) });
        using var response = await app.CreateClient().GetAsync("/readyz");
        await AssertStorageUnhealthyAsync(response, "free space");
    }

    private static async Task AssertStorageUnhealthyAsync(HttpResponseMessage response, string reason)
    {
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("unhealthy", body.RootElement.GetProperty("status").GetString());
        var storage = body.RootElement.GetProperty("checks").GetProperty("storage");
        Assert.Equal("unhealthy", storage.GetProperty("status").GetString());
        Assert.Contains(reason, storage.GetProperty("description").GetString(), StringComparison.Ordinal);
    }

    private static async Task<string> ScrapeAsync(ChunkUploadApplication app)
    {
        using var response = await app.CreateClient().GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    private static async Task<string> ScrapeUntilAsync(ChunkUploadApplication app, Func<string, bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            string text = await ScrapeAsync(app);
            if (condition(text) || DateTime.UtcNow > deadline)
                return text;
            await Task.Delay(50);
        }
    }

    private static async Task<HttpResponseMessage> Get(HttpClient http, string path, string bearer)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return await http.SendAsync(request);
    }

    /// <summary>The sum of a metric's samples (every label set, or those whose labels contain <paramref name="labels"/>).</summary>
    private static double Sum(string exposition, string name, string? labels = null)
    {
        double sum = 0;
        foreach (string line in exposition.Split('\n'))
        {
            if (line.StartsWith('#') || !(line.StartsWith(name + "{", StringComparison.Ordinal) || line.StartsWith(name + " ", StringComparison.Ordinal)))
                continue;
            if (labels is not null && !line.Contains(labels, StringComparison.Ordinal))
                continue;
            sum += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }

        return sum;
    }

    private sealed class RemoteAddress(IPAddress address) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((context, following) =>
            {
                context.Connection.RemoteIpAddress = address;
                return following(context);
            });
            next(app);
        };
    }
}
