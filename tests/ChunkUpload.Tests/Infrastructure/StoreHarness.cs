using ChunkUpload.Core;
using ChunkUpload.Core.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>The engine without a host: a store, its queue and an assembler that tests drive step by step.</summary>
internal sealed class StoreHarness
{
    public StoreHarness(string root, Action<UploadOptions>? configure = null)
    {
        var options = new UploadOptions { StorageRoot = root, MinFreeSpace = 0 };
        configure?.Invoke(options);
        Queue = new AssemblyQueue();
        Store = new UploadStore(Options.Create(options), Queue, TimeProvider.System, NullLogger<UploadStore>.Instance);
        Assembler = new ChunkAssembler(Store, Queue);
        Store.Open();
    }

    public AssemblyQueue Queue { get; }
    public UploadStore Store { get; }
    public ChunkAssembler Assembler { get; }

    public static ChunkDescriptor Describe(TestFile file, int chunk) => new()
    {
        Identifier = file.Identifier,
        FileName = file.Name,
        TotalSize = file.Data.LongLength,
        ChunkSize = file.ChunkSize,
        ChunkNumber = chunk,
        TotalChunks = file.TotalChunks,
    };

    public Task<ChunkReceipt> StoreAsync(TestFile file, int chunk) =>
        Store.StoreChunkAsync("", Describe(file, chunk), new MemoryStream(file.Slice(chunk).ToArray()), CancellationToken.None);

    /// <summary>Runs the assembler over whatever is queued, writing at most <paramref name="maxPieces"/> chunks per session.</summary>
    public async Task AssembleQueuedAsync(int maxPieces = int.MaxValue)
    {
        while (Queue.Count > 0)
        {
            var session = await Queue.DequeueAsync(CancellationToken.None);
            await Assembler.ProcessAsync(session, maxPieces, CancellationToken.None);
        }
    }
}
