using ChunkUpload.Core;
using ChunkUpload.Core.Storage;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Services;

/// <summary>Runs the store's sweep on a timer driven by the injected <see cref="TimeProvider"/>.</summary>
public sealed partial class SweepService(UploadStore store, TimeProvider time, IOptions<UploadOptions> options, ILogger<SweepService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SweepInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await store.SweepAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    LogSweepFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "Sweep failed; trying again at the next interval")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);
}
