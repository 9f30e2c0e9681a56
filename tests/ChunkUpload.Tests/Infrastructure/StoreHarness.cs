using ChunkUpload.Core;
using ChunkUpload.Core.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>The engine without a host: a store, its queue and a running assembler. Abandoning one (without
/// <see cref="Dispose"/>) and opening another over the same root is what a crash and a restart look like.</summary>
internal sealed class StoreHarness : IDisposable
{
    private readonly CancellationTokenSource _stop = new();

    public StoreHarness(string root, Action<UploadOptions>? configure = null)
    {
        var options = new UploadOptions { StorageRoot = root, MinFreeSpace = 0 };
        configure?.Invoke(options);
        Queue = new AssemblyQueue();
        Store = new UploadStore(Options.Create(options), Queue, TimeProvider.System, NullLogger<UploadStore>.Instance);
        Assembler = new ChunkAssembler(Store, Queue);
        Store.Open();
        _ = Task.Run(() => Assembler.RunAsync(_stop.Token));
    }

    public void Dispose() => _stop.Cancel();

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

    public async Task WaitForCompleteAsync(TestFile file)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Store.GetStatus("", file.Identifier)?.State != "complete")
        {
            Assert.True(DateTime.UtcNow < deadline, $"{file.Identifier} did not complete.");
            await Task.Delay(5);
        }
    }
}
