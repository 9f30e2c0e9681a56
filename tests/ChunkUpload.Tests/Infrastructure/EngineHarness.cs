using ChunkUpload.Core;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Hooks;
using ChunkUpload.Core.Local;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Storage.Postgres;
using ChunkUpload.Storage.S3;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>The engine without a host, over the stores of a <see cref="Backend"/>, with its assembler running.
/// Abandoning one (without <see cref="Dispose"/>) and opening another over the same root, database and bucket is
/// what a crash and a restart look like.</summary>
internal sealed class EngineHarness : IDisposable
{
    public const string Protocol = "engine-test";
    private readonly CancellationTokenSource _stop = new();
    private readonly NpgsqlDataSource? _db;
    private readonly IUploadLockProvider _locks;

    /// <summary>A local engine (local metadata and data), opened at once; hooks and a wrapper of the data store may be given.</summary>
    public EngineHarness(string root, Action<UploadOptions>? configure = null, IUploadHooks? hooks = null, Func<IUploadDataStore, IUploadDataStore>? wrapData = null)
        : this(root, configure, Backend.LocalLocal, null, null, hooks, wrapData)
    {
        Engine.OpenAsync(CancellationToken.None).GetAwaiter().GetResult();
        _ = Task.Run(() => Engine.RunAssemblerAsync(_stop.Token));
    }

    private EngineHarness(string root, Action<UploadOptions>? configure, Backend backend, string? connectionString, S3Options? s3,
        IUploadHooks? hooks = null, Func<IUploadDataStore, IUploadDataStore>? wrapData = null, ILoggerProvider? logs = null, TimeProvider? time = null)
    {
        Time = time ?? TimeProvider.System;
        var options = new UploadOptions { StorageRoot = root, MinFreeSpace = 0 };
        configure?.Invoke(options);
        var wrapped = Options.Create(options);
        Backend = backend;
        ConnectionString = connectionString;
        S3 = s3;
        Layout = new LocalLayout(options.ResolveStorageRoot());
        IUploadMetadataStore metadata;
        IUploadLockProvider locks;
        if (connectionString is not null)
        {
            _db = NpgsqlDataSource.Create(connectionString);
            metadata = new PostgresMetadataStore(_db, Options.Create(new PostgresOptions()), Time, NullLogger<PostgresMetadataStore>.Instance);
            locks = new PostgresLockProvider(_db, NullLogger<PostgresLockProvider>.Instance);
        }
        else
        {
            metadata = new LocalMetadataStore(Layout, wrapped, NullLogger<LocalMetadataStore>.Instance);
            locks = new InProcessLockProvider();
        }

        IUploadDataStore data = s3 is not null
            ? new S3DataStore(S3DataStore.CreateClient(s3), Options.Create(s3), wrapped, Time, NullLogger<S3DataStore>.Instance)
            : new LocalDataStore(Layout, wrapped);
        Metadata = metadata;
        _locks = locks;
        ILogger<UploadEngine> logger = logs is null ? NullLogger<UploadEngine>.Instance : new Logger<UploadEngine>(new LoggerFactory([logs]));
        Engine = new UploadEngine(metadata, wrapData?.Invoke(data) ?? data, locks, hooks ?? new UploadHooks(), wrapped, Time, logger);
    }

    /// <summary>An engine over the backend's stores: a fresh database and bucket of its own; its log events go to <paramref name="logs"/> when given.</summary>
    public static async Task<EngineHarness> OpenAsync(string root, Backend backend, Action<UploadOptions>? configure = null, ILoggerProvider? logs = null,
        TimeProvider? time = null)
    {
        string? connection = backend.UsesPostgres() ? await TestServices.NewDatabaseAsync() : null;
        S3Options? s3 = null;
        if (backend.UsesS3())
        {
            var settings = await TestServices.S3SettingsAsync();
            s3 = new S3Options
            {
                ServiceUrl = new Uri(settings["S3__ServiceUrl"]),
                AccessKey = settings["S3__AccessKey"],
                SecretKey = settings["S3__SecretKey"],
                Bucket = "cu-" + Guid.NewGuid().ToString("N")[..20],
                StagingDirectory = Path.Combine(root, "s3-staging"),
            };
        }

        return await StartAsync(new EngineHarness(root, configure, backend, connection, s3, logs: logs, time: time));
    }

