using System.Collections.Concurrent;
using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Core.Engine;

/// <summary>
/// The uploads in progress, in memory. Completed and failed uploads leave it (the metadata store finds them), so
/// memory follows what is being uploaded, not what ever was. Creating, loading and removing an upload happen under
/// its stripe, so two first requests for the same upload make one entry.
/// </summary>
internal sealed class ActiveUploads
{
    private const int StripeCount = 64;
    private readonly ConcurrentDictionary<string, ActiveUpload> _uploads = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim[] _stripes = Enumerable.Range(0, StripeCount).Select(_ => new SemaphoreSlim(1, 1)).ToArray();

    public int Count => _uploads.Count;

    public IEnumerable<ActiveUpload> All => _uploads.Values;

    public bool TryGet(UploadKey key, out ActiveUpload upload) => _uploads.TryGetValue(key.Hash, out upload!);

    /// <summary>The upload with this <see cref="UploadKey.Hash"/> (a notification from another node names only that).</summary>
    public bool TryGet(string keyHash, out ActiveUpload upload) => _uploads.TryGetValue(keyHash, out upload!);

    public void Add(ActiveUpload upload) => _uploads[upload.Key.Hash] = upload;

    /// <summary>Removes this entry (not a newer one under the same key).</summary>
    public bool Remove(ActiveUpload upload) => _uploads.TryRemove(new KeyValuePair<string, ActiveUpload>(upload.Key.Hash, upload));

    public async Task<Stripe> LockAsync(UploadKey key, CancellationToken cancellationToken)
    {
        var stripe = _stripes[Convert.ToInt32(key.Hash[..4], 16) % StripeCount];
        await stripe.WaitAsync(cancellationToken);
        return new Stripe(stripe);
    }

    public readonly struct Stripe(SemaphoreSlim semaphore) : IDisposable
    {
        public void Dispose() => semaphore.Release();
    }
}
