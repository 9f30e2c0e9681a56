using ChunkUpload.Core;
using ChunkUpload.Core.Storage;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Services;

/// <summary>
/// Opens the store before the server takes requests (recovering sessions and queueing interrupted assembly), then
/// runs the assembler: one loop per worker draining the assembly queue.
/// </summary>
public sealed class StorageService : BackgroundService
{
    private readonly UploadStore _store;
    private readonly ChunkAssembler _assembler;
    private readonly int _workers;

    public StorageService(UploadStore store, ChunkAssembler assembler, IOptions<UploadOptions> options)
    {
        _store = store;
        _assembler = assembler;
        _workers = options.Value.AssemblyWorkers;
    }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        _store.Open();
        return base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(Enumerable.Range(0, _workers).Select(_ => Task.Run(() => _assembler.RunAsync(stoppingToken), stoppingToken)));
}
