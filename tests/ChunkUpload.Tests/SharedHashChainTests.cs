using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// Several nodes on PostgreSQL + S3 hash an upload in turn through the shared checkpoint: each hashes the pieces staged
/// where they arrived and the next node goes on from its state, so pieces spread over nodes are never read back from
/// the object store; a node that dies with staged pieces leaves the others to read the object back, never a wrong or
/// missing hash. Two engines over one database and bucket are two nodes.
/// </summary>
public sealed class SharedHashChainTests : IDisposable
{
    private const int MiB = 1024 * 1024;
    private const int Chunk = 5 * MiB; // S3's smallest part: each chunk is a part, staged on the node that received it
    private const int ReadBack = 1105;
    private const int ChainStalled = 1106;
    private readonly TempDirectory _dir = new();
    private readonly List<EngineHarness> _engines = [];

    public void Dispose()
    {
        foreach (var engine in _engines)
            engine.Dispose();
        _dir.Dispose();
    }

    private async Task<(EngineHarness A, LogCapture LogsA, EngineHarness B, LogCapture LogsB)> TwoNodesAsync()
    {
        var logsA = new LogCapture();
        var logsB = new LogCapture();
        var a = await EngineHarness.OpenAsync(Path.Combine(_dir.Path, "a"), Backend.PostgresS3, logs: logsA);
        _engines.Add(a);
        var b = await a.OpenNodeAsync(Path.Combine(_dir.Path, "b"), logsB);
        _engines.Add(b);
        return (a, logsA, b, logsB);
    }

    private static UploadSpec Spec(string id, byte[] data) => new()
    {
        Id = id,
        Protocol = EngineHarness.Protocol,
        Length = data.Length,
        FileName = id + ".bin",
        Properties = new Dictionary<string, string> { ["chunkSize"] = Chunk.ToString(System.Globalization.CultureInfo.InvariantCulture) },
        ExpectedSha256 = UploadClient.Sha256Hex(data),
    };

