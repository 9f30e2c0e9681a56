using System.Collections.Concurrent;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Uploads;
using Microsoft.Extensions.Options;
using Microsoft.Win32.SafeHandles;

namespace ChunkUpload.Core.Local;

/// <summary>
/// The data store on local disk, the card's shape: request bodies land in <c>tmp/</c>; the assembler writes each
/// staged piece at its offset into the upload's file in <c>parts/</c> (in the kernel, copy_file_range) and flushes
/// once per batch; a finished file is renamed into <c>completed/</c>. The file in <c>parts/</c> is created at its
/// declared length when the first bytes are committed, sparse: declaring a size reserves no disk, blocks are
/// allocated as data lands. Files in <c>tmp/</c> are reused once their piece is committed (see <see cref="SpareBytes"/>).
/// </summary>
public sealed class LocalDataStore : IUploadDataStore, IDisposable
{
    private const int CopyBufferSize = 1024 * 1024;

    /// <summary>
    /// Staging files kept open in <c>tmp/spare/</c> for the next pieces, overwritten in place: their pages stay in the page cache, so a body
    /// is written into memory the kernel already holds instead of fresh pages for every piece. On this machine (a VM
    /// whose host takes freed memory back) fresh pages cost more than the copy itself: perf showed writing staged
    /// pieces into new files as a quarter of the server's CPU for a tus PATCH (README, Figures). At most this much
    /// disk in spare files of at most one segment each.
    /// </summary>
    private const long SpareBytes = 64L * 1024 * 1024;

    private readonly LocalLayout _layout;
    private readonly bool _flush;
    private readonly long _segmentSize;
    private readonly int _spareFiles;
    private readonly ConcurrentQueue<(string Path, SafeFileHandle Handle)> _spare = new();
    private int _spareCount;
    private volatile bool _disposed;

    public LocalDataStore(LocalLayout layout, IOptions<UploadOptions> options)
    {
        _layout = layout;
        _flush = options.Value.FlushToDisk;
        _segmentSize = options.Value.SegmentSize;
        _spareFiles = (int)Math.Clamp(SpareBytes / _segmentSize, 1, 256);
    }

    public long PieceAlignmentFor(UploadRecord upload) => _segmentSize;

    public bool ReadsBeforePublish => true;

    /// <summary>Nothing to prepare: the file in <c>parts/</c> is created when the first bytes are committed.</summary>
    public Task<string?> PrepareAsync(UploadRecord upload, CancellationToken cancellationToken) => Task.FromResult<string?>(null);

    public Task DiscardPreparedAsync(UploadRecord upload, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task<IReadOnlyList<string>> OpenAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(_layout.Temp);
        Directory.CreateDirectory(_layout.Parts);
        Directory.CreateDirectory(_layout.Completed);
        Directory.CreateDirectory(_layout.SpareStaging);
        foreach (var file in Directory.EnumerateFiles(_layout.Temp, "*", SearchOption.AllDirectories))
            LocalLayout.TryDelete(file); // staged bodies of requests that were never acknowledged, spare files
        IReadOnlyList<string> unpublished = [.. Directory.EnumerateFiles(_layout.Parts).Select(p => Path.GetFileName(p)).Where(n => UploadKey.IsHash(n))];
        return Task.FromResult(unpublished);
    }

    public Task<bool> HasDataAsync(UploadRecord upload, CancellationToken cancellationToken) =>
        Task.FromResult(File.Exists(_layout.PartPath(upload.Key.Hash)));

    public IStagedPiece Stage(UploadRecord upload, long offset) => new StagedFile(this, offset);

    // A spare staging file, or a new one.
    private (string Path, SafeFileHandle Handle) TakeStagingFile()
    {
        if (_spare.TryDequeue(out var spare))
        {
            Interlocked.Decrement(ref _spareCount);
            return spare;
        }

        string created = Path.Combine(_layout.Temp, Guid.NewGuid().ToString("N"));
        // Not preallocated and not flushed: its bytes are copied into parts/ and flushed there.
        return (created, File.OpenHandle(created, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None));
    }