    /// <summary>
    /// Another node: an engine over the same database and bucket, running beside this one, with a root and a staging
    /// folder of its own (what a second server process has), on this one's clock.
    /// </summary>
    public Task<EngineHarness> OpenNodeAsync(string root, ILoggerProvider? logs = null)
    {
        S3Options? s3 = S3 is null ? null : new S3Options
        {
            ServiceUrl = S3.ServiceUrl,
            AccessKey = S3.AccessKey,
            SecretKey = S3.SecretKey,
            Bucket = S3.Bucket,
            StagingDirectory = Path.Combine(root, "s3-staging"),
        };
        return StartAsync(new EngineHarness(root, null, Backend, ConnectionString, s3, logs: logs, time: Time));
    }

    /// <summary>Another engine over the same stores (a restart).</summary>
    public Task<EngineHarness> ReopenAsync(Action<UploadOptions>? configure = null) =>
        StartAsync(new EngineHarness(Layout.Root, configure, Backend, ConnectionString, S3));

    private static async Task<EngineHarness> StartAsync(EngineHarness harness)
    {
        await harness.Engine.OpenAsync(CancellationToken.None);
        _ = Task.Run(() => harness.Engine.RunAssemblerAsync(harness._stop.Token));
        return harness;
    }

    public void Dispose()
    {
        _stop.Cancel();
        (Metadata as IAsyncDisposable)?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        (_locks as IAsyncDisposable)?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _db?.Dispose();
    }

    public Backend Backend { get; }

    /// <summary>The clock of the engine and its stores.</summary>
    public TimeProvider Time { get; }

    public string? ConnectionString { get; }

    public S3Options? S3 { get; }

    public UploadEngine Engine { get; }

    public IUploadMetadataStore Metadata { get; }

    public LocalLayout Layout { get; }

    public static Caller Caller => Caller.Anonymous;

    public static string Hash(TestFile file) => Caller.KeyOf(file.Identifier).Hash;

    public static UploadSpec Spec(TestFile file) => new()
    {
        Id = file.Identifier,
        Protocol = Protocol,
        Length = file.Data.LongLength,
        FileName = file.Name,
    };

    /// <summary>Stores chunk <paramref name="chunk"/> of the file as a chunk protocol does: the whole range or nothing.</summary>
    public Task<UploadSnapshot> StoreAsync(TestFile file, int chunk) => StoreAsync(file, chunk, new MemoryStream(file.Slice(chunk).ToArray()));

    public async Task<UploadSnapshot> StoreAsync(TestFile file, int chunk, Stream body)
    {
        await Engine.GetOrCreateAsync(Caller, Spec(file), CancellationToken.None);
        return await Engine.WriteAsync(Caller, file.Identifier, file.OffsetOf(chunk), body,
            new WriteOptions { Protocol = Protocol, ExpectedLength = file.LengthOf(chunk) }, CancellationToken.None);
    }

    public async Task<bool> IsStoredAsync(TestFile file, int chunk) =>
        await Engine.FindAsync(Caller, file.Identifier, CancellationToken.None) is { } snapshot && snapshot.Contains(file.OffsetOf(chunk), file.LengthOf(chunk));

    public async Task<UploadSnapshot> WaitForCompleteAsync(TestFile file) => await WaitForCompleteAsync(file.Identifier);

    public async Task<UploadSnapshot> WaitForCompleteAsync(string id)
    {
        var snapshot = await Engine.WaitForCompletionAsync(Caller, id, TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.True(snapshot?.IsComplete, $"{id} did not complete ({snapshot?.WireState}).");
        return snapshot!;
    }

    /// <summary>The finished file's bytes, from a local path or the data store's stream.</summary>
    public async Task<byte[]> ReadCompletedAsync(string id)
    {
        var (_, data) = (await Engine.OpenCompletedAsync(Caller, id, CancellationToken.None))!.Value;
        if (data.PhysicalPath is { } path)
            return await File.ReadAllBytesAsync(path);
        await using var stream = await data.OpenRange!(0, data.Length, CancellationToken.None);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        return copy.ToArray();
    }
}
