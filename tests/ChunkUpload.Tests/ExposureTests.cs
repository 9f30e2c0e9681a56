using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using ChunkUpload.Server.Hosting;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>What the server tells strangers: no disk figures, no API documents when switched off, and a warning to
/// the operator when it is open to the network without access control.</summary>
public sealed partial class ExposureTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Warns_At_Start_When_Access_Control_Is_Off_And_The_Server_Listens_Beyond_Loopback()
    {
        using var open = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?> { ["urls"] = "http://0.0.0.0:5080" });
        using var client = open.CreateClient();
        await StartCheckedAsync(open);
        Assert.Equal(1, open.Logs.Count(5001, "http://0.0.0.0:5080"));
    }

    [Theory]
    [InlineData("http://localhost:5080", false)]
    [InlineData("http://127.0.0.1:5080;http://[::1]:5081", false)]
    [InlineData("http://0.0.0.0:5080", true)]
    [InlineData("http://*:5080", true)]
    [InlineData("http://+:5080", true)]
    [InlineData("http://[::]:5080", true)]
    [InlineData("https://192.0.2.4:443", true)]
    public async Task Warns_Only_For_Addresses_Beyond_Loopback_And_Only_Without_Access_Control(string urls, bool exposed)
    {
        using var anonymous = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?> { ["urls"] = urls });
        using (anonymous.CreateClient())
        {
            await StartCheckedAsync(anonymous);
            Assert.Equal(exposed ? 1 : 0, anonymous.Logs.Count(5001, ""));
        }

        Assert.Equal(exposed, SecurityExtensions.NonLoopback(urls.Split(';')).Any());

        using var guarded = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?>
        {
            ["urls"] = urls,
            ["Auth:Enabled"] = "true",
            ["Auth:ApiKeys:0:Key"] = "key-0123456789abcdef",
            ["Auth:ApiKeys:0:Owner"] = "ops",
        });
        using (guarded.CreateClient())
        {
            await StartCheckedAsync(guarded);
            Assert.Equal(0, guarded.Logs.Count(5001, ""));
        }
    }

    // The check runs once the server has started, after the first client may already be talking to it.
    private static async Task StartCheckedAsync(ChunkUploadApplication app)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (app.Logs.Count(5001, "") + app.Logs.Count(5002, "") == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "The start-up exposure check did not run.");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task Swagger_Is_Served_By_Default_And_Not_When_Switched_Off()
    {
        using (var on = new ChunkUploadApplication(_dir.StorageRoot))
        {
            using var document = await on.CreateClient().GetAsync("/swagger/v1/swagger.json");
            Assert.Equal(HttpStatusCode.OK, document.StatusCode);
        }

        using var off = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?> { ["Swagger:Enabled"] = "false" });
        var http = off.CreateClient();
        foreach (string path in new[] { "/swagger/v1/swagger.json", "/swagger/index.html" })
        {
            using var response = await http.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.DoesNotContain("see /swagger", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_Full_Disk_Answers_507_Without_Telling_How_Much_Room_Is_Left()
    {
        // Keep more free than any disk has: every file is refused for room.
        using var app = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?> { ["Upload:MinFreeSpace"] = long.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        using var request = new HttpRequestMessage(HttpMethod.Post, "/tus");
        request.Headers.Add("Tus-Resumable", "1.0.0");
        request.Headers.Add("Upload-Length", "7");
        using var response = await app.CreateClient().SendAsync(request);
        Assert.Equal((HttpStatusCode)507, response.StatusCode);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("insufficient_storage", problem.RootElement.GetProperty("code").GetString());
        string detail = problem.RootElement.GetProperty("detail").GetString()!;
        Assert.False(LongNumber().IsMatch(detail), "The detail gives away a disk figure: " + detail);
    }

    [GeneratedRegex(@"\d{3,}")]
    private static partial Regex LongNumber();
}
