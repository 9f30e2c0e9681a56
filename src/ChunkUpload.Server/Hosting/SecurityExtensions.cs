using System.Globalization;
using ChunkUpload.Core.Hooks;
using ChunkUpload.Server.Http;
using ChunkUpload.Server.Security;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace ChunkUpload.Server.Hosting;

/// <summary>Authentication (optional), the authorization callback (optional) and the request-rate limiter.</summary>
public static partial class SecurityExtensions
{
    public static WebApplicationBuilder AddChunkUploadSecurity(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<AuthOptions>()
            .BindConfiguration(AuthOptions.SectionName)
            .ValidateDataAnnotations()
            .Validate(o => !o.Enabled || o.ApiKeys.Count > 0 || o.TokenSigningKey is { Length: >= 32 },
                "Auth:Enabled needs Auth:ApiKeys or an Auth:TokenSigningKey of at least 32 characters.")
            .Validate(o => o.MaxTokenLifetime > TimeSpan.Zero, "Auth:MaxTokenLifetime must be positive.")
            .Validate(o => o.ExpiredTokenGrace >= TimeSpan.Zero && o.ExpiredTokenGrace <= AuthOptions.MaxExpiredTokenGrace,
                "Auth:ExpiredTokenGrace must be from 00:00:00 (off) to 7.00:00:00.")
            .Validate(o => o.TokenSigningKey is null or { Length: >= 32 }, "Auth:TokenSigningKey must be at least 32 characters.")
            .Validate(o => o.ApiKeys.All(k => k.Key.Length >= 16 && k.Owner.Length > 0), "Each Auth:ApiKeys entry needs a Key of at least 16 characters and an Owner.")
            .ValidateOnStart();
        builder.Services.AddOptions<RateLimitOptions>()
            .BindConfiguration(RateLimitOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();

        builder.Services.AddAuthentication(ChunkUploadAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ChunkUploadAuthenticationHandler>(ChunkUploadAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorization();

        if (builder.Configuration.GetValue<Uri?>("Auth:AuthorizationUrl") is not null)
            builder.Services.AddHttpClient<IUploadAuthorizer, HttpCallbackAuthorizer>();

        builder.Services.AddSingleton<ClientRateLimiter>();
        return builder;
    }

    public static WebApplication UseChunkUploadSecurity(this WebApplication app)
    {
        app.Lifetime.ApplicationStarted.Register(() => WarnWhenOpen(app));
        if (app.Services.GetRequiredService<IOptions<AuthOptions>>().Value.Enabled)
            app.Use(ChallengeEvery401);
        app.UseAuthentication();
        app.Use(LimitRateAsync);
        app.UseAuthorization();
        return app;
    }

    // After authentication, so a principal counts as itself wherever it connects from.
    private static Task LimitRateAsync(HttpContext context, RequestDelegate next)
    {
        var limiter = context.RequestServices.GetRequiredService<ClientRateLimiter>();
        if (!limiter.Enabled || limiter.TryAcquire(Principals.ClientOf(context), out var retryAfter))
            return next(context);
        int seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
        Diagnostics.UploadMetrics.Rejected(context, SecurityErrors.RateLimited);
        return Problems.For(context, SecurityErrors.RateLimited,
            string.Create(CultureInfo.InvariantCulture, $"Too many requests from you; wait {seconds} s before sending more."),
            seconds).ExecuteAsync(context);
    }

    // A 401 says how to authenticate (RFC 9110 15.5.2), also when the engine or a protocol's filter refuses expired
    // credentials (an expired token in its grace that tries to start an upload) after authentication let them in.
    private static Task ChallengeEvery401(HttpContext context, RequestDelegate next)
    {
        context.Response.OnStarting(static state =>
        {
            var response = (HttpResponse)state;
            if (response.StatusCode == StatusCodes.Status401Unauthorized && !response.Headers.ContainsKey(HeaderNames.WWWAuthenticate))
                response.Headers.WWWAuthenticate = ChunkUploadAuthenticationHandler.Challenge;
            return Task.CompletedTask;
        }, context.Response);
        return next(context);
    }

    /// <summary>Requires credentials on an endpoint group when <c>Auth:Enabled</c> is on.</summary>
    public static TBuilder RequireUploadCredentials<TBuilder>(this TBuilder builder, IConfiguration configuration)
        where TBuilder : IEndpointConventionBuilder =>
        configuration.GetValue("Auth:Enabled", false) ? builder.RequireAuthorization() : builder;

    private static void WarnWhenOpen(WebApplication app)
    {
        bool guarded = app.Services.GetRequiredService<IOptions<AuthOptions>>().Value.Enabled;
        var addresses = app.Services.GetService<IServer>()?.Features.Get<IServerAddressesFeature>()?.Addresses;
        var listening = (addresses is { Count: > 0 }
            ? addresses
            : (app.Configuration["urls"] ?? HostingExtensions.DefaultUrl).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
        var exposed = NonLoopback(listening).ToList();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(SecurityExtensions).FullName!);
        if (!guarded && exposed.Count > 0)
            LogOpenToTheNetwork(logger, exposed);
        else
            LogExposure(logger, guarded, listening);
    }

    /// <summary>The listening URLs that reach beyond this machine (a wildcard host, or an address other than loopback).</summary>
    public static IEnumerable<string> NonLoopback(IEnumerable<string> urls)
    {
        foreach (string url in urls)
        {
            int scheme = url.IndexOf("://", StringComparison.Ordinal);
            string rest = scheme < 0 ? url : url[(scheme + 3)..];
            int end = rest.IndexOf('/', StringComparison.Ordinal);
            string authority = end < 0 ? rest : rest[..end];
            string host = authority.StartsWith('[') ? authority[1..Math.Max(1, authority.IndexOf(']', StringComparison.Ordinal))]
                : authority.Contains(':', StringComparison.Ordinal) ? authority[..authority.LastIndexOf(':')] : authority;
            bool loopback = host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
                || (System.Net.IPAddress.TryParse(host, out var address) && System.Net.IPAddress.IsLoopback(address));
            if (!loopback)
                yield return url;
        }
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Warning, Message = "Access control is off (Auth:Enabled=false) and the server listens beyond this machine ({Urls}): anyone who reaches it can upload, download and delete files. Turn Auth:Enabled on, or listen on localhost behind a proxy that authenticates.")]
    private static partial void LogOpenToTheNetwork(ILogger logger, IReadOnlyList<string> urls);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "Access control on: {Enabled}; listening on {Urls}")]
    private static partial void LogExposure(ILogger logger, bool enabled, IReadOnlyList<string> urls);
}
