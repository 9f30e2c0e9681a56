using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>GET /uploads: the caller's uploads, newest first, a page at a time, filtered by state, owner-scoped.</summary>
public sealed class UploadListingTests : IDisposable
{
    private const string AliceKey = "alice-key-0123456789abcdef";
    private const string BobKey = "bob-key-0123456789abcdef";
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static Dictionary<string, string?> TwoOwners() => new()
    {
        ["Auth:Enabled"] = "true",
        ["Auth:TokenSigningKey"] = "a-signing-secret-of-at-least-32-characters!",
        ["Auth:ApiKeys:0:Key"] = AliceKey,
        ["Auth:ApiKeys:0:Owner"] = "alice",
        ["Auth:ApiKeys:1:Key"] = BobKey,
        ["Auth:ApiKeys:1:Owner"] = "bob",
    };

    private static UploadClient As(ChunkUploadApplication app, string? apiKey = null)
    {
        var http = app.CreateClient();
        if (apiKey is not null)
            http.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        return new UploadClient(http);
    }

    [Fact]
    public async Task Pages_List_Every_Upload_Once_Newest_First_With_A_Next_Cursor_Until_The_Last_Page()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot);
        var client = As(app);
        var created = new List<string>();
        for (int i = 0; i < 5; i++)
        {
            var file = TestFile.Random($"list-{i}", 2000, 1000, seed: i);
            using var first = await client.PostChunkAsync(file, 1);
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            created.Add(file.Identifier);
        }

        var seen = new List<string>();
        string? next = null;
        int pages = 0;
        do
        {
            var page = await ListAsync(client, "/uploads?limit=2" + (next is null ? "" : "&after=" + Uri.EscapeDataString(next)));
            var ids = Ids(page);
            Assert.InRange(ids.Count, 1, 2);
            seen.AddRange(ids);
            next = page.GetProperty("next").GetString();
            pages++;
        }
        while (next is not null && pages < 10);

        Assert.Equal(3, pages);
        Assert.Equal(Enumerable.Reverse(created), seen);

        var item = (await ListAsync(client, "/uploads?limit=1")).GetProperty("uploads")[0];
        Assert.Equal("list-4", item.GetProperty("identifier").GetString());
        Assert.Equal("receiving", item.GetProperty("state").GetString());
        Assert.Equal(2000, item.GetProperty("totalSize").GetInt64());
        Assert.Equal(1000, item.GetProperty("storedBytes").GetInt64());
        Assert.Equal("/uploads/list-4", item.GetProperty("statusUrl").GetString());
        Assert.Equal(JsonValueKind.Null, item.GetProperty("downloadUrl").ValueKind);
    }

    [Fact]
    public async Task State_Filter_Lists_Only_Uploads_In_That_State()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot);
        var client = As(app);
        var done = TestFile.Random("done", 2000, 1000, seed: 1);
        await client.UploadAllAsync(done);
        await client.WaitForCompleteAsync(done.Identifier);
        var open = TestFile.Random("open", 2000, 1000, seed: 2);
        using (var first = await client.PostChunkAsync(open, 1))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        var complete = await ListAsync(client, "/uploads?state=complete");
        Assert.Equal(["done"], Ids(complete));
        var item = complete.GetProperty("uploads")[0];
        Assert.Equal("complete", item.GetProperty("state").GetString());
        Assert.Equal(done.Sha256, item.GetProperty("sha256").GetString());
        Assert.Equal("/files/done", item.GetProperty("downloadUrl").GetString());
        Assert.Equal(["open"], Ids(await ListAsync(client, "/uploads?state=receiving")));
        Assert.Empty(Ids(await ListAsync(client, "/uploads?state=failed")));
        Assert.Equal(["open", "done"], Ids(await ListAsync(client, "/uploads")));
    }

    [Fact]
    public async Task Another_Owners_Uploads_Are_Not_Listed_And_Credentials_Are_Required()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot, TwoOwners());
        var alice = As(app, AliceKey);
        var bob = As(app, BobKey);
        var file = TestFile.Random("mine", 2000, 1000);
        await alice.UploadAllAsync(file);
        await alice.WaitForCompleteAsync(file.Identifier);

        Assert.Equal(["mine"], Ids(await ListAsync(alice, "/uploads")));
        Assert.Empty(Ids(await ListAsync(bob, "/uploads")));

        using var anonymous = await As(app).Http.GetAsync("/uploads");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        await ResumableContractTests.AssertProblemAsync(anonymous, "unauthenticated");
    }

    [Theory]
    [InlineData("limit=0", "invalid_limit")]
    [InlineData("limit=201", "invalid_limit")]
    [InlineData("limit=-1", "invalid_limit")]
    [InlineData("limit=abc", "invalid_limit")]
    [InlineData("limit=99999999999999999999", "invalid_limit")]
    [InlineData("limit=1&limit=2", "invalid_limit")]
    [InlineData("limit=%2B5", "invalid_limit")]
    [InlineData("state=bogus", "invalid_state")]
    [InlineData("state=Complete", "invalid_state")]
    [InlineData("state=", "invalid_state")]
    [InlineData("after=garbage", "invalid_cursor")]
    [InlineData("after=", "invalid_cursor")]
    [InlineData("after=123-nothex", "invalid_cursor")]
    [InlineData("after=99999999999999999999-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "invalid_cursor")]
    public async Task Bad_Query_Values_Are_400_Problems_With_A_Code(string query, string code)
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot);
        using var response = await app.CreateClient().GetAsync("/uploads?" + query);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await ResumableContractTests.AssertProblemAsync(response, code);
    }

    private static async Task<JsonElement> ListAsync(UploadClient client, string path)
    {
        using var response = await client.Http.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static List<string> Ids(JsonElement page) =>
        [.. page.GetProperty("uploads").EnumerateArray().Select(u => u.GetProperty("identifier").GetString()!)];
}