    // A staging file whose piece is settled: kept in tmp/spare/ for the next piece while there is room, else deleted.
    private void ReturnStagingFile(string path, SafeFileHandle handle, long length)
    {
        if (length <= _segmentSize && !_disposed)
        {
            if (Interlocked.Increment(ref _spareCount) <= _spareFiles)
            {
                try
                {
                    string spare = Path.Combine(_layout.SpareStaging, Path.GetFileName(path));
                    if (path != spare)
                        File.Move(path, spare);
                    _spare.Enqueue((spare, handle));
                    if (_disposed)
                        Dispose(); // disposed meanwhile: this file is not left behind
                    return;
                }
                catch (IOException)
                {
                    // The spare folder is gone (the storage root was removed): the file is not kept.
                }
            }

            Interlocked.Decrement(ref _spareCount);
        }

        handle.Dispose();
        LocalLayout.TryDelete(path);
    }

    /// <summary>Closes and deletes the spare staging files.</summary>
    public void Dispose()
    {
        _disposed = true;
        while (_spare.TryDequeue(out var spare))
        {
            Interlocked.Decrement(ref _spareCount);
            spare.Handle.Dispose();
            LocalLayout.TryDelete(spare.Path);
        }
    }

    public Task CommitAsync(UploadRecord upload, IReadOnlyList<PieceCommit> commits, CancellationToken cancellationToken)
    {
        if (commits.Count == 0)
            return Task.CompletedTask;
        WriteIntoPart(upload, copy =>
        {
            foreach (var commit in commits)
            {
                var piece = (StagedFile)commit.Piece;
                long from = commit.Range.Offset - piece.Offset;
                if (from < 0 || commit.Range.End > piece.Offset + piece.Length)
                    throw new ArgumentException("The commit range is outside its piece.", nameof(commits));
                copy(piece.Handle!, from, commit.Range.Offset, commit.Range.Length);
            }
        });
        return Task.CompletedTask;
    }

    public IDataReader OpenData(UploadRecord upload) => new FileReader(File.OpenHandle(_layout.PartPath(upload.Key.Hash), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));

