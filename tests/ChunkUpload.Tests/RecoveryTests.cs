using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Storage;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// Crashes modelled on the disk: the engine is abandoned at a chosen step and a new one opens the same root, as a
/// restarted process would. Nothing acknowledged is lost; nothing half-written counts as stored.
/// </summary>
public sealed class RecoveryTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string SessionDirectory(TestFile file) => Path.Combine(_dir.StorageRoot, "sessions", UploadStore.KeyOf("", file.Identifier));

    [Fact]
    public async Task Crash_In_The_Middle_Of_Assembly_Is_Recovered_At_Start_Up()
    {
        var file = TestFile.Random("crash-1", 10 * 4096 + 100, 4096);
        var before = new StoreHarness(_dir.StorageRoot);
        foreach (int n in new[] { 4, 1, 9, 2, 10, 3, 5, 8, 6, 7 })
            await before.StoreAsync(file, n);
        await before.AssembleQueuedAsync(maxPieces: 3); // three chunks in data.part and the journal, seven still as chunk files

        var journal = Path.Combine(SessionDirectory(file), "assembled.journal");
        Assert.Equal(3 * 16, new FileInfo(journal).Length);

        var after = new StoreHarness(_dir.StorageRoot);
        Assert.Equal(1, after.Queue.Count);
        await after.AssembleQueuedAsync();
        AssertComplete(after, file);
    }

    [Fact]
    public async Task Torn_Journal_Stray_Temp_Files_And_Unfinished_Session_Folders_Are_Cleaned_Up()
    {
        var file = TestFile.Random("crash-2", 6 * 1000, 1000);
        var before = new StoreHarness(_dir.StorageRoot);
        for (int n = 1; n <= file.TotalChunks; n++)
            await before.StoreAsync(file, n);
        await before.AssembleQueuedAsync(maxPieces: 2);

        File.AppendAllBytes(Path.Combine(SessionDirectory(file), "assembled.journal"), [1, 2, 3, 4, 5]); // crash mid-append
        File.WriteAllBytes(Path.Combine(_dir.StorageRoot, "tmp", "half-written-chunk"), new byte[123]);
        Directory.CreateDirectory(Path.Combine(_dir.StorageRoot, "sessions", "0123456789abcdef0123456789abcdef"));

        var after = new StoreHarness(_dir.StorageRoot);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_dir.StorageRoot, "tmp")));
        Assert.False(Directory.Exists(Path.Combine(_dir.StorageRoot, "sessions", "0123456789abcdef0123456789abcdef")));
        await after.AssembleQueuedAsync();
        AssertComplete(after, file);
    }

    [Fact]
    public async Task Bytes_Written_To_The_File_Before_The_Journal_Are_Rewritten_After_A_Crash()
    {
        var file = TestFile.Random("crash-3", 4 * 1000, 1000);
        var before = new StoreHarness(_dir.StorageRoot);
        for (int n = 1; n <= file.TotalChunks; n++)
            await before.StoreAsync(file, n);

        // Garbage where chunk 3 goes, as if the crash came mid-copy before its journal record.
        using (var data = File.OpenHandle(Path.Combine(SessionDirectory(file), "data.part"), FileMode.Open, FileAccess.Write))
            RandomAccess.Write(data, new byte[1000], 2000);

        var after = new StoreHarness(_dir.StorageRoot);
        await after.AssembleQueuedAsync();
        AssertComplete(after, file);
    }

    [Fact]
    public async Task Crash_Between_Marking_Complete_And_Moving_The_File_Is_Finished_At_Start_Up()
    {
        var file = TestFile.Random("crash-4", 3 * 1000, 1000);
        var before = new StoreHarness(_dir.StorageRoot);
        for (int n = 1; n <= file.TotalChunks; n++)
            await before.StoreAsync(file, n);
        await before.AssembleQueuedAsync();

        // session.json says complete but the rename into completed/ did not happen.
        string completed = Path.Combine(_dir.StorageRoot, "completed", UploadStore.KeyOf("", file.Identifier));
        File.Move(completed, Path.Combine(SessionDirectory(file), "data.part"));

        var after = new StoreHarness(_dir.StorageRoot);
        AssertComplete(after, file);
        Assert.True(after.Store.IsChunkStored("", StoreHarness.Describe(file, 2)));
    }

    [Fact]
    public async Task Client_Disconnect_Mid_Chunk_Leaves_Nothing_Counted_As_Stored()
    {
        var file = TestFile.Random("drop-1", 3 * 4096, 4096);
        var harness = new StoreHarness(_dir.StorageRoot);
        var body = new FailingStream(file.Slice(2).ToArray(), failAfter: 1000);
        await Assert.ThrowsAsync<IOException>(() =>
            harness.Store.StoreChunkAsync("", StoreHarness.Describe(file, 2), body, CancellationToken.None));

        Assert.False(harness.Store.IsChunkStored("", StoreHarness.Describe(file, 2)));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_dir.StorageRoot, "tmp")));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(SessionDirectory(file), "chunks")));

        var restarted = new StoreHarness(_dir.StorageRoot);
        Assert.False(restarted.Store.IsChunkStored("", StoreHarness.Describe(file, 2)));
    }

    [Fact]
    public async Task Free_Space_Floor_Refuses_New_Files_With_507()
    {
        var file = TestFile.Random("full-1", 4096, 1024);
        var harness = new StoreHarness(_dir.StorageRoot, o => o.MinFreeSpace = long.MaxValue / 2);
        var ex = await Assert.ThrowsAsync<UploadException>(() => harness.StoreAsync(file, 1));
        Assert.Equal(507, ex.Error.Status);
        Assert.Equal("insufficient_storage", ex.Error.Code);
        Assert.NotNull(ex.RetryAfterSeconds);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(_dir.StorageRoot, "sessions")));
    }

    private static void AssertComplete(StoreHarness harness, TestFile file)
    {
        var status = harness.Store.GetStatus("", file.Identifier)!;
        Assert.Equal("complete", status.State);
        Assert.Equal(file.Sha256, status.Sha256);
        var completed = harness.Store.GetCompletedFile("", file.Identifier)!;
        Assert.Equal(file.Data, File.ReadAllBytes(completed.Path));
        var sessionDir = Path.GetDirectoryName(Path.GetDirectoryName(completed.Path))!;
        var workFiles = Directory.EnumerateFileSystemEntries(Path.Combine(sessionDir, "sessions"), "*", SearchOption.AllDirectories)
            .Where(p => !p.EndsWith("session.json", StringComparison.Ordinal) && !Directory.Exists(p));
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
