using ChunkUpload.Core;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Hooks;
using ChunkUpload.Core.Local;
using ChunkUpload.Core.Uploads;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>The engine without a host, over the local stores, with its assembler running. Abandoning one (without
/// <see cref="Dispose"/>) and opening another over the same root is what a crash and a restart look like.</summary>
internal sealed class EngineHarness : IDisposable
{
    public const string Protocol = "engine-test";
    private readonly CancellationTokenSource _stop = new();

    public EngineHarness(string root, Action<UploadOptions>? configure = null)
    {
        var options = new UploadOptions { StorageRoot = root, MinFreeSpace = 0 };
        configure?.Invoke(options);
        var wrapped = Options.Create(options);
        Layout = new LocalLayout(options.ResolveStorageRoot());
        Engine = new UploadEngine(
            new LocalMetadataStore(Layout, wrapped, NullLogger<LocalMetadataStore>.Instance),
            new LocalDataStore(Layout, wrapped),
            new InProcessLockProvider(),
            new UploadHooks(),
            wrapped,
            TimeProvider.System,
            NullLogger<UploadEngine>.Instance);
        Engine.OpenAsync(CancellationToken.None).GetAwaiter().GetResult();
        _ = Task.Run(() => Engine.RunAssemblerAsync(_stop.Token));
    }

    public void Dispose() => _stop.Cancel();

    public UploadEngine Engine { get; }

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

    public async Task<UploadSnapshot> WaitForCompleteAsync(TestFile file)
    {
        var snapshot = await Engine.WaitForCompletionAsync(Caller, file.Identifier, TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.True(snapshot?.IsComplete, $"{file.Identifier} did not complete ({snapshot?.WireState}).");
        return snapshot!;
    }
}
