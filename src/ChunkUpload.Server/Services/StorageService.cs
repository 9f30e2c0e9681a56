using ChunkUpload.Core;
using ChunkUpload.Core.Engine;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Services;

/// <summary>
/// Opens the engine before the server takes requests (recovering uploads and queueing interrupted assembly), then
/// runs the assembler: one loop per worker draining the assembly queue.
/// </summary>
public sealed class StorageService(UploadEngine engine, IOptions<UploadOptions> options) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await engine.OpenAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(Enumerable.Range(0, options.Value.AssemblyWorkers).Select(_ => Task.Run(() => engine.RunAssemblerAsync(stoppingToken), stoppingToken)));
}
