using System.Text.Json.Nodes;
using ChunkUpload.Core.Errors;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// Crashes modelled on the disk: an engine is abandoned with its folder as a crash at a chosen step leaves it, and a
/// new engine opens the same root, as a restarted process would. Nothing acknowledged is lost; nothing
/// half-written counts as stored.
/// </summary>
public sealed class RecoveryTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly List<EngineHarness> _engines = [];

    public void Dispose()
    {
        foreach (var engine in _engines)
            engine.Dispose();
        _dir.Dispose();
    }

    private EngineHarness Open(Action<ChunkUpload.Core.UploadOptions>? configure = null)
    {
        var engine = new EngineHarness(_dir.StorageRoot, configure);
        _engines.Add(engine);
        return engine;
    }

    [Fact]
    public async Task Crash_In_The_Middle_Of_Assembly_Loses_Nothing_Acknowledged_And_Counts_Nothing_Half_Written()
    {
        var file = TestFile.Random("crash-1", (10 * 4096) + 100, 4096);
        var before = Open();
        int[] acknowledged = [4, 1, 9, 2, 5];
        foreach (int n in acknowledged)
            await before.StoreAsync(file, n);
        before.Dispose();

        // What the crash left: staged bodies never journaled, garbage where chunk 6 was being copied into the file,
        // and a journal record torn in the middle of its append.
        string hash = EngineHarness.Hash(file);
        foreach (int n in new[] { 6, 7 })
            await File.WriteAllBytesAsync(Path.Combine(before.Layout.Temp, $"staged-{n}"), file.Slice(n).ToArray());
        using (var data = File.OpenHandle(before.Layout.PartPath(hash), FileMode.Open, FileAccess.Write))
            RandomAccess.Write(data, new byte[4096], file.OffsetOf(6));
        File.AppendAllBytes(before.Layout.JournalPath(hash), [1, 2, 3, 4, 5]);

        var after = Open();
        for (int n = 1; n <= file.TotalChunks; n++)
            Assert.Equal(acknowledged.Contains(n), await after.IsStoredAsync(file, n));
        Assert.Empty(Directory.EnumerateFiles(after.Layout.Temp));

        for (int n = 1; n <= file.TotalChunks; n++)
        {
            if (!acknowledged.Contains(n))
                await after.StoreAsync(file, n);
        }

        await after.WaitForCompleteAsync(file);
        await AssertCompleteAsync(after, file);
    }

    [Fact]
    public async Task Unfinished_Session_Folders_Are_Removed_At_Start_Up()
    {
        var engine = Open();
        engine.Dispose();
        string orphan = Path.Combine(engine.Layout.Sessions, "0123456789abcdef0123456789abcdef");
        Directory.CreateDirectory(orphan);
        await File.WriteAllBytesAsync(Path.Combine(orphan, "ranges.journal"), new byte[16]);

        Open();
        Assert.False(Directory.Exists(orphan));
    }

    [Fact]
    public async Task Crash_Between_Marking_Complete_And_Moving_The_File_Is_Finished_At_Start_Up()
    {
        var file = TestFile.Random("crash-4", 3 * 1000, 1000);
        var before = Open();
        for (int n = 1; n <= file.TotalChunks; n++)
            await before.StoreAsync(file, n);
        await before.WaitForCompleteAsync(file);
        before.Dispose();

        // The record says complete, but the rename into completed/ did not happen.
        string hash = EngineHarness.Hash(file);
        File.Move(before.Layout.CompletedPath(hash), before.Layout.PartPath(hash));

        var after = Open();
        Assert.True(File.Exists(after.Layout.CompletedPath(hash)));
        await AssertCompleteAsync(after, file);
        Assert.True(await after.IsStoredAsync(file, 2));
    }

    [Fact]
    public async Task Crash_After_The_Last_Chunk_Completes_The_File_At_Start_Up()
    {
        var file = TestFile.Random("crash-5", 3 * 1000, 1000);
        var before = Open();
        for (int n = 1; n <= file.TotalChunks; n++)
            await before.StoreAsync(file, n);
        await before.WaitForCompleteAsync(file);
        before.Dispose();

        // Put the disk back to "every byte journaled, completion not started": the record receiving, the file in place.
        string hash = EngineHarness.Hash(file);
        File.Move(before.Layout.CompletedPath(hash), before.Layout.PartPath(hash));
        var record = JsonNode.Parse(await File.ReadAllTextAsync(before.Layout.RecordPath(hash)))!.AsObject();
        record["state"] = "Receiving";
        record.Remove("sha256");
        record.Remove("completedAt");
        await File.WriteAllTextAsync(before.Layout.RecordPath(hash), record.ToJsonString());
        await File.WriteAllBytesAsync(before.Layout.JournalPath(hash), [.. BitConverter.GetBytes(0L), .. BitConverter.GetBytes(3000L)]);

        var after = Open();
        await after.WaitForCompleteAsync(file);
        await AssertCompleteAsync(after, file);
    }

    [Fact]
    public async Task Client_Disconnect_Mid_Chunk_Leaves_Nothing_Counted_As_Stored()
    {
        var file = TestFile.Random("drop-1", 3 * 4096, 4096);
        var engine = Open();
        var body = new FailingStream(file.Slice(2).ToArray(), failAfter: 1000);
        await Assert.ThrowsAsync<IOException>(() => engine.StoreAsync(file, 2, body));

        Assert.False(await engine.IsStoredAsync(file, 2));
        Assert.Empty(Directory.EnumerateFiles(engine.Layout.Temp));
        Assert.False(File.Exists(engine.Layout.JournalPath(EngineHarness.Hash(file))));
        engine.Dispose();

        var restarted = Open();
        Assert.False(await restarted.IsStoredAsync(file, 2));
    }

    [Fact]
    public async Task Free_Space_Floor_Refuses_New_Files_With_507()
    {
        var file = TestFile.Random("full-1", 4096, 1024);
        var engine = Open(o => o.MinFreeSpace = long.MaxValue / 2);
        var ex = await Assert.ThrowsAsync<UploadException>(() => engine.StoreAsync(file, 1));
        Assert.Equal(507, ex.Error.Status);
        Assert.Equal("insufficient_storage", ex.Error.Code);
        Assert.NotNull(ex.RetryAfterSeconds);
        Assert.Empty(Directory.EnumerateFileSystemEntries(engine.Layout.Sessions));
    }

    private static async Task AssertCompleteAsync(EngineHarness harness, TestFile file)
    {
        var snapshot = (await harness.Engine.FindAsync(EngineHarness.Caller, file.Identifier, CancellationToken.None))!;
        Assert.Equal("complete", snapshot.WireState);
        Assert.Equal(file.Sha256, snapshot.Record.Sha256);
        var completed = (await harness.Engine.OpenCompletedAsync(EngineHarness.Caller, file.Identifier, CancellationToken.None))!.Value;
        Assert.Equal(file.Data, File.ReadAllBytes(completed.Data.PhysicalPath!));
        var workFiles = Directory.EnumerateFileSystemEntries(harness.Layout.Sessions, "*", SearchOption.AllDirectories)
            .Where(p => !p.EndsWith("session.json", StringComparison.Ordinal) && !Directory.Exists(p))
            .Concat(Directory.EnumerateFiles(harness.Layout.Parts))
            .Concat(Directory.EnumerateFiles(harness.Layout.Temp));
        Assert.Empty(workFiles);
    }

    private sealed class FailingStream(byte[] data, int failAfter) : Stream
    {
        private int _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_position >= failAfter)
                throw new IOException("The client went away.");
            int n = Math.Min(Math.Min(count, failAfter - _position), data.Length - _position);
            Array.Copy(data, _position, buffer, offset, n);
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
