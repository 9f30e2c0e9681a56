using System.Globalization;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using ChunkUpload.Core.Errors;
using ChunkUpload.Server.Http;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Security;

/// <summary>
/// One scheme for both credentials: an API key from configuration, or an upload token signed by the main
/// application. The principal's name owns the uploads it makes; a token's <c>max</c>, <c>ops</c> and <c>upl</c> travel as
/// claims (<see cref="TokenScope"/>), and so does the expiry of a token accepted in its grace after it expired
/// (<see cref="AuthOptions.ExpiredTokenGrace"/>). Failures answer problem+json (401 <c>unauthenticated</c>, 403 <c>forbidden</c>).
/// </summary>
public sealed class ChunkUploadAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    IOptions<AuthOptions> auth,
    TimeProvider time)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ChunkUpload";
    public const string MaxFileSizeClaim = "chunkupload:max_file_size";
    public const string Challenge = "Bearer, ApiKey";
    public const string InvalidTokenMessage = "The upload token is not valid, has expired, or lives longer than this server accepts (Auth:MaxTokenLifetime).";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var settings = auth.Value;
        string? apiKey = Request.Headers["X-Api-Key"].FirstOrDefault();
        string? bearer = null;
        string authorization = Request.Headers.Authorization.ToString();
        if (authorization.StartsWith("ApiKey ", StringComparison.OrdinalIgnoreCase))
            apiKey = authorization["ApiKey ".Length..].Trim();
        else if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            bearer = authorization["Bearer ".Length..].Trim();
        else if (Request.Query.TryGetValue("access_token", out var fromQuery))
        {
            // Only download links carry a token in the URL (URLs end up in logs, histories and Referer headers).
            if (!IsDownload(Request))
                return Task.FromResult(AuthenticateResult.Fail("A token in the query string (access_token) is accepted only for downloads (GET /files/{id}); send it as Authorization: Bearer."));
            bearer = fromQuery.ToString();
        }

        if (apiKey is not null)
        {
            var entry = settings.ApiKeys.FirstOrDefault(k => KeysEqual(k.Key, apiKey));
            return Task.FromResult(entry is null
                ? AuthenticateResult.Fail("The API key is not valid.")
                : Success(entry.Owner, null, null));
        }

        if (bearer is not null)
        {
            if (string.IsNullOrEmpty(settings.TokenSigningKey))
                return Task.FromResult(AuthenticateResult.Fail("This server accepts no upload tokens."));
            var verified = UploadTokens.Verify(settings.TokenSigningKey, bearer, time.GetUtcNow(), settings.MaxTokenLifetime, settings.ExpiredTokenGrace);
            return Task.FromResult(verified is null
                ? AuthenticateResult.Fail(InvalidTokenMessage)
                : Success(verified.Claims.Subject, verified.Claims, verified.ExpiredAt));
        }

        return Task.FromResult(AuthenticateResult.NoResult());
    }

    private static bool IsDownload(HttpRequest request) =>
        (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) && request.Path.StartsWithSegments("/files");

    private static AuthenticateResult Success(string owner, UploadTokenClaims? token, DateTimeOffset? expiredAt)
    {
        var claims = new List<Claim> { new(ClaimTypes.Name, owner) };
        if (token?.MaxFileSize is { } max)
            claims.Add(new Claim(MaxFileSizeClaim, max.ToString(CultureInfo.InvariantCulture)));
        if (token?.Operations is { } operations)
            claims.Add(new Claim(TokenScope.OperationsClaim, string.Join(' ', operations)));
        if (token?.UploadId is { } upload)
            claims.Add(new Claim(TokenScope.UploadClaim, upload));
        if (expiredAt is { } expired)
            claims.Add(new Claim(TokenScope.ExpiredAtClaim, expired.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)));
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    // Compare hashes so the time taken says nothing about the key.
    private static bool KeysEqual(string expected, string given) =>
        expected.Length > 0 && CryptographicOperations.FixedTimeEquals(
            SHA256.HashData(Encoding.UTF8.GetBytes(expected)), SHA256.HashData(Encoding.UTF8.GetBytes(given)));

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = Challenge;
        // This handler's own result (computed once per request): the authentication middleware keeps only a success in
        // IAuthenticateResultFeature, so the reason an API key or token was refused is found here.
        var failure = (await HandleAuthenticateOnceSafeAsync()).Failure?.Message;
        Diagnostics.UploadMetrics.Rejected(Context, SecurityErrors.Unauthenticated);
        await Problems.For(Context, SecurityErrors.Unauthenticated,
            failure ?? "This server requires an API key (X-Api-Key) or an upload token (Authorization: Bearer …).").ExecuteAsync(Context);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Diagnostics.UploadMetrics.Rejected(Context, SecurityErrors.Forbidden);
        return Problems.For(Context, SecurityErrors.Forbidden, "Your credentials do not allow this request.").ExecuteAsync(Context);
    }
}

/// <summary>Errors of access control.</summary>
public static class SecurityErrors
{
    public static readonly UploadError Unauthenticated = UploadErrors.Unauthenticated;
    public static readonly UploadError Forbidden = new("forbidden", 403, "Not allowed");
    public static readonly UploadError TokenScope = UploadErrors.OutOfScope;
    public static readonly UploadError QuotaExceeded = UploadErrors.QuotaExceeded;
    public static readonly UploadError RateLimited = new("rate_limited", 429, "Too many requests");
}
