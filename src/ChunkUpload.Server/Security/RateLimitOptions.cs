using System.ComponentModel.DataAnnotations;

namespace ChunkUpload.Server.Security;

/// <summary>Per-client request rate (token bucket), section <c>RateLimit</c>. <c>TokensPerPeriod: 0</c> turns it off.</summary>
public sealed class RateLimitOptions
{
    public const string SectionName = "RateLimit";

    /// <summary>Requests a client may make in one go before it has to slow down.</summary>
    [Range(1, int.MaxValue)]
    public int BurstLimit { get; set; } = 2000;

    /// <summary>Requests added back to a client's budget every <see cref="Period"/>.</summary>
    [Range(0, int.MaxValue)]
    public int TokensPerPeriod { get; set; } = 1000;

    public TimeSpan Period { get; set; } = TimeSpan.FromSeconds(1);
}
