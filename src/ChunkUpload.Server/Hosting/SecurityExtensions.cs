using System.Globalization;
using System.Threading.RateLimiting;
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

        builder.Services.AddRateLimiter(options =>
        {
            options.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
            {
                var limits = context.RequestServices.GetRequiredService<IOptions<RateLimitOptions>>().Value;
                if (limits.TokensPerPeriod == 0)
                    return RateLimitPartition.GetNoLimiter("off");
                return RateLimitPartition.GetTokenBucketLimiter(Principals.ClientOf(context), _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = limits.BurstLimit,
                    TokensPerPeriod = limits.TokensPerPeriod,
                    ReplenishmentPeriod = limits.Period,
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
            options.OnRejected = async (context, cancellationToken) =>
            {
                int seconds = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter)
                    ? (int)Math.Ceiling(retryAfter.TotalSeconds)
                    : 1;
                Diagnostics.UploadMetrics.Rejected(context.HttpContext, SecurityErrors.RateLimited);
                await Problems.For(context.HttpContext, SecurityErrors.RateLimited,
                    string.Create(CultureInfo.InvariantCulture, $"Too many requests from you; wait {seconds} s before sending more."),
                    Math.Max(1, seconds)).ExecuteAsync(context.HttpContext);
            };
        });
        return builder;
    }

    public static WebApplication UseChunkUploadSecurity(this WebApplication app)
    {
        app.UseAuthentication();
        app.UseRateLimiter();
        app.UseAuthorization();
        return app;
    }

    /// <summary>Requires credentials on an endpoint group when <c>Auth:Enabled</c> is on.</summary>
    public static TBuilder RequireUploadCredentials<TBuilder>(this TBuilder builder, IConfiguration configuration)
        where TBuilder : IEndpointConventionBuilder =>
        configuration.GetValue("Auth:Enabled", false) ? builder.RequireAuthorization() : builder;
}
