using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;

namespace ChunkUpload.Server.Hosting;

/// <summary>
/// The memory Kestrel's socket transport receives into. Its default pool hands out 4 KiB blocks, and the transport
/// asks the socket for one block at a time, so a 1 GiB upload body costs some 260,000 recv() calls (each preceded by a
/// zero-byte one that waits for data): on two cores, with the client on the same machine, those calls were the largest
/// single cost of receiving a body (perf; README, Figures). With 64 KiB blocks one call takes what the socket holds.
/// How much a connection may buffer is still Kestrel's <c>MaxRequestBufferSize</c>; an idle keep-alive connection still
/// holds no block (the transport waits for data before it rents one).
/// </summary>
internal sealed class ReceiveBufferPool : MemoryPool<byte>
{
    public const int BlockSize = 64 * 1024;

    // Blocks kept for reuse: enough for a few dozen connections receiving at once (4 MiB); more are left to the GC.
    private const int MaxRetained = 64;

    private readonly ConcurrentQueue<byte[]> _free = new();
    private int _retained;
    private bool _disposed;

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (_free.TryDequeue(out var array))
            Interlocked.Decrement(ref _retained);
        else
            array = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true); // sockets pin what they receive into
        return new Block(this, array);
    }

    private void Return(byte[] array)
    {
        if (Volatile.Read(ref _disposed) || Interlocked.Increment(ref _retained) > MaxRetained)
        {
            Interlocked.Decrement(ref _retained);
            return;
        }

        _free.Enqueue(array);
    }

    protected override void Dispose(bool disposing)
    {
        Volatile.Write(ref _disposed, true);
        _free.Clear();
    }

    private sealed class Block(ReceiveBufferPool pool, byte[] array) : IMemoryOwner<byte>
    {
        private byte[]? _array = array;

        public Memory<byte> Memory => _array ?? throw new ObjectDisposedException(nameof(Block));

        public void Dispose()
        {
            var array = Interlocked.Exchange(ref _array, null);
            if (array is not null)
                pool.Return(array);
        }
    }

    private sealed class Factory : IMemoryPoolFactory<byte>
    {
        public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new ReceiveBufferPool();
    }

    /// <summary>Makes Kestrel's socket transport receive into 64 KiB blocks (it takes its pool factory from the services).</summary>
    public static void Use(IServiceCollection services) => services.AddSingleton<IMemoryPoolFactory<byte>>(new Factory());
}
