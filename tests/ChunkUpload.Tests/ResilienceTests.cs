using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Hooks;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// The background work never gives up and never lies: a fault while publishing a completed file is retried without a
/// restart, a bug in a batch or an observer does not stop the assembler, and a completion that races a DELETE
/// announces nothing.
/// </summary>
public sealed class ResilienceTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly List<EngineHarness> _engines = [];

    public void Dispose()
    {
        foreach (var engine in _engines)
            engine.Dispose();
        _dir.Dispose();
    }

    private EngineHarness Open(IUploadHooks? hooks = null, Func<IUploadDataStore, IUploadDataStore>? wrap = null)
    {
        var engine = new EngineHarness(_dir.StorageRoot, o => o.RecordCompletionEvents = true, hooks, wrap);
        _engines.Add(engine);
        return engine;
    }

    private static WriteOptions Whole(long length) => new() { Protocol = EngineHarness.Protocol, ExpectedLength = length };

    [Fact]
    public async Task A_Completion_Whose_Publication_Fails_Once_Completes_Without_A_Restart()
    {
        // The record is marked complete, then flushing the completed folder fails (a directory fsync error).
        FaultyData? faulty = null;
        var harness = Open(wrap: inner => faulty = new FaultyData(inner) { FailPublish = 1 });
        var file = TestFile.Random("publish-fault", 5000, 1000);
        for (int n = 1; n <= file.TotalChunks; n++)
            await harness.StoreAsync(file, n);

        var done = await harness.WaitForCompleteAsync(file);
        Assert.Equal(file.Sha256, done.Record.Sha256);
        Assert.Equal(file.Data, await harness.ReadCompletedAsync(file.Identifier));
        Assert.Equal(2, faulty!.PublishCalls); // the failed one, then the retry
        Assert.Single(await ((ICompletionOutbox)harness.Metadata).PendingAsync(CancellationToken.None)); // announced once
    }

    [Fact]
    public async Task A_Bug_In_A_Batch_Fails_Only_That_Batch_And_The_Assembler_Goes_On()
    {
        var harness = Open(wrap: inner => new FaultyData(inner) { FailCommit = 1 });
        var file = TestFile.Random("batch-bug", 3000, 1000);
        var refused = await Assert.ThrowsAsync<UploadException>(() => harness.StoreAsync(file, 1));
        Assert.Equal("storage_unavailable", refused.Error.Code); // 503: the client sends it again
        Assert.NotNull(refused.RetryAfterSeconds);

        for (int n = 1; n <= file.TotalChunks; n++)
            await harness.StoreAsync(file, n);
        Assert.Equal(file.Sha256, (await harness.WaitForCompleteAsync(file)).Record.Sha256);
    }

    [Fact]
    public async Task An_Observer_That_Throws_Does_Not_Stop_Completions()
    {
        var harness = Open(hooks: new UploadHooks(observers: [new ThrowingObserver()]));
        foreach (var name in new[] { "observer-1", "observer-2" })
        {
            var file = TestFile.Random(name, 2000, 1000);
            for (int n = 1; n <= file.TotalChunks; n++)
                await harness.StoreAsync(file, n);
            Assert.Equal(file.Sha256, (await harness.WaitForCompleteAsync(file)).Record.Sha256);
        }
    }

    [Fact]
    public async Task A_Delete_During_Completion_Wins_And_Nothing_Is_Announced()
    {
        var authorizer = new BlockingAuthorizer();
        var harness = Open(hooks: new UploadHooks(authorizer));
        var file = TestFile.Random("delete-race", 2000, 1000);
        for (int n = 1; n <= file.TotalChunks; n++)
            await harness.StoreAsync(file, n);

        // Completion is under way (asking the application about the finished file) when the DELETE comes.
        await authorizer.Asked.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var delete = harness.Engine.DeleteAsync(EngineHarness.Caller, file.Identifier, CancellationToken.None);
        authorizer.Release.TrySetResult();
        Assert.True(await delete);

        Assert.Null(await harness.Engine.FindAsync(EngineHarness.Caller, file.Identifier, CancellationToken.None));
        Assert.Empty(await ((ICompletionOutbox)harness.Metadata).PendingAsync(CancellationToken.None));
        Assert.Empty(Directory.EnumerateFiles(harness.Layout.Completed));
    }

    private sealed class ThrowingObserver : IUploadObserver
    {
        public void Completed(UploadRecord upload) => throw new InvalidOperationException("an observer's bug");
    }

    private sealed class BlockingAuthorizer : IUploadAuthorizer
    {
        public TaskCompletionSource Asked { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task AuthorizeAsync(UploadAuthorization request, CancellationToken cancellationToken)
        {
            if (request.Event != UploadEvent.Complete)
                return;
            Asked.TrySetResult();
            await Release.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>A data store that fails on purpose: the first N commits with a bug, the first N publications with a disk fault.</summary>
    private sealed class FaultyData(IUploadDataStore inner) : DelegatingDataStore(inner)
    {
        private int _commits;
        private int _publishes;

        public int FailCommit { get; init; }

        public int FailPublish { get; init; }

        public int PublishCalls => Volatile.Read(ref _publishes);

        public override Task CommitAsync(UploadRecord upload, IReadOnlyList<PieceCommit> commits, CancellationToken cancellationToken) =>
            Interlocked.Increment(ref _commits) <= FailCommit
                ? throw new NotSupportedException("a bug in the data store")
                : Inner.CommitAsync(upload, commits, cancellationToken);

        public override async Task PublishAsync(UploadRecord upload, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _publishes) <= FailPublish)
            {
                await Inner.PublishAsync(upload, cancellationToken); // the rename happened...
                throw new IOException("Cannot flush directory (errno 5)."); // ...and then the flush failed
            }

            await Inner.PublishAsync(upload, cancellationToken);
        }
    }
}
