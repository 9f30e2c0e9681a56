using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>
/// Gives an in-process request the peer address a test names in <c>X-Test-Peer</c> (TestServer has none), ahead of
/// every middleware of the server: as if the TCP connection came from there.
/// </summary>
public sealed class TestPeerAddress : IStartupFilter
{
    public const string Header = "X-Test-Peer";

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use((context, nextMiddleware) =>
        {
            if (context.Request.Headers.TryGetValue(Header, out var peer))
                context.Connection.RemoteIpAddress = IPAddress.Parse(peer.ToString());
            return nextMiddleware(context);
        });
        next(app);
    };
}
