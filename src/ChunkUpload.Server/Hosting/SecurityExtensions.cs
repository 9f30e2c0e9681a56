using System.Globalization;
using ChunkUpload.Core.Hooks;
using ChunkUpload.Server.Http;
using ChunkUpload.Server.Security;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Hosting;

/// <summary>Authentication (optional), the authorization callback (optional) and the request-rate limiter.</summary>
public static class SecurityExtensions
{
    public static WebApplicationBuilder AddChunkUploadSecurity(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<AuthOptions>()
            .BindConfiguration(AuthOptions.SectionName)
            .ValidateDataAnnotations()
            .Validate(o => !o.Enabled || o.ApiKeys.Count > 0 || o.TokenSigningKey is { Length: >= 32 },
                "Auth:Enabled needs Auth:ApiKeys or an Auth:TokenSigningKey of at least 32 characters.")
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
        return Problems.For(context, SecurityErrors.RateLimited,
            string.Create(CultureInfo.InvariantCulture, $"Too many requests from you; wait {seconds} s before sending more."),
            seconds).ExecuteAsync(context);
    }

    /// <summary>Requires credentials on an endpoint group when <c>Auth:Enabled</c> is on.</summary>
    public static TBuilder RequireUploadCredentials<TBuilder>(this TBuilder builder, IConfiguration configuration)
        where TBuilder : IEndpointConventionBuilder =>
        configuration.GetValue("Auth:Enabled", false) ? builder.RequireAuthorization() : builder;
}
