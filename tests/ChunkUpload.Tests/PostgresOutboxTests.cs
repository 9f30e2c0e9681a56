using System.Text.Json;
using ChunkUpload.Storage.Postgres;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace ChunkUpload.Tests;

/// <summary>The completion outbox on PostgreSQL: what each webhook poll (every second, on every node) costs with a backlog.</summary>
public sealed class PostgresOutboxTests
{
    private const int Backlog = 50_000;
    private const int Leased = 10;

    [Fact]
    public async Task A_Claim_Reads_One_Batch_Through_The_Index_Whatever_The_Backlog_And_Takes_The_Oldest_Unleased_Events()
    {
        await using var db = NpgsqlDataSource.Create(await TestServices.NewDatabaseAsync());
        var store = new PostgresMetadataStore(db, Options.Create(new PostgresOptions { OutboxBatch = 100 }), TimeProvider.System, NullLogger<PostgresMetadataStore>.Instance);
        await store.OpenAsync(CancellationToken.None);

        // A receiver that was down for a while: 50,000 events wait, the oldest ten leased by a node trying them.
        var first = DateTimeOffset.UtcNow.AddDays(-1);
        await using (var fill = db.CreateCommand("""
            INSERT INTO outbox (id, payload, completed_at, locked_until)
            SELECT 'e' || lpad(g::text, 6, '0'),
                   jsonb_build_object('id', 'e' || lpad(g::text, 6, '0'), 'identifier', 'f' || g, 'fileName', 'f.bin', 'size', 1,
                                      'sha256', repeat('0', 64), 'owner', '', 'completedAt', $1 + g * interval '1 second'),
                   $1 + g * interval '1 second',
                   CASE WHEN g <= $3 THEN $2 END
            FROM generate_series(1, $4) g
            """))
        {
            fill.Parameters.AddWithValue(first);
            fill.Parameters.AddWithValue(DateTimeOffset.UtcNow.AddHours(1));
            fill.Parameters.AddWithValue(Leased);
            fill.Parameters.AddWithValue(Backlog);
            await fill.ExecuteNonQueryAsync();
        }

        await using (var analyze = db.CreateCommand("ANALYZE outbox"))
            await analyze.ExecuteNonQueryAsync();

        await using (var explain = db.CreateCommand("EXPLAIN (FORMAT JSON) " + PostgresMetadataStore.ClaimPendingSql))
        {
            explain.Parameters.AddWithValue(DateTimeOffset.UtcNow);
            explain.Parameters.AddWithValue(TimeSpan.FromMinutes(1));
            explain.Parameters.AddWithValue(100);
            string plan = (string)(await explain.ExecuteScalarAsync())!;
            var scans = Scans(JsonDocument.Parse(plan).RootElement[0].GetProperty("Plan")).ToList();
            Assert.DoesNotContain(scans, s => s.Node == "Seq Scan");
            Assert.Contains(scans, s => s.Node == "Index Scan" && s.Index == "outbox_completed_at");
        }

        var claimed = await store.PendingAsync(CancellationToken.None);
        Assert.Equal(100, claimed.Count);
        Assert.Equal("e000011", claimed[0].Id);
        Assert.Equal("e000110", claimed[^1].Id);
        Assert.Equal(Backlog, await store.CountPendingAsync(CancellationToken.None));
    }

    private static IEnumerable<(string Node, string? Index)> Scans(JsonElement node)
    {
        string type = node.GetProperty("Node Type").GetString()!;
        if (type.Contains("Scan", StringComparison.Ordinal))
            yield return (type, node.TryGetProperty("Index Name", out var index) ? index.GetString() : null);
        if (node.TryGetProperty("Plans", out var children))
        {
            foreach (var child in children.EnumerateArray())
            {
                foreach (var scan in Scans(child))
                    yield return scan;
            }
        }
    }

    [Fact]
    public void Every_Migration_Has_Its_Own_Version_Numbered_From_One_Without_Gaps()
    {
        // A clash would apply only one of the two scripts (the version is recorded once); a gap is a lost script.
        var versions = Migrations.Scripts().Select(s => s.Version).ToList();
        Assert.Equal(Enumerable.Range(1, versions.Count), versions);
    }
}
