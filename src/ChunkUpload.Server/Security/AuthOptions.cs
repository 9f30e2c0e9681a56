using System.ComponentModel.DataAnnotations;

namespace ChunkUpload.Server.Security;

/// <summary>
/// Access control, section <c>Auth</c>. Off by default (local use). When on, every upload request must carry an API
/// key (<c>X-Api-Key</c>, or <c>Authorization: ApiKey …</c>) or a signed upload token (<c>Authorization: Bearer …</c>,
/// or <c>access_token=…</c> in the query string of a download link, GET /files/{id}), and uploads belong to the principal they name.
/// </summary>
public sealed class AuthOptions
{
    public const string SectionName = "Auth";

    public bool Enabled { get; set; }

    /// <summary>Keys for trusted callers (scripts, services); each names the principal its uploads belong to.</summary>
    public List<ApiKeyEntry> ApiKeys { get; set; } = [];

    /// <summary>Shared secret (at least 32 characters) with which the main application signs upload tokens (HMAC-SHA256).</summary>
    public string? TokenSigningKey { get; set; }

    /// <summary>Tokens that expire further ahead than this (plus 30 s of clock skew) are refused.</summary>
    public TimeSpan MaxTokenLifetime { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// For this long after a token expired (plus the 30 s skew) it still authenticates requests that go on with an upload
    /// its subject began before it expired (its writes, status queries and completion), so a file under way when the
    /// token runs out finishes: resumable.js and Fine Uploader give up on a 401, and a browser cannot get a new token
    /// into an upload already running. Everything else (new uploads, downloads, deletes, listings) is 401 as for any
    /// expired token. Zero turns this off; at most <see cref="MaxExpiredTokenGrace"/>.
    /// </summary>
    public TimeSpan ExpiredTokenGrace { get; set; } = TimeSpan.FromHours(1);

    /// <summary>The longest <see cref="ExpiredTokenGrace"/> accepted: the grace is for a file in flight, not a standing key.</summary>
    public static readonly TimeSpan MaxExpiredTokenGrace = TimeSpan.FromDays(7);

    /// <summary>Optional URL the server asks, when an upload starts and again when it completes, whether it may go on.</summary>
    public Uri? AuthorizationUrl { get; set; }

    [Range(1, 300)]
    public int AuthorizationTimeoutSeconds { get; set; } = 5;
}

public sealed class ApiKeyEntry
{
    public string Key { get; set; } = "";

    public string Owner { get; set; } = "";
}
