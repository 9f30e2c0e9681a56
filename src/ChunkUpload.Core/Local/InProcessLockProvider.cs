using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Uploads;

namespace ChunkUpload.Core.Local;

/// <summary>
/// Per-upload locks inside one process. Entries exist only while someone holds or waits for a lock, so memory does
/// not grow with the number of uploads. A waiter first asks the holder to let go (take-over), then waits.
/// </summary>
public sealed class InProcessLockProvider : IUploadLockProvider
{
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Lock _sync = new();

    public async Task<IUploadLock?> AcquireAsync(UploadKey key, TimeSpan wait, CancellationToken cancellationToken)
    {
        Entry entry;
        lock (_sync)
        {
            if (!_entries.TryGetValue(key.Hash, out entry!))
                _entries[key.Hash] = entry = new Entry();
            entry.Users++;
            entry.Holder?.Cancel(); // ask whoever has it to finish what it has and let go
        }

        bool acquired = false;
        try
        {
            acquired = await entry.Gate.WaitAsync(wait, cancellationToken);
            if (!acquired)
                return null;
            var release = new CancellationTokenSource();
            lock (_sync)
            {
                entry.Holder = release;
                if (entry.Users > 1)
                    release.Cancel(); // someone newer is already waiting: the newest request wins
            }

            return new Held(this, key.Hash, entry, release);
        }
        finally
        {
            if (!acquired)
                Leave(key.Hash, entry);
        }
    }

    private void Leave(string hash, Entry entry)
    {
        lock (_sync)
        {
            if (--entry.Users == 0)
                _entries.Remove(hash);
        }
    }

    private sealed class Entry
    {
        public SemaphoreSlim Gate { get; } = new(1, 1);

        public int Users { get; set; }

        public CancellationTokenSource? Holder { get; set; }
    }

    private sealed class Held(InProcessLockProvider owner, string hash, Entry entry, CancellationTokenSource release) : IUploadLock
    {
        private int _disposed;

        public CancellationToken ReleaseRequested => release.Token;

        public ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
                return ValueTask.CompletedTask;
            lock (owner._sync)
            {
                if (ReferenceEquals(entry.Holder, release))
                    entry.Holder = null;
            }

            release.Dispose();
            entry.Gate.Release();
            owner.Leave(hash, entry);
            return ValueTask.CompletedTask;
        }
    }
}