    private static async Task StoreAsync(EngineHarness node, string id, byte[] data, int chunk)
    {
        var caller = EngineHarness.Caller;
        await node.Engine.GetOrCreateAsync(caller, Spec(id, data), CancellationToken.None);
        int offset = chunk * Chunk, length = Math.Min(Chunk, data.Length - offset);
        await node.Engine.WriteAsync(caller, id, offset, new MemoryStream(data, offset, length),
            new WriteOptions { Protocol = EngineHarness.Protocol, ExpectedLength = length }, CancellationToken.None);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "Timed out waiting until " + what);
            await Task.Delay(50);
        }
    }

    private static int StagedFiles(EngineHarness node) =>
        Directory.Exists(node.S3!.StagingDirectory) ? Directory.GetFiles(node.S3.StagingDirectory!, "*", SearchOption.AllDirectories).Length : 0;

    [Fact]
    public async Task Pieces_Alternating_Between_Two_Nodes_Are_Hashed_In_Turn_And_Never_Read_Back()
    {
        var (a, logsA, b, logsB) = await TwoNodesAsync();
        var data = UploadClient.RandomBytes(6 * Chunk - 12345, 31); // a short last chunk
        const string id = "chain-alternating";

        // Every odd chunk reaches B first: B holds them staged and can hash none (it lacks the start). Then A receives
        // the even ones in order: each time A hashes up to B's next chunk, B is told and goes on from A's state.
        foreach (int chunk in new[] { 1, 3, 5 })
            await StoreAsync(b, id, data, chunk);
        foreach (int chunk in new[] { 0, 2, 4 })
            await StoreAsync(a, id, data, chunk);

        var done = await a.WaitForCompleteAsync(id);
        Assert.Equal(UploadClient.Sha256Hex(data), done.Record.Sha256);
        Assert.Equal(data, await a.ReadCompletedAsync(id));
        Assert.Equal(0, logsA.Count(ReadBack, id) + logsB.Count(ReadBack, id));
        Assert.Equal(0, logsA.Count(ChainStalled, id) + logsB.Count(ChainStalled, id));
        Assert.Equal(1, logsA.Count(1004, id) + logsB.Count(1004, id)); // completed once, by one node
        // Each node let go of what it staged for the hash.
        await WaitUntilAsync(() => StagedFiles(a) == 0 && StagedFiles(b) == 0, "both nodes have let go of their staged pieces");
    }

    [Fact]
    public async Task Chunks_Sent_Round_Robin_And_Concurrently_To_Two_Nodes_Complete_With_The_Right_Hash_Without_Read_Back()
    {
        // What resumable.js against two nodes behind a round-robin balancer does: several chunks in flight, alternating.
        var (a, logsA, b, logsB) = await TwoNodesAsync();
        var data = UploadClient.RandomBytes(8 * Chunk, 32);
        const string id = "chain-round-robin";
        var nodes = new[] { a, b };
        var chunks = Enumerable.Range(0, 8).ToList();
        await Parallel.ForEachAsync(chunks, new ParallelOptions { MaxDegreeOfParallelism = 4 },
            async (chunk, _) => await StoreAsync(nodes[chunk % 2], id, data, chunk));

        var done = await a.WaitForCompleteAsync(id);
        Assert.Equal(UploadClient.Sha256Hex(data), done.Record.Sha256);
        Assert.Equal(0, logsA.Count(ReadBack, id) + logsB.Count(ReadBack, id));
    }

    [Fact]
    public async Task A_Node_That_Dies_With_Staged_Pieces_Leaves_The_Others_To_Read_The_Object_Back()
    {
        var (a, logsA, b, _) = await TwoNodesAsync();
        var data = UploadClient.RandomBytes(4 * Chunk, 33);
        const string id = "chain-dead-node";

        // B stores chunks 1 and 3 (durable in the object store) and dies before the hash reaches them: their staged
        // copies are gone with it. A still completes the upload, with the hash of the object read back.
        foreach (int chunk in new[] { 1, 3 })
            await StoreAsync(b, id, data, chunk);
        b.Dispose();
        _engines.Remove(b);
        foreach (int chunk in new[] { 0, 2 })
            await StoreAsync(a, id, data, chunk);

        var done = await a.WaitForCompleteAsync(id);
        Assert.Equal(UploadClient.Sha256Hex(data), done.Record.Sha256);
        Assert.Equal(data, await a.ReadCompletedAsync(id));
        Assert.Equal(1, logsA.Count(ChainStalled, id));
        Assert.Equal(1, logsA.Count(ReadBack, id));
    }

    [Fact]
    public async Task A_Checkpoint_Only_Moves_Forward_And_An_Upload_Started_Again_Under_The_Same_Id_Does_Not_Inherit_It()
    {
        var (a, _, _, _) = await TwoNodesAsync();
        var store = Assert.IsAssignableFrom<IHashCheckpointStore>(a.Metadata);
        var data = UploadClient.RandomBytes(3 * Chunk, 34);
        const string id = "chain-store";
        var caller = EngineHarness.Caller;
        await a.Engine.GetOrCreateAsync(caller, Spec(id, data), CancellationToken.None);
        var first = (await a.Metadata.FindAsync(caller.KeyOf(id), CancellationToken.None))!;
        byte[] at10 = [1, 2, 3], at5 = [4, 5, 6];

        Assert.Null(await store.ReadHashCheckpointAsync(first, CancellationToken.None));
        Assert.True(await store.TryAdvanceHashCheckpointAsync(first, 10, at10, CancellationToken.None));
        Assert.False(await store.TryAdvanceHashCheckpointAsync(first, 5, at5, CancellationToken.None));
        Assert.False(await store.TryAdvanceHashCheckpointAsync(first, 10, at5, CancellationToken.None));
        var checkpoint = await store.ReadHashCheckpointAsync(first, CancellationToken.None);
        Assert.Equal(10, checkpoint!.HashedTo);
        Assert.Equal(at10, checkpoint.State);

        Assert.True(await a.Engine.DeleteAsync(caller, id, CancellationToken.None));
        await a.Engine.GetOrCreateAsync(caller, Spec(id, data), CancellationToken.None);
        var again = (await a.Metadata.FindAsync(caller.KeyOf(id), CancellationToken.None))!;
        Assert.NotEqual(first.CreatedAt, again.CreatedAt);

        Assert.Null(await store.ReadHashCheckpointAsync(again, CancellationToken.None));
        Assert.False(await store.TryAdvanceHashCheckpointAsync(first, 20, at10, CancellationToken.None)); // a node still holding the old upload
        Assert.Null(await store.ReadHashCheckpointAsync(again, CancellationToken.None));
        Assert.True(await store.TryAdvanceHashCheckpointAsync(again, 5, at5, CancellationToken.None));
        Assert.Null(await store.ReadHashCheckpointAsync(first, CancellationToken.None));
    }

    [Fact]
    public async Task A_Node_Whose_View_Of_An_Upload_Is_Stale_Does_Not_Expire_It_While_Another_Node_Receives_It()
    {
        // A received the first chunk, then every chunk went to B for six days: A's memory says idle since day 0, the
        // store says active on day 6. On day 8 A's sweep must ask the store, not delete the upload (and its bytes).
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var a = await EngineHarness.OpenAsync(Path.Combine(_dir.Path, "a"), Backend.PostgresS3, time: clock);
        _engines.Add(a);
        var b = await a.OpenNodeAsync(Path.Combine(_dir.Path, "b"));
        _engines.Add(b);
        var data = UploadClient.RandomBytes(3 * Chunk, 43);
        const string id = "stale-view";

        await StoreAsync(a, id, data, 0);
        clock.Advance(TimeSpan.FromDays(6));
        await StoreAsync(b, id, data, 1);
        clock.Advance(TimeSpan.FromDays(2));
        await a.Engine.SweepAsync(CancellationToken.None);

        var seen = await b.Engine.FindAsync(EngineHarness.Caller, id, CancellationToken.None);
        Assert.NotNull(seen);
        Assert.Equal(2L * Chunk, seen.Offset);
        await StoreAsync(b, id, data, 2);
        var done = await b.Engine.WaitForCompletionAsync(EngineHarness.Caller, id, TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.Equal(UploadClient.Sha256Hex(data), done!.Record.Sha256);
        Assert.Equal(data, await b.ReadCompletedAsync(id));
    }
}
