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
