using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Options;
using IPNetwork = System.Net.IPNetwork;

namespace ChunkUpload.Server.Hosting;

/// <summary>
/// Trusted reverse proxies, section <c>ForwardedHeaders</c> (ASP.NET Core's <see cref="ForwardedHeadersOptions"/>
/// names; environment: <c>ForwardedHeaders__KnownProxies__0=127.0.0.1</c>, <c>ForwardedHeaders__KnownNetworks__0=10.0.0.0/8</c>).
/// </summary>
public sealed class ForwardedHeadersSettings
{
    public const string SectionName = "ForwardedHeaders";

    /// <summary>Addresses of the proxies whose <c>X-Forwarded-For</c> and <c>X-Forwarded-Proto</c> are believed.</summary>
    public IList<string> KnownProxies { get; } = [];

    /// <summary>Networks (CIDR, <c>10.0.0.0/8</c>) whose proxies are believed.</summary>
    public IList<string> KnownNetworks { get; } = [];

    /// <summary>How many proxy hops (entries from the right of <c>X-Forwarded-For</c>) are taken; 1 for one nginx.</summary>
    public int ForwardLimit { get; set; } = 1;

    public bool Enabled => KnownProxies.Count > 0 || KnownNetworks.Count > 0;

    /// <summary>The start-up check: a value that is not an address or a network stops the server with a sentence saying which.</summary>
    public string? Problem()
    {
        foreach (var proxy in KnownProxies)
        {
            if (!IPAddress.TryParse(proxy, out _))
                return string.Create(CultureInfo.InvariantCulture, $"ForwardedHeaders:KnownProxies: '{proxy}' is not an IP address (e.g. 127.0.0.1 or ::1).");
        }

        foreach (var network in KnownNetworks)
        {
            if (!IPNetwork.TryParse(network, out _))
                return string.Create(CultureInfo.InvariantCulture, $"ForwardedHeaders:KnownNetworks: '{network}' is not a network in CIDR form (e.g. 10.0.0.0/8).");
        }

        return ForwardLimit < 1 ? "ForwardedHeaders:ForwardLimit must be at least 1." : null;
    }
}

/// <summary>
/// Behind a reverse proxy every request comes from the proxy's address over plain HTTP. With trusted proxies
/// configured, the client's address (<c>X-Forwarded-For</c>, which per-client quotas and rate limits use) and scheme
/// (<c>X-Forwarded-Proto</c>, which absolute URLs such as a Google-style session URL use) are taken from the headers,
/// but only on connections from those proxies: anyone else's forwarded headers are ignored. Nothing configured (the
/// default): the headers are ignored from everyone.
/// </summary>
public static class ForwardedHeadersExtensions
{
    public static WebApplicationBuilder AddChunkUploadForwardedHeaders(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<ForwardedHeadersSettings>()
            .BindConfiguration(ForwardedHeadersSettings.SectionName)
            .Validate(o => o.Problem() is null,
                builder.Configuration.GetSection(ForwardedHeadersSettings.SectionName).Get<ForwardedHeadersSettings>()?.Problem()
                ?? "ForwardedHeaders settings are invalid.")
            .ValidateOnStart();
        builder.Services.AddOptions<ForwardedHeadersOptions>().Configure<IOptions<ForwardedHeadersSettings>>((options, settings) =>
        {
            var trusted = settings.Value;
            options.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            options.ForwardLimit = trusted.ForwardLimit;
            // Replace ASP.NET Core's default (loopback) with exactly the configured proxies.
            options.KnownProxies.Clear();
            options.KnownIPNetworks.Clear();
            foreach (var proxy in trusted.KnownProxies)
                options.KnownProxies.Add(IPAddress.Parse(proxy));
            foreach (var network in trusted.KnownNetworks)
                options.KnownIPNetworks.Add(IPNetwork.Parse(network));
        });
        return builder;
    }

    /// <summary>First in the pipeline, so everything after it (quotas, rate limits, logs) sees the client.</summary>
    public static WebApplication UseChunkUploadForwardedHeaders(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (app.Services.GetRequiredService<IOptions<ForwardedHeadersSettings>>().Value.Enabled)
            app.UseForwardedHeaders();
        return app;
    }
}
