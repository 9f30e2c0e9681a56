namespace ChunkUpload.Tests.Infrastructure;

/// <summary>A clock whose time moves only when a test says so, while its timers run in real time (FakeTimeProvider, from
/// Microsoft.Extensions.TimeProvider.Testing, fires timers as it is advanced: for tests that drive a timer).</summary>
public sealed class ManualTimeProvider(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}
