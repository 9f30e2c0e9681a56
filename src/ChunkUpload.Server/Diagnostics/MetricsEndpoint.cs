using System.ComponentModel.DataAnnotations;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using ChunkUpload.Core;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Errors;
using ChunkUpload.Server.Http;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Prometheus;

namespace ChunkUpload.Server.Diagnostics;

/// <summary>
/// Access to <c>/metrics</c>, section <c>Metrics</c>. On by default and answered only to the networks in
/// <see cref="AllowedNetworks"/> (loopback when none are named), or to a scraper that presents
/// <see cref="ApiKey"/> as <c>Authorization: Bearer …</c>: the metrics tell how busy the server is and how much disk
/// it has left, which is not for anonymous clients.
/// </summary>
public sealed class MetricsOptions
{
    public const string SectionName = "Metrics";

    /// <summary>False: no <c>/metrics</c> endpoint at all (404).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Networks in CIDR form (<c>10.0.0.0/8</c>, <c>::1/128</c>) whose clients may read the metrics; empty: loopback only. <c>0.0.0.0/0</c> and <c>::/0</c> allow everyone.</summary>
    public List<string> AllowedNetworks { get; set; } = [];

    /// <summary>A secret (at least 16 characters) that lets a scraper from any address in.</summary>
    [MinLength(16)]
    public string? ApiKey { get; set; }

    /// <summary>The start-up check: a network that does not parse is named.</summary>
    public string? Problem() =>
        AllowedNetworks.FirstOrDefault(n => !IPNetwork.TryParse(n, out _)) is { } bad
            ? $"Metrics:AllowedNetworks has '{bad}', which is not a network in CIDR form (such as 10.0.0.0/8 or ::1/128)."
            : null;
}

/// <summary>The Prometheus endpoint: access control, then the gauges of the moment, then the registry in the text format.</summary>
public static class MetricsEndpoint
{
    public static readonly UploadError MetricsForbidden = new("metrics_forbidden", 403, "The metrics are not available to this client");

    private static readonly IPNetwork[] Loopback = [IPNetwork.Parse("127.0.0.0/8"), IPNetwork.Parse("::1/128")];

    public static async Task Export(HttpContext context, UploadMetrics metrics, UploadEngine engine, ICompletionOutbox outbox,
        IOptions<UploadOptions> uploadOptions, IOptionsMonitor<MetricsOptions> metricsOptions)
    {
        var access = metricsOptions.CurrentValue;
        if (!IsAllowed(context, access))
        {
            UploadMetrics.Rejected(context, MetricsForbidden);
            await Problems.From(MetricsForbidden, access.ApiKey is null
                ? "The metrics are served to the networks in Metrics:AllowedNetworks (loopback by default) only."
                : "Send the scraper's key as Authorization: Bearer …, or ask from a network in Metrics:AllowedNetworks.").ExecuteAsync(context);
            return;
        }

        await metrics.UpdateGaugesAsync(engine, outbox, uploadOptions.Value, context.RequestAborted);
        context.Response.ContentType = UploadMetrics.ContentType;
        context.Response.Headers.CacheControl = "no-store";
        await metrics.Registry.CollectAndExportAsTextAsync(context.Response.Body, ExpositionFormat.PrometheusText, context.RequestAborted);
    }

    public static bool IsAllowed(HttpContext context, MetricsOptions options)
    {
        if (options.ApiKey is { Length: > 0 } key && PresentedKey(context) is { } presented
            && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), SHA256.HashData(Encoding.UTF8.GetBytes(key))))
            return true;
        if (context.Connection.RemoteIpAddress is not { } address)
            return false;
        if (address.IsIPv4MappedToIPv6)
            address = address.MapToIPv4();
        IEnumerable<IPNetwork> networks = options.AllowedNetworks.Count == 0
            ? Loopback
            : options.AllowedNetworks.Select(n => IPNetwork.TryParse(n, out var network) ? network : (IPNetwork?)null).OfType<IPNetwork>();
        return networks.Any(n => n.Contains(address));
    }

    private static string? PresentedKey(HttpContext context)
    {
        string? header = context.Request.Headers[HeaderNames.Authorization];
        const string bearer = "Bearer ";
        return header is { Length: > 7 } && header.StartsWith(bearer, StringComparison.OrdinalIgnoreCase) ? header[bearer.Length..].Trim() : null;
    }
}
