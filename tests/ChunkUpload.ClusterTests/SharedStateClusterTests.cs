using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using ChunkUpload.ClusterTests.Infrastructure;
using ChunkUpload.FaultTests.Infrastructure;
using Xunit.Abstractions;

namespace ChunkUpload.ClusterTests;

/// <summary>What one node does is what every node sees: status, deletion, quotas and ownership.</summary>
public sealed class SharedStateClusterTests(ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;
    private const string AliceKey = "alice-key-0123456789abcdef0123456789";
    private const string BobKey = "bob-key-0123456789abcdef0123456789ab";
    private readonly Figures _figures = new(output);

    [Fact]
    public async Task A_Delete_On_One_Node_Is_Seen_At_Once_On_Every_Node_And_Status_Is_Identical_Everywhere()
    {
        // 2 MiB chunks are smaller than S3's smallest part: they are stored as fragment objects, joined into 8 MiB parts.
        const long size = 12 * MiB, chunkSize = 2 * MiB;
        using var file = ClusterChecks.RandomFile(size);
        await using var cluster = await Cluster.StartAsync();
        string id = "deleted-" + Guid.NewGuid().ToString("N")[..8];
        var sender = new ChunkSender(cluster, file.Handle, size, chunkSize, id, "deleted.bin");
        await sender.SendAsync(3, [1, 2, 3, 5]); // round-robin: every node wrote a chunk

        // The status of an upload in progress is the same, byte for byte, whichever node answers.
        var bodies = new List<string>();
        foreach (var node in cluster.Nodes)
        {
            using var response = await cluster.Http.GetAsync(node.Url("/uploads/" + id));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            bodies.Add(await response.Content.ReadAsStringAsync());
        }

        _figures.Line($"status of {id} in progress (chunks 1, 2, 3, 5 of {sender.TotalChunks}) on 3 nodes: {bodies[0]}");
        Assert.All(bodies, body => Assert.Equal(bodies[0], body));
        using (var status = JsonDocument.Parse(bodies[0]))
        {
            Assert.Equal("receiving", status.RootElement.GetProperty("state").GetString());
            Assert.Equal(4, status.RootElement.GetProperty("receivedChunks").GetInt32());
            Assert.Equal(6 * MiB, status.RootElement.GetProperty("offset").GetInt64());
        }

        foreach (var node in cluster.Nodes)
        {
            for (int chunk = 1; chunk <= sender.TotalChunks; chunk++)
                Assert.Equal(chunk is 1 or 2 or 3 or 5 ? HttpStatusCode.OK : HttpStatusCode.NoContent, await sender.TestChunkAsync(node, chunk));
        }

        var (objects, multipart) = await cluster.BucketContentsAsync();
        _figures.Line($"  in the bucket before the delete: {objects.Count} objects, {multipart.Count} multipart uploads");
        Assert.NotEmpty(objects); // the fragments
        Assert.Single(multipart);

        using (var delete = await cluster.Http.DeleteAsync(cluster.Nodes[1].Url("/uploads/" + id)))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);

        // At once, everywhere: no status, no chunk, nothing in the bucket.
        foreach (var node in cluster.Nodes)
        {
            using var response = await cluster.Http.GetAsync(node.Url("/uploads/" + id));
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            for (int chunk = 1; chunk <= sender.TotalChunks; chunk++)
                Assert.Equal(HttpStatusCode.NoContent, await sender.TestChunkAsync(node, chunk));
        }

        (objects, multipart) = await cluster.BucketContentsAsync();
        _figures.Line($"  after DELETE on {cluster.Nodes[1].Name}: 404 and chunk tests 204 on every node; bucket: {objects.Count} objects, {multipart.Count} multipart uploads");
        Assert.Empty(objects);
        Assert.Empty(multipart);

        // The same identifier starts afresh on any node, including those that had the deleted upload in memory.
        foreach (var (node, chunk) in cluster.Nodes.Select((n, i) => (n, i + 1)))
        {
            using var response = await sender.PostAsync(node, chunk);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"chunk {chunk} on {node.Name} after the delete: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        foreach (var node in cluster.Nodes)
        {
            using var response = await cluster.Http.GetAsync(node.Url("/uploads/" + id));
            using var status = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal(3, status.RootElement.GetProperty("receivedChunks").GetInt32());
        }

        _figures.Line("  the same identifier re-sent after the delete (chunks 1-3, one per node): a new upload with 3 chunks on every node");

        // Deleted again on one node: the others, which wrote to it, know it is gone (404, as for any unknown upload).
        using (var delete = await cluster.Http.DeleteAsync(cluster.Nodes[2].Url("/uploads/" + id)))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        foreach (var node in cluster.Nodes)
        {
            using var again = await cluster.Http.DeleteAsync(node.Url("/uploads/" + id));
            Assert.True(again.StatusCode == HttpStatusCode.NotFound, $"DELETE on {node.Name} after the delete on {cluster.Nodes[2].Name}: {(int)again.StatusCode}");
        }

        (objects, multipart) = await cluster.BucketContentsAsync();
        Assert.Empty(objects);
        Assert.Empty(multipart);
        _figures.Line($"  deleted again on {cluster.Nodes[2].Name}: DELETE on every node then 404; bucket empty again");
        _figures.Save("cluster-delete-status-figures.txt");
    }

    [Fact]
    public async Task Quotas_And_Ownership_Hold_Whichever_Node_A_Request_Reaches()
    {
        const long size = 24 * MiB, chunkSize = 8 * MiB;
        using var file = ClusterChecks.RandomFile(size);
        await using var cluster = await Cluster.StartAsync(extra: new Dictionary<string, string>
        {
            ["Upload:MaxActiveUploadsPerClient"] = "2",
            ["Auth:Enabled"] = "true",
            ["Auth:TokenSigningKey"] = "cluster-test-signing-key-0123456789abcdef",
            ["Auth:ApiKeys:0:Key"] = AliceKey,
            ["Auth:ApiKeys:0:Owner"] = "alice",
            ["Auth:ApiKeys:1:Key"] = BobKey,
            ["Auth:ApiKeys:1:Owner"] = "bob",
        });
        var (node1, node2, node3) = (cluster.Nodes[0], cluster.Nodes[1], cluster.Nodes[2]);
        static Action<HttpRequestMessage> As(string key) => request => request.Headers.Add("X-Api-Key", key);
        ChunkSender Alice(string id) => new(cluster, file.Handle, size, chunkSize, id, "alice.bin") { Authorize = As(AliceKey) };
        ChunkSender Bob(string id) => new(cluster, file.Handle, size, chunkSize, id, "alice.bin") { Authorize = As(BobKey) };

        // Without credentials: 401 on every node.
        var nobody = new ChunkSender(cluster, file.Handle, size, chunkSize, "a-1", "alice.bin");
        foreach (var node in cluster.Nodes)
        {
            using var anonymous = await nobody.PostAsync(node, 1);
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        // Alice's two unfinished uploads, started on two nodes: a tus upload and a chunked one.
        using var create = new HttpRequestMessage(HttpMethod.Post, node1.Url("/tus"));
        create.Headers.Add("Tus-Resumable", "1.0.0");
        create.Headers.Add("Upload-Length", size.ToString(CultureInfo.InvariantCulture));
        As(AliceKey)(create);
        using var created = await cluster.Http.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        string tusLocation = created.Headers.Location!.OriginalString;
        string tusId = tusLocation[(tusLocation.LastIndexOf('/') + 1)..];
        using (var first = await Alice("a-1").PostAsync(node2, 1))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        // A third is refused with 429 whichever node it reaches, by either protocol.
        var third = Alice("a-3");
        foreach (var node in cluster.Nodes)
        {
            using var refused = await third.PostAsync(node, 1);
            string body = await refused.Content.ReadAsStringAsync();
            Assert.True(refused.StatusCode == HttpStatusCode.TooManyRequests, $"{node.Name}: {(int)refused.StatusCode} {body}");
            Assert.Contains("too_many_uploads", body, StringComparison.Ordinal);
            using var tus = new HttpRequestMessage(HttpMethod.Post, node.Url("/tus"));
            tus.Headers.Add("Tus-Resumable", "1.0.0");
            tus.Headers.Add("Upload-Length", "10");
            As(AliceKey)(tus);
            using var tusRefused = await cluster.Http.SendAsync(tus);
            Assert.Equal(HttpStatusCode.TooManyRequests, tusRefused.StatusCode);
        }

        _figures.Line("quotas: alice's third unfinished upload (resumable and tus) is 429 too_many_uploads on node1, node2 and node3");

        // Bob sees none of alice's uploads and writes none of them, on any node.
        var bob = Bob("a-1");
        foreach (var node in cluster.Nodes)
        {
            foreach (string path in new[] { "/uploads/a-1", "/files/a-1", "/uploads/" + tusId })
            {
                using var get = new HttpRequestMessage(HttpMethod.Get, node.Url(path));
                As(BobKey)(get);
                using var response = await cluster.Http.SendAsync(get);
                Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"bob GET {path} on {node.Name}: {(int)response.StatusCode}");
            }

            Assert.Equal(HttpStatusCode.NoContent, await bob.TestChunkAsync(node, 1));
            foreach (var method in new[] { HttpMethod.Head, HttpMethod.Patch, HttpMethod.Delete })
            {
                using var request = new HttpRequestMessage(method, node.Url(tusLocation));
                request.Headers.Add("Tus-Resumable", "1.0.0");
                if (method == HttpMethod.Patch)
                {
                    request.Headers.Add("Upload-Offset", "0");
                    request.Content = new ByteArrayContent(Encoding.ASCII.GetBytes("bob's bytes"));
                    request.Content.Headers.ContentType = new("application/offset+octet-stream");
                }

                As(BobKey)(request);
                using var response = await cluster.Http.SendAsync(request);
                Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"bob {method} {tusLocation} on {node.Name}: {(int)response.StatusCode}");
            }

            using var delete = new HttpRequestMessage(HttpMethod.Delete, node.Url("/uploads/a-1"));
            As(BobKey)(delete);
            using var deleted = await cluster.Http.SendAsync(delete);
            Assert.Equal(HttpStatusCode.NotFound, deleted.StatusCode);
        }

        // Bob's chunk with alice's identifier goes to bob's own upload; alice's is untouched.
        using (var bobs = await bob.PostAsync(node3, 2))
            Assert.Equal(HttpStatusCode.OK, bobs.StatusCode);
        foreach (var node in cluster.Nodes)
        {
            Assert.Equal(HttpStatusCode.OK, await Alice("a-1").TestChunkAsync(node, 1));
            Assert.Equal(HttpStatusCode.NoContent, await Alice("a-1").TestChunkAsync(node, 2));
            Assert.Equal(HttpStatusCode.NoContent, await bob.TestChunkAsync(node, 1));
            Assert.Equal(HttpStatusCode.OK, await bob.TestChunkAsync(node, 2));
            using var tusHead = new HttpRequestMessage(HttpMethod.Head, node.Url(tusLocation));
            tusHead.Headers.Add("Tus-Resumable", "1.0.0");
            As(AliceKey)(tusHead);
            using var head = await cluster.Http.SendAsync(tusHead);
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal("0", head.Headers.GetValues("Upload-Offset").Single());
        }

        _figures.Line("ownership: bob gets 404 for alice's status, file, tus HEAD/PATCH/DELETE and DELETE /uploads, 204 for her chunk tests, on every node; his chunk under her identifier is his own");

        // Alice finishing one upload (deleting it, on another node) frees her quota on every node.
        using (var delete = new HttpRequestMessage(HttpMethod.Delete, node3.Url(tusLocation)))
        {
            delete.Headers.Add("Tus-Resumable", "1.0.0");
            As(AliceKey)(delete);
            using var deleted = await cluster.Http.SendAsync(delete);
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using (var accepted = await third.PostAsync(node1, 1))
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        _figures.Line("  after alice deletes her tus upload on node3, her third upload is accepted on node1");
        _figures.Save("cluster-quotas-ownership-figures.txt");
    }
}
