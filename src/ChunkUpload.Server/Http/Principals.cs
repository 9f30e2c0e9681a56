using System.Globalization;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Server.Security;

namespace ChunkUpload.Server.Http;

/// <summary>
/// Who owns an upload, and who a request counts against. Sessions are keyed by (owner, identifier), so two
/// principals uploading the same file never share chunks. Without authentication every upload belongs to the
/// anonymous owner "", and quotas and rate limits count per remote address (IPv6: per /64, see
/// <see cref="ClientAddress"/>; behind a trusted proxy the forwarded client's, see ForwardedHeadersExtensions).
/// </summary>
public static class Principals
{
    public static string OwnerOf(HttpContext context) =>
        context.User.Identity is { IsAuthenticated: true, Name: { Length: > 0 } name } ? name : "";

    public static string ClientOf(HttpContext context) =>
        OwnerOf(context) is { Length: > 0 } owner ? "user:" + owner : "ip:" + ClientAddress.KeyOf(context.Connection.RemoteIpAddress);

    /// <summary>
    /// The caller as the engine sees it: owner, quota key, the largest file its credentials allow, the one upload they
    /// are for and, for a token in its grace after expiry, when it expired (the engine enforces both, whatever the
    /// protocol calls the upload; see <see cref="TokenScope"/>).
    /// </summary>
    public static Caller CallerOf(HttpContext context) => new(OwnerOf(context), ClientOf(context), MaxFileSizeOf(context))
    {
        OnlyUpload = context.User.FindFirst(TokenScope.UploadClaim)?.Value,
        ExpiredAt = context.User.FindFirst(TokenScope.ExpiredAtClaim)?.Value is { } text
            && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long seconds)
            ? DateTimeOffset.FromUnixTimeSeconds(seconds)
            : null,
    };

    /// <summary>The largest file the caller's credentials allow, when they say.</summary>
    public static long? MaxFileSizeOf(HttpContext context) =>
        context.User.FindFirst(ChunkUploadAuthenticationHandler.MaxFileSizeClaim)?.Value is { } text
        && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long max) ? max : null;
}