    public Task CopyCompletedAsync(UploadRecord source, UploadRecord target, long targetOffset, CancellationToken cancellationToken)
    {
        using var from = File.OpenHandle(_layout.CompletedPath(source.Key.Hash), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        WriteIntoPart(target, copy => copy(from, 0, targetOffset, RandomAccess.GetLength(from)));
        return Task.CompletedTask;
    }

    // Opens (or creates) the upload's file in parts/, lets the caller copy ranges into it, and makes them durable: one
    // flush for all of them, and the file's name flushed too when it is new.
    private void WriteIntoPart(UploadRecord upload, Action<Action<SafeFileHandle, long, long, long>> write)
    {
        using var data = OpenPart(upload, out bool created);
        byte[]? buffer = null;
        try
        {
            write((source, sourceOffset, targetOffset, length) => Copy(source, sourceOffset, data, targetOffset, length, ref buffer));
        }
        finally
        {
            if (buffer is not null)
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }

        if (_flush)
        {
            RandomAccess.FlushToDisk(data);
            if (created)
                NativeFileSystem.FlushDirectory(_layout.Parts);
        }
    }

    public Task PublishAsync(UploadRecord upload, CancellationToken cancellationToken)
    {
        string hash = upload.Key.Hash;
        string part = _layout.PartPath(hash), completed = _layout.CompletedPath(hash);
        long length = upload.Length ?? throw new InvalidOperationException("Only an upload of known length is published.");
        if (File.Exists(part))
        {
            using (var handle = File.OpenHandle(part, FileMode.Open, FileAccess.ReadWrite))
            {
                if (RandomAccess.GetLength(handle) != length)
                    RandomAccess.SetLength(handle, length);
            }

            File.Move(part, completed, overwrite: true);
        }
        else if (!File.Exists(completed))
        {
            if (length != 0)
                throw new IOException($"The data of upload {upload.Id} is missing from the storage.");
            File.Create(completed).Dispose(); // an empty file never had a byte committed
        }
        else
        {
            return Task.CompletedTask;
        }

        if (_flush)
            NativeFileSystem.FlushDirectory(_layout.Completed);
        return Task.CompletedTask;
    }

    public async Task<CompletedData?> OpenCompletedAsync(UploadRecord upload, CancellationToken cancellationToken)
    {
        string path = _layout.CompletedPath(upload.Key.Hash);
        if (!File.Exists(path) && File.Exists(_layout.PartPath(upload.Key.Hash)))
            await PublishAsync(upload, cancellationToken); // completed, then a crash before the rename
        var info = new FileInfo(path);
        return info.Exists ? new CompletedData(info.Length, path) : null;
    }

    public Task DeleteAsync(UploadRecord upload, CancellationToken cancellationToken)
    {
        LocalLayout.TryDelete(_layout.PartPath(upload.Key.Hash));
        LocalLayout.TryDelete(_layout.CompletedPath(upload.Key.Hash));
        return Task.CompletedTask;
    }

    public async Task<int> SweepAsync(DateTimeOffset cutoff, Func<string, CancellationToken, Task<bool>> isKnown, CancellationToken cancellationToken)
    {
        int removed = 0;
        foreach (var file in Directory.EnumerateFiles(_layout.Temp))
        {
            if (File.GetLastWriteTimeUtc(file) < cutoff.UtcDateTime)
            {
                LocalLayout.TryDelete(file);
                removed++;
            }
        }

        foreach (var folder in new[] { _layout.Parts, _layout.Completed })
        {
            foreach (var file in Directory.EnumerateFiles(folder))
            {
                // A file whose record is gone (a delete interrupted by a crash).
                string name = Path.GetFileName(file);
                if (File.GetLastWriteTimeUtc(file) < cutoff.UtcDateTime && (!UploadKey.IsHash(name) || !await isKnown(name, cancellationToken)))
                {
                    LocalLayout.TryDelete(file);
                    removed++;
                }
            }
        }

        return removed;
    }

    private SafeFileHandle OpenPart(UploadRecord upload, out bool created)
    {
        string path = _layout.PartPath(upload.Key.Hash);
        created = !File.Exists(path);
        var handle = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        if (created && upload.Length is { } length && length > 0)
            RandomAccess.SetLength(handle, length); // sparse: the size, no blocks
        return handle;
    }

    private static void Copy(SafeFileHandle source, long sourceOffset, SafeFileHandle target, long targetOffset, long length, ref byte[]? buffer)
    {
        if (length == 0 || NativeFileSystem.TryCopyRange(source, sourceOffset, target, targetOffset, length))
            return;
        buffer ??= System.Buffers.ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        long position = 0;
        while (position < length)
        {
            int read = RandomAccess.Read(source, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - position)), sourceOffset + position);
            if (read == 0)
                throw new IOException("A staged piece is shorter than its range.");
            RandomAccess.Write(target, buffer.AsSpan(0, read), targetOffset + position);
            position += read;
        }
    }

    private sealed class FileReader(SafeFileHandle handle) : IDataReader
    {
        public int Read(long offset, Span<byte> buffer) => RandomAccess.Read(handle, buffer, offset);

        public void Dispose() => handle.Dispose();
    }

    /// <summary>A staged piece in <c>tmp/</c>: a staging file taken on the first write, given back when disposed (committed or not).</summary>
    private sealed class StagedFile(LocalDataStore store, long offset) : IStagedPiece
    {
        private string? _path;

        public long Offset { get; } = offset;

        public long Length { get; private set; }

        public SafeFileHandle? Handle { get; private set; }

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
        {
            if (bytes.IsEmpty)
                return;
            if (Handle is null)
                (_path, Handle) = store.TakeStagingFile();
            await RandomAccess.WriteAsync(Handle, bytes, Length, cancellationToken);
            Length += bytes.Length;
        }

        public void Seal()
        {
        }

        // A reused file may hold older bytes past this piece's end: nothing is read past Length.
        public int Read(long position, Span<byte> buffer) =>
            Handle is null || position >= Length ? 0 : RandomAccess.Read(Handle, buffer[..(int)Math.Min(buffer.Length, Length - position)], position);

        public void Dispose()
        {
            var handle = Handle;
            Handle = null;
            if (handle is not null)
                store.ReturnStagingFile(_path!, handle, Length);
        }
    }
}
