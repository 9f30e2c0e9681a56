using System.Diagnostics;
using System.Net;
using ChunkUpload.ClusterTests.Infrastructure;
using ChunkUpload.FaultTests.Infrastructure;
using Xunit.Abstractions;

namespace ChunkUpload.ClusterTests;

/// <summary>
/// resumable.js chunks over three nodes sharing PostgreSQL and a bucket: any chunk of any upload may reach any node, a
/// node may die, and the file is still intact, completed once and announced once.
/// </summary>
public sealed class ChunkProtocolClusterTests(ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;
    private const long FileSize = 256 * MiB;
    private const long ChunkSize = 8 * MiB;
    private const int InFlight = 4;
    private readonly Figures _figures = new(output);

    [Fact]
    public async Task Chunks_Sent_Round_Robin_To_Three_Nodes_Make_One_Intact_File_Completed_And_Delivered_Once()
    {
        using var file = ClusterChecks.RandomFile(FileSize);
        var clock = Stopwatch.StartNew();
        await using var cluster = await Cluster.StartAsync();
        double startSeconds = clock.Elapsed.TotalSeconds;
        var sender = new ChunkSender(cluster, file.Handle, FileSize, ChunkSize, "round-robin-" + Guid.NewGuid().ToString("N")[..8], "big.bin");

        clock.Restart();
        await sender.SendAsync(InFlight);
        double sendSeconds = clock.Elapsed.TotalSeconds;

        _figures.Line($"round-robin: {FileSize / MiB} MiB in {sender.TotalChunks} chunks of {ChunkSize / MiB} MiB, {InFlight} in flight, over 3 nodes (started in {startSeconds:F1} s)");
        _figures.Line($"  sent in {sendSeconds:F1} s ({FileSize / (double)MiB / sendSeconds:F1} MiB/s); acknowledged per node: {PerNode(sender)}; re-sends: {sender.Resends}");
        Assert.Equal(sender.TotalChunks, sender.Acknowledged.Count);
        Assert.Equal(3, sender.Acknowledged.Values.Distinct().Count()); // every node took chunks
        Assert.Equal(0, sender.Resends);

        await ClusterChecks.AssertCompletedOnceAsync(cluster, sender.Identifier, FileSize, file.Sha256, cluster.Nodes[1], _figures);
        _figures.Save("cluster-round-robin-figures.txt");
    }

    [Fact]
    public async Task A_Node_Killed_Mid_Upload_Loses_No_Acknowledged_Chunk_And_The_File_Completes_Once()
    {
        using var file = ClusterChecks.RandomFile(FileSize);
        await using var cluster = await Cluster.StartAsync();
        var sender = new ChunkSender(cluster, file.Handle, FileSize, ChunkSize, "killed-node-" + Guid.NewGuid().ToString("N")[..8], "big.bin");
        var victim = cluster.Nodes[1];
        int total = sender.TotalChunks;

        var clock = Stopwatch.StartNew();
        var sending = sender.SendAsync(InFlight);
        await sender.WhenAcknowledged(total / 4).WaitAsync(TimeSpan.FromMinutes(3));
        int inFlightAtKill = sender.InFlightTo(victim);
        int victimPid = victim.Pid;
        victim.Kill();
        var ackedAtKill = sender.Acknowledged;
        _figures.Line($"killed-node: {FileSize / MiB} MiB in {total} chunks of {ChunkSize / MiB} MiB, {InFlight} in flight, round-robin over 3 nodes");
        _figures.Line($"  SIGKILL {victim.Name} (PID {victimPid}) at {clock.Elapsed.TotalSeconds:F1} s with {ackedAtKill.Count} chunks acknowledged, {inFlightAtKill} request(s) in flight to it");

        // Everything acknowledged before the kill is stored for the nodes that are left (a resuming client would skip it).
        await AssertAcknowledgedStoredAsync(cluster, sender, ackedAtKill, "after the kill");

        await victim.StartAsync();
        var ackedAtRestart = sender.Acknowledged;
        _figures.Line($"  {victim.Name} restarted (PID {victim.Pid}) at {clock.Elapsed.TotalSeconds:F1} s with {ackedAtRestart.Count} chunks acknowledged");
        await AssertAcknowledgedStoredAsync(cluster, sender, ackedAtRestart, "after the restart");

        await sending.WaitAsync(TimeSpan.FromMinutes(5));
        double sendSeconds = clock.Elapsed.TotalSeconds;
        var after = sender.Acknowledged.Where(a => !ackedAtRestart.ContainsKey(a.Key)).Count(a => a.Value == victim.Name);
        _figures.Line($"  sent in {sendSeconds:F1} s; acknowledged per node: {PerNode(sender)} ({after} by the restarted {victim.Name})");
        _figures.Line($"  re-sent: {sender.Resends} requests for {sender.ResentChunks.Count} chunks [{string.Join(", ", sender.ResentChunks)}]");
        foreach (var failure in sender.Failures.Take(10))
            _figures.Line("    " + Shorten(failure));

        Assert.Equal(total, sender.Acknowledged.Count);
        Assert.True(sender.Resends >= 1, "Requests to the dead node must have failed and been sent again.");
        Assert.All(sender.Failures, f => Assert.Contains(victim.Name, f, StringComparison.Ordinal)); // only the dead node failed

        var outcome = await ClusterChecks.AssertCompletedOnceAsync(cluster, sender.Identifier, FileSize, file.Sha256, cluster.Nodes[2], _figures);
        await AssertAcknowledgedStoredAsync(cluster, sender, sender.Acknowledged, "once complete");
        _figures.Line($"  kills: 1; completions: 1 (by {outcome.CompletedBy}); deliveries: 1");
        _figures.Save("cluster-killed-node-figures.txt");
    }

    [Fact]
    public async Task The_Last_Two_Chunks_Sent_At_Once_To_Two_Nodes_Complete_The_File_Once()
    {
        const long size = 48 * MiB;
        using var file = ClusterChecks.RandomFile(size);
        await using var cluster = await Cluster.StartAsync();
        _figures.Line($"last-chunks race: {size / MiB} MiB in {size / ChunkSize} chunks of {ChunkSize / MiB} MiB; the last two sent at the same moment to two nodes, three files");

        var completedBy = new List<string>();
        for (int round = 0; round < 3; round++)
        {
            var sender = new ChunkSender(cluster, file.Handle, size, ChunkSize, $"race-{round}-" + Guid.NewGuid().ToString("N")[..8], "race.bin");
            int last = sender.TotalChunks;
            await sender.SendAsync(InFlight, Enumerable.Range(1, last - 2));

            var (a, b) = (cluster.Nodes[round % 3], cluster.Nodes[(round + 1) % 3]);
            var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var first = Task.Run(async () => { await go.Task; return await sender.PostAsync(a, last - 1); });
            var second = Task.Run(async () => { await go.Task; return await sender.PostAsync(b, last); });
            go.SetResult();
            using var answerA = await first;
            using var answerB = await second;
            Assert.Equal(HttpStatusCode.OK, answerA.StatusCode);
            Assert.Equal(HttpStatusCode.OK, answerB.StatusCode);
            _figures.Line($" file {round + 1}: chunk {last - 1} to {a.Name} and chunk {last} to {b.Name} at once: {(int)answerA.StatusCode}, {(int)answerB.StatusCode}");

            var outcome = await ClusterChecks.AssertCompletedOnceAsync(cluster, sender.Identifier, size, file.Sha256, cluster.Nodes[(round + 2) % 3], _figures,
                expectedDeliveriesInAll: round + 1);
            completedBy.Add(outcome.CompletedBy);
        }

        Assert.Equal(3, cluster.Webhook.CountsByKey().Count);
        Assert.All(cluster.Webhook.CountsByKey().Values, count => Assert.Equal(1, count));
        _figures.Line($" completed by: {string.Join(", ", completedBy)}; deliveries: {cluster.Webhook.TotalDeliveries} under {cluster.Webhook.CountsByKey().Count} keys");
        _figures.Save("cluster-last-chunks-race-figures.txt");
    }

    private static async Task AssertAcknowledgedStoredAsync(Cluster cluster, ChunkSender sender, IReadOnlyDictionary<int, string> acknowledged, string when)
    {
        foreach (var node in cluster.Nodes.Where(n => n.IsAlive))
        {
            var missing = new List<int>();
            foreach (int chunk in acknowledged.Keys.Order())
            {
                var status = await sender.TestChunkAsync(node, chunk);
                if (status != HttpStatusCode.OK)
                    missing.Add(chunk);
            }

            Assert.True(missing.Count == 0, $"{when}: {node.Name} answers the chunk test with other than 200 for acknowledged chunks {string.Join(", ", missing)}");
        }
    }

    private static string PerNode(ChunkSender sender) =>
        string.Join(", ", sender.Acknowledged.GroupBy(a => a.Value).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}"));

    private static string Shorten(string text) => text.Length <= 200 ? text : text[..200] + "…";
}
