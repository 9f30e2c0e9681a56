using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace ChunkUpload.Storage.Postgres;

/// <summary>
/// Versioned SQL the server runs itself at start: <c>Migrations/NNN_name.sql</c>, applied in order, each once,
/// recorded in <c>chunkupload_schema</c>. Idempotent and safe when several nodes start together: they take one
/// advisory lock for the whole run, so one applies and the others find the versions recorded.
/// </summary>
internal static partial class Migrations
{
    private const long MigrationLock = 0x43_55_4d_49_47_52_41_54; // "CUMIGRAT"

    public static async Task<int> RunAsync(NpgsqlDataSource db, ILogger logger, CancellationToken cancellationToken)
    {
        var scripts = Scripts();
        await using var connection = await db.OpenConnectionAsync(cancellationToken);
        await Execute(connection, $"SELECT pg_advisory_lock({MigrationLock})", cancellationToken);
        try
        {
            await Execute(connection, "CREATE TABLE IF NOT EXISTS chunkupload_schema (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())", cancellationToken);
            var applied = new HashSet<int>();
            await using (var read = new NpgsqlCommand("SELECT version FROM chunkupload_schema", connection))
            await using (var reader = await read.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                    applied.Add(reader.GetInt32(0));
            }

            int count = 0;
            foreach (var (version, name, sql) in scripts)
            {
                if (applied.Contains(version))
                    continue;
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                await using (var apply = new NpgsqlCommand(sql, connection, transaction))
                    await apply.ExecuteNonQueryAsync(cancellationToken);
                await using (var record = new NpgsqlCommand("INSERT INTO chunkupload_schema (version, name) VALUES ($1, $2)", connection, transaction))
                {
                    record.Parameters.AddWithValue(version);
                    record.Parameters.AddWithValue(name);
                    await record.ExecuteNonQueryAsync(cancellationToken);
                }

                await transaction.CommitAsync(cancellationToken);
                LogApplied(logger, version, name);
                count++;
            }

            return count;
        }
        finally
        {
            await Execute(connection, $"SELECT pg_advisory_unlock({MigrationLock})", CancellationToken.None);
        }
    }

    internal static List<(int Version, string Name, string Sql)> Scripts()
    {
        var assembly = typeof(Migrations).Assembly;
        var scripts = new List<(int, string, string)>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.EndsWith(".sql", StringComparison.Ordinal)))
        {
            // ChunkUpload.Storage.Postgres.Migrations.001_uploads.sql
            string file = resource.Split('.')[^2];
            int version = int.Parse(file[..file.IndexOf('_', StringComparison.Ordinal)], NumberStyles.None, CultureInfo.InvariantCulture);
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream);
            scripts.Add((version, file, reader.ReadToEnd()));
        }

        // Two scripts with one number (branches that each added "the next" migration) would apply only one of them.
        var clash = scripts.GroupBy(s => s.Item1).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null)
            throw new InvalidOperationException($"Migrations {string.Join(" and ", clash.Select(s => s.Item2))} share version {clash.Key}; renumber one.");
        return [.. scripts.OrderBy(s => s.Item1)];
    }

    private static async Task Execute(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "PostgreSQL schema migration {Version} ({Name}) applied")]
    private static partial void LogApplied(ILogger logger, int version, string name);
}
