using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ChunkUpload.Server.Security;

/// <summary>
/// Short-lived upload tokens that the main application (which knows its users) issues and ChunkUpload verifies
/// without calling back: <c>v1.{base64url(json)}.{base64url(HMAC-SHA256(secret, "v1." + base64url(json)))}</c> with
/// the JSON <c>{"sub":"alice","exp":1767225600,"max":1073741824}</c> (subject, expiry in Unix seconds, optional
/// largest file in bytes).
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
    public static UploadTokenClaims? Verify(string secret, string token, DateTimeOffset now, TimeSpan? maxLifetime = null)
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

        if (claims is null || string.IsNullOrWhiteSpace(claims.Subject) || claims.Subject.Length > 256
            || claims.ExpiresAt <= (now - ClockSkew).ToUnixTimeSeconds() || claims.MaxFileSize is < 0
            || (maxLifetime is { } max && claims.ExpiresAt > (now + max + ClockSkew).ToUnixTimeSeconds()))
            return null;
        return claims;
    }

    private static byte[] Sign(string secret, string payload) =>
        HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(payload));
}

public sealed record UploadTokenClaims(
    [property: JsonPropertyName("sub")] string Subject,
    [property: JsonPropertyName("exp")] long ExpiresAt,
    [property: JsonPropertyName("max")] long? MaxFileSize = null);

[JsonSerializable(typeof(UploadTokenClaims))]
internal sealed partial class TokenJsonContext : JsonSerializerContext;
