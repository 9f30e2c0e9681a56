using System.Diagnostics;
using Npgsql;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>
/// The real services the shared-store tests need, started once per test run by the project's own scripts
/// (scripts/services/postgres.sh, rgw.sh: they install Debian's postgresql and ceph packages when missing) and
/// stopped when the test process exits: by its exit handler, and by the scripts' own watcher of this process
/// (OWNER_PID) when the test host is ended before its handlers finish. A service that cannot start fails the tests
/// that need it: nothing is skipped.
/// </summary>
public static class TestServices
{
    private static readonly Lazy<Task<string>> Postgres = new(StartPostgresAsync);
    private static readonly Lazy<Task<Dictionary<string, string>>> S3 = new(StartS3Async);
    private static readonly string Root = Path.Combine(Path.GetTempPath(), "chunkupload-test-services", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>An Npgsql connection string to a fresh, empty database of its own.</summary>
    public static async Task<string> NewDatabaseAsync()
    {
        var server = await Postgres.Value;
        string name = "t" + Guid.NewGuid().ToString("N");
        await using (var admin = new NpgsqlConnection(server))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
    }

    /// <summary>S3 settings (environment form, S3__ServiceUrl, ...) for the running gateway.</summary>
    public static Task<Dictionary<string, string>> S3SettingsAsync() => S3.Value;

    private static async Task<string> StartPostgresAsync()
    {
        string dir = Path.Combine(Root, "postgres");
        string output = await RunScriptAsync("postgres.sh", "start", dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => RunScriptAsync("postgres.sh", "stop", dir).GetAwaiter().GetResult();
        return output.Trim().Split('\n')[^1];
    }

    private static async Task<Dictionary<string, string>> StartS3Async()
    {
        string dir = Path.Combine(Root, "rgw");
        string output = await RunScriptAsync("rgw.sh", "start", dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => RunScriptAsync("rgw.sh", "stop", dir).GetAwaiter().GetResult();
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => l.StartsWith("S3__", StringComparison.Ordinal))
            .Select(l => l.Split('=', 2))
            .ToDictionary(p => p[0], p => p[1]);
    }

    private static async Task<string> RunScriptAsync(string script, string command, string dir)
    {
        string path = Path.Combine(RepositoryRoot(), "scripts", "services", script);
        var start = new ProcessStartInfo("bash", [path, command, dir])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            Environment = { ["OWNER_PID"] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) },
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not run {script}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{script} {command} failed ({process.ExitCode}): {await stderr}");
        return await stdout;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ChunkUpload.sln")))
                return dir.FullName;
        }

        throw new InvalidOperationException("ChunkUpload.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>Which stores an engine or a server runs on: the four combinations the tests run the same behaviour against.</summary>
public enum Backend
{
    LocalLocal,
    PostgresLocal,
    LocalS3,
    PostgresS3,
}

public static class Backends
{
    public static TheoryData<Backend> All => new() { Backend.LocalLocal, Backend.PostgresLocal, Backend.LocalS3, Backend.PostgresS3 };

    public static bool UsesPostgres(this Backend backend) => backend is Backend.PostgresLocal or Backend.PostgresS3;

    public static bool UsesS3(this Backend backend) => backend is Backend.LocalS3 or Backend.PostgresS3;

    /// <summary>Server settings (configuration keys) for a backend: a fresh database and bucket of its own.</summary>
    public static async Task<Dictionary<string, string?>> SettingsAsync(this Backend backend)
    {
        var settings = new Dictionary<string, string?>();
        if (backend.UsesPostgres())
        {
            settings["Storage:Metadata"] = "PostgreSQL";
            settings["ConnectionStrings:Uploads"] = await TestServices.NewDatabaseAsync();
        }

        if (backend.UsesS3())
        {
            settings["Storage:Data"] = "S3";
            foreach (var (key, value) in await TestServices.S3SettingsAsync())
                settings[key.Replace("__", ":", StringComparison.Ordinal)] = value;
            settings["S3:Bucket"] = "cu-" + Guid.NewGuid().ToString("N")[..20];
        }

        return settings;
    }
}
