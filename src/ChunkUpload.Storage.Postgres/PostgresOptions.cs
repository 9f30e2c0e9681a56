using System.ComponentModel.DataAnnotations;

namespace ChunkUpload.Storage.Postgres;

/// <summary>PostgreSQL metadata, section <c>Postgres</c>; the connection string is <c>ConnectionStrings:Uploads</c>.</summary>
public sealed class PostgresOptions
{
    public const string SectionName = "Postgres";

    /// <summary>How long a claimed outbox event stays with one node before another may deliver it.</summary>
    public TimeSpan OutboxLease { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How often the outbox is polled for events other nodes recorded.</summary>
    public TimeSpan OutboxPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    [Range(1, 10_000)]
    public int OutboxBatch { get; set; } = 100;
}
