using ChunkUpload.Core;
using ChunkUpload.Core.Engine;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Services;

/// <summary>Runs the engine's sweep on a timer driven by the injected <see cref="TimeProvider"/>.</summary>
public sealed partial class SweepService(UploadEngine engine, TimeProvider time, IOptions<UploadOptions> options, ILogger<SweepService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Often enough that an upload that never received a byte goes within minutes (Upload:UnstartedUploadExpiry).
        var interval = options.Value.SweepInterval < options.Value.UnstartedUploadExpiry ? options.Value.SweepInterval : options.Value.UnstartedUploadExpiry;
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await engine.SweepAsync(stoppingToken);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    // Anything, a cancellation the host did not ask for included (a store's timeout is a
                    // TaskCanceledException): the loop must outlive it, or nothing expires until a restart.
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
