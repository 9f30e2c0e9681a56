using System.Globalization;
using System.Net;
using System.Text.Json;
using ChunkUpload.ClusterTests.Infrastructure;
using ChunkUpload.FaultTests.Infrastructure;
using ChunkUpload.Tests.Infrastructure;
using Npgsql;
using Xunit.Abstractions;

namespace ChunkUpload.ClusterTests;

/// <summary>
/// The shared stores are what several nodes need: a node configured for several nodes without them does not start,
/// and a node that loses its database or object store answers 503 with Retry-After (resumable.js, flow.js and tus
/// clients retry it) while the others go on; nothing acknowledged is lost, and the node recovers when the store is back.
/// </summary>
public sealed class StorageFaultClusterTests(ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;
    private const long Size = 48 * MiB;
    private const long ChunkSize = 8 * MiB;
    private readonly Figures _figures = new(output);

    [Theory]
    [InlineData("Local", "S3", "Storage__Metadata=PostgreSQL")]
    [InlineData("PostgreSQL", "Local", "Storage__Data=S3")]
    [InlineData("Local", "Local", "Storage__Metadata=PostgreSQL")]
    public async Task A_Node_Of_Several_Refuses_To_Start_Without_Shared_Metadata_And_Data(string metadata, string data, string advice)
    {
        var settings = new Dictionary<string, string>
        {
            ["Storage:Nodes"] = "3",
            ["Storage:Metadata"] = metadata,
            ["Storage:Data"] = data,
        };
        if (metadata == "PostgreSQL")
            settings["ConnectionStrings:Uploads"] = await TestServices.NewDatabaseAsync();
        if (data == "S3")
        {
            foreach (var (key, value) in await TestServices.S3SettingsAsync())
                settings[key.Replace("__", ":", StringComparison.Ordinal)] = value;
        }

        string root = Path.Combine(Path.GetTempPath(), "chunkupload-cluster", "refused-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        try
        {
            using var server = ServerProcess.Start(root, Cluster.Arguments(settings));
            // The process may exit before its last output lines are read: wait for the reason too.
            await ClusterChecks.WaitForAsync(() => server.HasExited && server.LogTail.Contains("Storage:Nodes=3", StringComparison.Ordinal), done => done,
                TimeSpan.FromSeconds(90), "the misconfigured node to exit and say why");
            string log = server.LogTail;
            string reason = log.Split('\n').FirstOrDefault(l => l.Contains("Storage:Nodes=3", StringComparison.Ordinal)) ?? "";
            _figures.Line($"Storage:Nodes=3, Metadata={metadata}, Data={data}: exited; {reason.Trim()}");
            Assert.Contains("Storage:Nodes=3", log, StringComparison.Ordinal);
            Assert.Contains(advice, log, StringComparison.Ordinal);
            using var http = new HttpClient { BaseAddress = server.BaseUri };
            Assert.False(await ServerProcess.IsHealthyAsync(http));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task A_Node_That_Cannot_Reach_PostgreSQL_Answers_503_With_Retry_After_And_Nothing_Acknowledged_Is_Lost()
    {
        using var file = ClusterChecks.RandomFile(Size);
        TcpGate? gate = null;
        await using var cluster = await Cluster.StartAsync(perNode: (index, shared) =>
        {
            if (index != 2)
                return null;
            var connection = new NpgsqlConnectionStringBuilder(shared["ConnectionStrings:Uploads"]);
            gate = new TcpGate(connection.Host!, connection.Port);
            gate.Open();
            connection.Port = gate.Port;
            return new Dictionary<string, string> { ["ConnectionStrings:Uploads"] = connection.ConnectionString };
        });
        await using var closing = gate!;
        var cut = cluster.Nodes[2];
        var sender = new ChunkSender(cluster, file.Handle, Size, ChunkSize, "no-database-" + Guid.NewGuid().ToString("N")[..8], "db.bin");
        await sender.SendAsync(1, [1, 2, 3]);
        Assert.Equal(cut.Name, sender.Acknowledged[3]); // the gated node works while its database is reachable

        await gate!.CloseAsync();
        _figures.Line($"PostgreSQL out of reach of {cut.Name} (its connection string names a port that refuses connections):");
        await AssertUnavailableAsync(cluster, cut, HttpMethod.Get, "/uploads/" + sender.Identifier, null, "GET /uploads/{id}");
        await AssertUnavailableAsync(cluster, cut, sender, 4, "POST /upload chunk 4");
        using (var test = await sender.SendTestChunkAsync(cut, 1))
            await AssertUnavailableAsync(test, cut, "GET /upload chunk test");
        await AssertTusCreateUnavailableAsync(cluster, cut);

        // The client goes on: what the cut-off node refuses is sent to the others.
        await sender.SendAsync(1, [4, 5, 6]);
        _figures.Line($"  the client went on: acknowledged per node {PerNode(sender)}; re-sent {sender.Resends}: {string.Join("; ", sender.Failures.Select(Status))}");
        Assert.Equal(6, sender.Acknowledged.Count);
        Assert.All(sender.Failures, f => Assert.StartsWith($"chunk ", f, StringComparison.Ordinal));
        Assert.All(sender.Failures, f => Assert.Contains($"on {cut.Name}: 503", f, StringComparison.Ordinal));

        await cluster.WaitCompleteAsync(sender.Identifier, ClusterChecks.CompletionTimeout);

        // Its background work met the outage too (the webhook reads the outbox every second): the node stays up.
        await ClusterChecks.WaitForAsync(() => cluster.LogLines(l => l.Contains("\"Id\": 4003", StringComparison.Ordinal)).Any(l => l.Node == cut.Name) || !cut.IsAlive,
            seen => seen, TimeSpan.FromSeconds(30), $"{cut.Name}'s webhook to find the outbox out of reach (event 4003)");
        Assert.True(cut.IsAlive, $"{cut.Name} exited while its database was out of reach:\n{cut.LogTail}");
        gate.Open();
        await ClusterChecks.WaitForAsync(() => StatusAsync(cluster, cut, "/uploads/" + sender.Identifier), status => status == HttpStatusCode.OK,
            TimeSpan.FromSeconds(30), $"{cut.Name} to answer again");
        foreach (var node in cluster.Nodes)
        {
            for (int chunk = 1; chunk <= sender.TotalChunks; chunk++)
                Assert.Equal(HttpStatusCode.OK, await sender.TestChunkAsync(node, chunk));
        }

        _figures.Line($"  database reachable again: {cut.Name} answers, every chunk 200 on every node");
        await ClusterChecks.AssertCompletedOnceAsync(cluster, sender.Identifier, Size, file.Sha256, cut, _figures);
        _figures.Save("cluster-no-database-figures.txt");
    }

    [Fact]
    public async Task A_Node_That_Cannot_Reach_The_Object_Store_Answers_503_With_Retry_After_And_Nothing_Acknowledged_Is_Lost()
    {
        using var file = ClusterChecks.RandomFile(Size);
        TcpGate? gate = null;
        await using var cluster = await Cluster.StartAsync(perNode: (index, shared) =>
        {
            if (index != 2)
                return null;
            var s3 = new Uri(shared["S3:ServiceUrl"]);
            gate = new TcpGate(s3.Host, s3.Port);
            gate.Open();
            return new Dictionary<string, string> { ["S3:ServiceUrl"] = $"http://127.0.0.1:{gate.Port}" };
        });
        await using var closing = gate!;
        var cut = cluster.Nodes[2];
        var sender = new ChunkSender(cluster, file.Handle, Size, ChunkSize, "no-s3-" + Guid.NewGuid().ToString("N")[..8], "s3.bin");
        await sender.SendAsync(1, [1, 2, 3]);
        Assert.Equal(cut.Name, sender.Acknowledged[3]);

        await gate!.CloseAsync();
        _figures.Line($"S3 out of reach of {cut.Name} (its S3:ServiceUrl names a port that refuses connections):");
        await AssertUnavailableAsync(cluster, cut, sender, 4, "POST /upload chunk 4");
        var fresh = new ChunkSender(cluster, file.Handle, Size, ChunkSize, "no-s3-new-" + Guid.NewGuid().ToString("N")[..8], "s3.bin");
        await AssertUnavailableAsync(cluster, cut, fresh, 1, "POST /upload chunk 1 of a new upload");
        await AssertTusCreateUnavailableAsync(cluster, cut);

        // What needs only the database still works there.
        using (var status = await cluster.Http.GetAsync(cut.Url("/uploads/" + sender.Identifier)))
        {
            Assert.Equal(HttpStatusCode.OK, status.StatusCode);
            using var json = JsonDocument.Parse(await status.Content.ReadAsStringAsync());
            Assert.Equal(3, json.RootElement.GetProperty("receivedChunks").GetInt32());
        }

        await sender.SendAsync(1, [4, 5, 6]);
        _figures.Line($"  the client went on: acknowledged per node {PerNode(sender)}; re-sent {sender.Resends}: {string.Join("; ", sender.Failures.Select(Status))}");
        Assert.Equal(6, sender.Acknowledged.Count);
        Assert.All(sender.Failures, f => Assert.Contains($"on {cut.Name}: 503", f, StringComparison.Ordinal));
        await ClusterChecks.AssertCompletedOnceAsync(cluster, sender.Identifier, Size, file.Sha256, cluster.Nodes[0], _figures);

        gate.Open();
        foreach (var node in cluster.Nodes)
        {
            for (int chunk = 1; chunk <= sender.TotalChunks; chunk++)
                Assert.Equal(HttpStatusCode.OK, await sender.TestChunkAsync(node, chunk));
        }

        var (length, sha) = await ClusterChecks.DownloadAsync(cluster, cut, sender.Identifier);
        Assert.Equal((Size, file.Sha256), (length, sha));
        Assert.True(cut.IsAlive);
        _figures.Line($"  object store reachable again: every chunk 200 on every node, the file downloads intact from {cut.Name}");
        _figures.Save("cluster-no-s3.txt");
    }

    private async Task AssertUnavailableAsync(Cluster cluster, ClusterNode node, ChunkSender sender, int chunk, string what)
    {
        using var response = await sender.PostAsync(node, chunk);
        await AssertUnavailableAsync(response, node, what);
    }

    private async Task AssertUnavailableAsync(Cluster cluster, ClusterNode node, HttpMethod method, string path, HttpContent? content, string what)
    {
        using var request = new HttpRequestMessage(method, node.Url(path)) { Content = content };
        await AssertUnavailableAsync(cluster, node, request, what);
    }

    private async Task AssertUnavailableAsync(Cluster cluster, ClusterNode node, HttpRequestMessage request, string what)
    {
        using var response = await cluster.Http.SendAsync(request);
        await AssertUnavailableAsync(response, node, what);
    }

    private async Task AssertTusCreateUnavailableAsync(Cluster cluster, ClusterNode node)
    {
        using var create = new HttpRequestMessage(HttpMethod.Post, node.Url("/tus"));
        create.Headers.Add("Tus-Resumable", "1.0.0");
        create.Headers.Add("Upload-Length", "1000");
        await AssertUnavailableAsync(cluster, node, create, "POST /tus (creation)");
    }

    private async Task AssertUnavailableAsync(HttpResponseMessage response, ClusterNode node, string what)
    {
        string body = await response.Content.ReadAsStringAsync();
        _figures.Line($"  {what} on {node.Name}: {(int)response.StatusCode}, Retry-After {response.Headers.RetryAfter?.Delta?.TotalSeconds.ToString(CultureInfo.InvariantCulture) ?? "none"}, {Code(body)}");
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{what} on {node.Name}: {(int)response.StatusCode} {body}");
        Assert.NotNull(response.Headers.RetryAfter?.Delta);
        Assert.Contains("storage_unavailable", body, StringComparison.Ordinal);
    }

    private static async Task<HttpStatusCode> StatusAsync(Cluster cluster, ClusterNode node, string path)
    {
        using var response = await cluster.Http.GetAsync(node.Url(path));
        return response.StatusCode;
    }

    private static string Code(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            return json.RootElement.TryGetProperty("code", out var code) ? "code " + code.GetString() : body;
        }
        catch (JsonException)
        {
            return body;
        }
    }

    private static string Status(string failure) => failure.Length <= 60 ? failure : failure[..60] + "…";

    private static string PerNode(ChunkSender sender) =>
        string.Join(", ", sender.Acknowledged.GroupBy(a => a.Value).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}"));
}
