using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ChunkUpload.Server.Security;

/// <summary>
/// Short-lived upload tokens that the main application (which knows its users) issues and ChunkUpload verifies
/// without calling back: <c>v1.{base64url(json)}.{base64url(HMAC-SHA256(secret, "v1." + base64url(json)))}</c> with
/// the JSON <c>{"sub":"alice","exp":1767225600,"max":1073741824,"ops":["upload"],"upl":"3f2a…"}</c>: subject, expiry in
/// Unix seconds, and optionally the largest file in bytes, the operations allowed (any of <c>upload</c>,
/// <c>download</c>, <c>delete</c>, <c>list</c>; all when absent) and the one upload id the token is for (any of the
/// subject's when absent). A token naming an unknown operation, none, or an empty upload id is not valid: a mistake of
/// the issuer fails loudly instead of granting more, or less, than meant.
/// </summary>
public static class UploadTokens
{
    private const string Prefix = "v1.";

    public static string Create(string secret, UploadTokenClaims claims)
    {
        string payload = Prefix + Base64Url.EncodeToString(JsonSerializer.SerializeToUtf8Bytes(claims, TokenJsonContext.Default.UploadTokenClaims));
        return payload + "." + Base64Url.EncodeToString(Sign(secret, payload));
    }

    /// <summary>Clocks of the issuer and of this server may disagree by this much.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The claims of a valid, unexpired token; null for anything else (never throws on hostile input). A token that
    /// expired less than <see cref="ClockSkew"/> ago is still valid; one that expires further ahead than
    /// <paramref name="maxLifetime"/> (plus the skew) is not: a leaked long-lived token would be a standing key.
    /// </summary>
    public static UploadTokenClaims? Verify(string secret, string token, DateTimeOffset now, TimeSpan? maxLifetime = null) =>
        Verify(secret, token, now, maxLifetime, TimeSpan.Zero) is { ExpiredAt: null } valid ? valid.Claims : null;

    /// <summary>
    /// As <see cref="Verify(string, string, DateTimeOffset, TimeSpan?)"/>, and a token that expired (beyond the skew) at
    /// most <paramref name="expiredGrace"/> ago verifies too, with the instant it stopped being valid in
    /// <see cref="VerifiedToken.ExpiredAt"/>: it may only finish uploads begun before then (Auth:ExpiredTokenGrace).
    /// </summary>
    public static VerifiedToken? Verify(string secret, string token, DateTimeOffset now, TimeSpan? maxLifetime, TimeSpan expiredGrace)
    {
        if (token.Length > 4096 || !token.StartsWith(Prefix, StringComparison.Ordinal))
            return null;
        int dot = token.LastIndexOf('.');
        if (dot <= Prefix.Length)
            return null;
        string payload = token[..dot];
        byte[] signature;
        byte[] json;
        try
        {
            signature = Base64Url.DecodeFromChars(token.AsSpan(dot + 1));
            json = Base64Url.DecodeFromChars(payload.AsSpan(Prefix.Length));
        }
        catch (FormatException)
        {
            return null;
        }

        if (!CryptographicOperations.FixedTimeEquals(signature, Sign(secret, payload)))
            return null;
        UploadTokenClaims? claims;
        try
        {
            claims = JsonSerializer.Deserialize(json, TokenJsonContext.Default.UploadTokenClaims);
        }
        catch (JsonException)
        {
            return null;
        }

        if (claims is null || string.IsNullOrWhiteSpace(claims.Subject) || claims.Subject.Length > 256 || claims.MaxFileSize is < 0
            || (maxLifetime is { } max && claims.ExpiresAt > (now + max + ClockSkew).ToUnixTimeSeconds())
            || claims.Operations is { Count: 0 } || claims.Operations?.Any(o => !TokenScope.OperationNames.Contains(o)) == true
            || claims.UploadId is { Length: 0 })
            return null;
        if (claims.ExpiresAt > (now - ClockSkew).ToUnixTimeSeconds())
            return new VerifiedToken(claims, null);

        // Expired: the instant it stopped being valid here, exp plus the skew (Unix seconds beyond DateTimeOffset's range never verify).
        if (claims.ExpiresAt < DateTimeOffset.MinValue.ToUnixTimeSeconds() || expiredGrace <= TimeSpan.Zero)
            return null;
        var expiredAt = DateTimeOffset.FromUnixTimeSeconds(claims.ExpiresAt) + ClockSkew;
        return now - expiredAt < expiredGrace ? new VerifiedToken(claims, expiredAt) : null;
    }

    private static byte[] Sign(string secret, string payload) =>
        HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(payload));
}

/// <param name="Subject">The principal who owns the uploads (<c>sub</c>).</param>
/// <param name="ExpiresAt">Expiry, Unix seconds (<c>exp</c>).</param>
/// <param name="MaxFileSize">The largest file allowed, bytes (<c>max</c>); any the server accepts when absent.</param>
/// <param name="Operations">The operations allowed (<c>ops</c>: upload, download, delete, list); all when absent.</param>
/// <param name="UploadId">The one upload the token is for (<c>upl</c>), under every protocol's name for it; any when absent.</param>
public sealed record UploadTokenClaims(
    [property: JsonPropertyName("sub")] string Subject,
    [property: JsonPropertyName("exp")] long ExpiresAt,
    [property: JsonPropertyName("max")] long? MaxFileSize = null,
    [property: JsonPropertyName("ops")] IReadOnlyList<string>? Operations = null,
    [property: JsonPropertyName("upl")] string? UploadId = null);

/// <summary>A token that verified; <see cref="ExpiredAt"/> is set when it did so only in its grace after it expired.</summary>
public sealed record VerifiedToken(UploadTokenClaims Claims, DateTimeOffset? ExpiredAt);

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(UploadTokenClaims))]
internal sealed partial class TokenJsonContext : JsonSerializerContext;
