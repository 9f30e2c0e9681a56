using System.Globalization;
using System.Net;
using ChunkUpload.Core.Engine;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>tus expiration on a controllable clock: Upload-Expires, then 410 once it passed, then 404 once swept.</summary>
public sealed class TusExpiryTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 11, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly TempDirectory _dir = new();
    private readonly ManualTimeProvider _clock = new(Start);
    private readonly ChunkUploadApplication _app;
    private readonly TusClient _tus;

    public TusExpiryTests()
    {
        _app = new ChunkUploadApplication(_dir.StorageRoot, null, services => services.AddSingleton<TimeProvider>(_clock));
        _tus = TusClient.Of(_app);
    }

    public void Dispose()
    {
        _app.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task An_Unstarted_Upload_Expires_After_15_Minutes_With_410_Then_404_Once_Swept()
    {
        string location;
        using (var created = await _tus.CreateAsync(100))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            Assert.Equal(Start.AddMinutes(15), DateTimeOffset.Parse(TusClient.Header(created, "Upload-Expires")!, CultureInfo.InvariantCulture));
            location = created.Headers.Location!.OriginalString;
        }

        _clock.Advance(TimeSpan.FromMinutes(14));
        Assert.Equal(0, await _tus.OffsetAsync(location));

        _clock.Advance(TimeSpan.FromMinutes(2));
        using (var head = await _tus.HeadAsync(location))
        {
            Assert.Equal(HttpStatusCode.Gone, head.StatusCode);
            Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        }

        using (var patch = await _tus.PatchAsync(location, 0, new byte[10]))
        {
            Assert.Equal(HttpStatusCode.Gone, patch.StatusCode);
            await ResumableContractTests.AssertProblemAsync(patch, "upload_expired");
        }

        Assert.Equal(1, (await _app.Services.GetRequiredService<UploadEngine>().SweepAsync(CancellationToken.None)).ExpiredUploads);
        using (var head = await _tus.HeadAsync(location))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        using (var patch = await _tus.PatchAsync(location, 0, new byte[10]))
            Assert.Equal(HttpStatusCode.NotFound, patch.StatusCode);
    }

    [Fact]
    public async Task A_Started_Upload_Expires_Seven_Days_After_Its_Last_Bytes()
    {
        string location = await _tus.CreateUploadAsync(100);
        _clock.Advance(TimeSpan.FromMinutes(10));
        using (var patch = await _tus.PatchAsync(location, 0, new byte[10]))
        {
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
            Assert.Equal(_clock.GetUtcNow().AddDays(7), DateTimeOffset.Parse(TusClient.Header(patch, "Upload-Expires")!, CultureInfo.InvariantCulture));
        }

        _clock.Advance(TimeSpan.FromDays(6));
        Assert.Equal(10, await _tus.OffsetAsync(location));
        Assert.Equal(0, (await _app.Services.GetRequiredService<UploadEngine>().SweepAsync(CancellationToken.None)).ExpiredUploads);

        _clock.Advance(TimeSpan.FromDays(1) + TimeSpan.FromMinutes(1));
        using (var head = await _tus.HeadAsync(location))
            Assert.Equal(HttpStatusCode.Gone, head.StatusCode);
        using (var delete = await _tus.DeleteAsync(location))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode); // termination of an expired upload removes it at once
        using (var head = await _tus.HeadAsync(location))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
    }
}
