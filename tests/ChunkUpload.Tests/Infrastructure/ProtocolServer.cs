using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>
/// An in-process server for the byte-range protocols (Google-style, nginx, append): its client follows no redirects
/// (a 308 is an answer there), and request bodies can be watched and broken off (<see cref="SendBrokenAsync"/>).
/// Usable as a class fixture: tests that share it use ids of their own.
/// </summary>
public sealed class ProtocolServer : IDisposable
{
    public ProtocolServer()
        : this(null)
    {
    }

    private ProtocolServer(IDictionary<string, string?>? settings, TimeProvider? clock = null)
    {
        Dir = new TempDirectory();
        App = new ChunkUploadApplication(Dir.StorageRoot, settings, services =>
        {
            services.AddSingleton<IStartupFilter>(Bodies);
            if (clock is not null)
                services.AddSingleton(clock);
        });
        Http = App.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        Uploads = new UploadClient(Http);
    }

    public static ProtocolServer With(IDictionary<string, string?>? settings, TimeProvider? clock = null) => new(settings, clock);

    public TempDirectory Dir { get; }

    public ChunkUploadApplication App { get; }

    public BodyObserver Bodies { get; } = new();

    public HttpClient Http { get; }

    /// <summary>/uploads/{id} and /files/{id}.</summary>
    public UploadClient Uploads { get; }

    /// <summary>
    /// Sends <paramref name="request"/> with <paramref name="data"/> as its announced body, and goes away once the server
    /// has read the first <paramref name="breakAfter"/> bytes; returns when the server has finished with the request.
    /// </summary>
    public async Task SendBrokenAsync(HttpRequestMessage request, byte[] data, int breakAfter)
    {
        string tag = Guid.NewGuid().ToString("N");
        var watched = Bodies.Watch(tag, breakAfter);
        var content = new BreakingContent(data, breakAfter);
        foreach (var header in request.Content?.Headers ?? Enumerable.Empty<KeyValuePair<string, IEnumerable<string>>>())
        {
            if (!header.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                content.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        request.Content = content;
        request.Headers.Add(BodyObserver.Header, tag);
        using var abandon = new CancellationTokenSource();
        var sending = Http.SendAsync(request, abandon.Token);
        await watched.Read;
        Assert.Equal(breakAfter, watched.Bytes);

        // The client goes away mid-body: the server sees the request aborted, as when a connection drops.
        abandon.Cancel();
        content.Break();
        await watched.Finished;
        try
        {
            using var response = await sending;
            Assert.True((int)response.StatusCode is >= 400 and < 500, $"A broken body was answered {(int)response.StatusCode}.");
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Sends <paramref name="request"/> with <paramref name="data"/> as its announced body and returns once the server has
    /// read the first <paramref name="stallAfter"/> bytes; the request stays open without sending more (a connection
    /// that went quiet, not one that broke). Disposing the result breaks it off and waits until the server is done.
    /// </summary>
    public async Task<StalledRequest> SendStalledAsync(HttpRequestMessage request, byte[] data, int stallAfter)
    {
        string tag = Guid.NewGuid().ToString("N");
        var watched = Bodies.Watch(tag, stallAfter);
        var content = new BreakingContent(data, stallAfter);
        foreach (var header in request.Content?.Headers ?? Enumerable.Empty<KeyValuePair<string, IEnumerable<string>>>())
        {
            if (!header.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                content.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        request.Content = content;
        request.Headers.Add(BodyObserver.Header, tag);
        var abandon = new CancellationTokenSource();
        var stalled = new StalledRequest(watched, content, abandon, Http.SendAsync(request, abandon.Token));
        await watched.Read;
        Assert.Equal(stallAfter, watched.Bytes);
        return stalled;
    }

    public async Task<HttpStatusCode> UploadStatusCodeAsync(string id)
    {
        using var response = await Http.GetAsync("/uploads/" + Uri.EscapeDataString(id));
        return response.StatusCode;
    }

    public async Task<byte[]> DownloadAsync(string id) => await Http.GetByteArrayAsync("/files/" + Uri.EscapeDataString(id));

    public void Dispose()
    {
        Http.Dispose();
        App.Dispose();
        Dir.Dispose();
    }
}

/// <summary>A request left open by <see cref="ProtocolServer.SendStalledAsync"/>.</summary>
public sealed class StalledRequest(BodyObserver.WatchedRequest watched, BreakingContent content, CancellationTokenSource abandon, Task<HttpResponseMessage> response)
    : IAsyncDisposable
{
    /// <summary>Completes when the server has finished with the request (fails the test after 30 s).</summary>
    public Task Finished => watched.Finished;

    public async ValueTask DisposeAsync()
    {
        await abandon.CancelAsync();
        content.Break();
        await watched.Finished;
        try
        {
            (await response).Dispose();
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
        {
        }

        abandon.Dispose();
    }
}
