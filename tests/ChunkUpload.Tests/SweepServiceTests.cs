using System.Net;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Local;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace ChunkUpload.Tests;

/// <summary>The sweeper's loop (SweepService) on a clock the test moves: a sweep that fails is logged and the next tick sweeps again.</summary>
public sealed class SweepServiceTests : IDisposable
{
    private const int SweepFailedEvent = 3001;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_Sweep_That_Throws_Is_Logged_And_The_Next_Tick_Sweeps_Again_While_The_Host_Serves()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        FaultySweep? data = null;
        using var app = new ChunkUploadApplication(_dir.StorageRoot, new Dictionary<string, string?> { ["Upload:SweepInterval"] = "00:01:00" }, services =>
        {
            services.AddSingleton<TimeProvider>(clock);
            services.AddSingleton<IUploadDataStore>(sp => data = new FaultySweep(ActivatorUtilities.CreateInstance<LocalDataStore>(sp),
                new TaskCanceledException("The request to the object store timed out."), // an OperationCanceledException the host did not ask for
                new InvalidOperationException("a bug in the sweep")));
        });
        var http = app.CreateClient();

        // Each minute on the clock is one tick: the first two sweeps fail, the third finds the store working again.
        for (int tick = 1; tick <= 3; tick++)
        {
            clock.Advance(TimeSpan.FromMinutes(1));
            await WaitUntilAsync(() => data!.Calls >= tick, $"sweep {tick} did not run ({data!.Calls} ran; {app.Logs.Count(SweepFailedEvent, "")} failures logged)");
        }

        await WaitUntilAsync(() => data!.Completed == 1, "the third sweep did not complete");
        Assert.Equal(2, app.Logs.Count(SweepFailedEvent, "Sweep failed"));
        using var alive = await http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure);
            await Task.Delay(10);
        }
    }

    /// <summary>The local data store, whose sweeps throw the given faults one per call before they work.</summary>
    private sealed class FaultySweep(IUploadDataStore inner, params Exception[] faults) : DelegatingDataStore(inner)
    {
        private int _calls;
        private int _completed;

        public int Calls => Volatile.Read(ref _calls);

        public int Completed => Volatile.Read(ref _completed);

        public override async Task<int> SweepAsync(DateTimeOffset cutoff, Func<string, CancellationToken, Task<bool>> isKnown, CancellationToken cancellationToken)
        {
            int call = Interlocked.Increment(ref _calls);
            if (call <= faults.Length)
                throw faults[call - 1];
            int swept = await Inner.SweepAsync(cutoff, isKnown, cancellationToken);
            Interlocked.Increment(ref _completed);
            return swept;
        }
    }
}
