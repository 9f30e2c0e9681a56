using System.Text;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// The engine's own contract, without HTTP: byte ranges whatever cut them, streaming writes that keep their durable
/// prefix, sequential writes with take-over, lengths declared late, concatenation, and memory that follows only the
/// uploads in progress.
/// </summary>
public sealed class EngineTests : IDisposable
{
    private const string Protocol = EngineHarness.Protocol;
    private const int MiB = 1024 * 1024;
    private readonly TempDirectory _dir = new();
    private readonly List<EngineHarness> _engines = [];

    public void Dispose()
    {
        foreach (var engine in _engines)
            engine.Dispose();
        _dir.Dispose();
    }

    private async Task<EngineHarness> OpenAsync(Backend backend, Action<ChunkUpload.Core.UploadOptions>? configure = null)
    {
        var engine = await EngineHarness.OpenAsync(_dir.StorageRoot, backend, configure);
        _engines.Add(engine);
        return engine;
    }

    private async Task<EngineHarness> ReopenAsync(EngineHarness before, Action<ChunkUpload.Core.UploadOptions>? configure = null)
    {
        var engine = await before.ReopenAsync(configure);
        _engines.Add(engine);
        return engine;
    }

    public static TheoryData<Backend> AllBackends => Backends.All;

    // S3 parts are at least 5 MiB: pieces of an upload on S3 are cut at that size, whatever the segment setting.
    private static int Piece(Backend backend, int local) => backend.UsesS3() ? 5 * MiB : local;

    private static Caller Caller => EngineHarness.Caller;

    private static WriteOptions Streaming(long? expected = null) => new() { Protocol = Protocol, Append = true, KeepPartial = true, ExpectedLength = expected };

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task A_Body_That_Breaks_Off_Keeps_Every_Byte_That_Arrived_And_Reports_Only_Those(Backend backend)
    {
        var harness = await OpenAsync(backend, o => o.SegmentSize = 1 * MiB);
        var data = UploadClient.RandomBytes((5 * MiB) + 300, 7);
        var upload = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = data.Length, FileName = "f.bin" }, CancellationToken.None);

        int breakAt = (3 * MiB) + 1234; // three whole pieces and part of the fourth
        var ex = await Assert.ThrowsAsync<IOException>(() => harness.Engine.WriteAsync(Caller, upload.Id, 0, new BreakingStream(data, breakAt), Streaming(), CancellationToken.None));
        Assert.Equal("The client went away.", ex.Message);

        var after = (await harness.Engine.FindAsync(Caller, upload.Id, CancellationToken.None))!;
        Assert.Equal(breakAt, after.Offset);
        harness.Dispose();

        // A restart reports the same durable offset, and the upload finishes from there.
        var restarted = await ReopenAsync(harness, o => o.SegmentSize = 1 * MiB);
        Assert.Equal(breakAt, (await restarted.Engine.FindAsync(Caller, upload.Id, CancellationToken.None))!.Offset);
        await restarted.Engine.WriteAsync(Caller, upload.Id, breakAt, new MemoryStream(data[breakAt..]), Streaming(), CancellationToken.None);
        var done = await restarted.Engine.WaitForCompletionAsync(Caller, upload.Id, TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.Equal(UploadClient.Sha256Hex(data), done!.Record.Sha256);
    }

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task A_Chunk_Write_Keeps_Nothing_Of_A_Body_That_Breaks_Off(Backend backend)
    {
        var harness = await OpenAsync(backend, o => o.SegmentSize = 1 * MiB);
        var data = UploadClient.RandomBytes(3 * MiB, 8);
        var upload = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = data.Length }, CancellationToken.None);
        await Assert.ThrowsAsync<IOException>(() => harness.Engine.WriteAsync(Caller, upload.Id, 0, new BreakingStream(data, (2 * MiB) + 5),
            new WriteOptions { Protocol = Protocol, ExpectedLength = data.Length }, CancellationToken.None));
        Assert.Equal(0, (await harness.Engine.FindAsync(Caller, upload.Id, CancellationToken.None))!.StoredBytes);
        if (!backend.UsesS3())
            Assert.Empty(Directory.EnumerateFiles(harness.Layout.Temp));
    }

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task Sequential_Writes_Must_Start_At_The_Stored_Offset(Backend backend)
    {
        var harness = await OpenAsync(backend);
        var upload = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = 10 }, CancellationToken.None);
        await harness.Engine.WriteAsync(Caller, upload.Id, 0, new MemoryStream(Encoding.ASCII.GetBytes("hello")), Streaming(), CancellationToken.None);
        var ex = await Assert.ThrowsAsync<UploadException>(() => harness.Engine.WriteAsync(Caller, upload.Id, 3, new MemoryStream(new byte[2]), Streaming(), CancellationToken.None));
        Assert.Equal("offset_mismatch", ex.Error.Code);
        Assert.Equal(5, ex.Offset);
        var beyond = await Assert.ThrowsAsync<UploadException>(() => harness.Engine.WriteAsync(Caller, upload.Id, 5, new MemoryStream(new byte[6]), Streaming(6), CancellationToken.None));
        Assert.Equal("beyond_length", beyond.Error.Code);
        Assert.Equal(5, (await harness.Engine.FindAsync(Caller, upload.Id, CancellationToken.None))!.Offset);
    }

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task A_New_Sequential_Write_Takes_Over_From_One_Still_Running(Backend backend)
    {
        var harness = await OpenAsync(backend, o => o.SegmentSize = 64 * 1024);
        var data = UploadClient.RandomBytes(512 * 1024, 9);
        var upload = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = data.Length }, CancellationToken.None);

        // The first writer sends 200 KiB and then stalls (a client that vanished without closing its connection).
        var stalled = new StallingStream(data, 200 * 1024);
        var first = harness.Engine.WriteAsync(Caller, upload.Id, 0, stalled, Streaming(), CancellationToken.None);
        await stalled.Stalled.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // The second writer (the client resuming) gets the upload at once; the first ends, keeping what it received.
        var superseded = await Assert.ThrowsAsync<UploadException>(async () =>
        {
            var second = TakeOverAsync();
            await first;
            await second;
        });
        Assert.Equal("request_superseded", superseded.Error.Code);
        Assert.Equal(200 * 1024, superseded.Offset);
        var done = await harness.Engine.WaitForCompletionAsync(Caller, upload.Id, TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.Equal(UploadClient.Sha256Hex(data), done!.Record.Sha256);

        async Task TakeOverAsync()
        {
            for (int attempt = 0; ; attempt++)
            {
                long offset = (await harness.Engine.FindAsync(Caller, upload.Id, CancellationToken.None))!.Offset;
                try
                {
                    await harness.Engine.WriteAsync(Caller, upload.Id, offset, new MemoryStream(data[(int)offset..]), Streaming(), CancellationToken.None);
                    return;
                }
                catch (UploadException ex) when (ex.Error.Code == "offset_mismatch" && attempt < 3)
                {
                    // The first writer's prefix became durable after our HEAD: resume from the new offset (as tus clients do on 409).
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task Overlapping_Writes_Never_Change_Bytes_Already_Stored(Backend backend)
    {
        var harness = await OpenAsync(backend);
        var upload = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = 150 }, CancellationToken.None);
        var range = new WriteOptions { Protocol = Protocol, ExpectedLength = 100 };
        await harness.Engine.WriteAsync(Caller, upload.Id, 0, new MemoryStream(Enumerable.Repeat((byte)'A', 100).ToArray()), range, CancellationToken.None);
        await harness.Engine.WriteAsync(Caller, upload.Id, 50, new MemoryStream(Enumerable.Repeat((byte)'B', 100).ToArray()), range, CancellationToken.None);
        await harness.Engine.WaitForCompletionAsync(Caller, upload.Id, TimeSpan.FromSeconds(30), CancellationToken.None);
        var bytes = await harness.ReadCompletedAsync(upload.Id);
        Assert.Equal(new string('A', 100) + new string('B', 50), Encoding.ASCII.GetString(bytes));
    }

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task A_Length_Declared_Late_Completes_The_Upload_And_Cannot_Change(Backend backend)
    {
        var harness = await OpenAsync(backend);
        var upload = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol }, CancellationToken.None);
        await harness.Engine.WriteAsync(Caller, upload.Id, 0, new MemoryStream(new byte[1000]), Streaming(), CancellationToken.None);
        Assert.Equal("receiving", (await harness.Engine.FindAsync(Caller, upload.Id, CancellationToken.None))!.WireState);

        var shorter = await Assert.ThrowsAsync<UploadException>(() => harness.Engine.DeclareLengthAsync(Caller, upload.Id, 999, CancellationToken.None));
        Assert.Equal("length_conflict", shorter.Error.Code);
        await harness.Engine.DeclareLengthAsync(Caller, upload.Id, 1000, CancellationToken.None);
        var done = await harness.Engine.WaitForCompletionAsync(Caller, upload.Id, TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.True(done!.IsComplete);
        var again = await Assert.ThrowsAsync<UploadException>(() => harness.Engine.DeclareLengthAsync(Caller, upload.Id, 2000, CancellationToken.None));
        Assert.Equal("length_conflict", again.Error.Code);
    }

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task Concatenation_Copies_Finished_Parts_In_Order_Even_When_They_Finish_Later(Backend backend)
    {
        var harness = await OpenAsync(backend);
        var parts = new[] { UploadClient.RandomBytes(3000, 1), UploadClient.RandomBytes(1, 2), UploadClient.RandomBytes(70_000, 3) };
        var ids = new List<string>();
        foreach (var part in parts)
            ids.Add((await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = part.Length, Partial = true }, CancellationToken.None)).Id);

        // The first part is finished before the concatenation exists, the others after (concatenation-unfinished).
        await harness.Engine.WriteAsync(Caller, ids[0], 0, new MemoryStream(parts[0]), Streaming(), CancellationToken.None);
        var final = await harness.Engine.ConcatenateAsync(Caller, new UploadSpec { Protocol = Protocol, FileName = "joined.bin" }, ids, CancellationToken.None);
        Assert.Equal(70_000 + 3001, final.Length);
        for (int i = 1; i < parts.Length; i++)
            await harness.Engine.WriteAsync(Caller, ids[i], 0, new MemoryStream(parts[i]), Streaming(), CancellationToken.None);

        var done = await harness.Engine.WaitForCompletionAsync(Caller, final.Id, TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.Equal(UploadClient.Sha256Hex([.. parts[0], .. parts[1], .. parts[2]]), done!.Record.Sha256);
        foreach (var id in ids)
            Assert.Null(await harness.Engine.FindAsync(Caller, id, CancellationToken.None)); // parts are not files of their own
        var misuse = await Assert.ThrowsAsync<UploadException>(() => harness.Engine.WriteAsync(Caller, final.Id, 0, new MemoryStream([1]), Streaming(), CancellationToken.None));
        Assert.Equal("upload_not_writable", misuse.Error.Code); // its bytes come from its parts
    }

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task The_File_Hash_Counts_Only_Stored_Bytes_Whatever_Order_The_Pieces_Come_In_And_No_Staging_Is_Left(Backend backend)
    {
        // Object stores hash the committed pieces while they are still staged (the parts cannot be read back before
        // the object exists); pieces out of order wait for the hash, and a re-sent overlap with other bytes is not
        // hashed, because it is not stored.
        var harness = await OpenAsync(backend);
        var data = UploadClient.RandomBytes(12 * MiB, 11);
        var upload = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = data.Length, FileName = "h.bin" }, CancellationToken.None);
        async Task WriteAsync(int from, byte[] bytes) => await harness.Engine.WriteAsync(Caller, upload.Id, from, new MemoryStream(bytes),
            new WriteOptions { Protocol = Protocol, ExpectedLength = bytes.Length }, CancellationToken.None);

        await WriteAsync(5 * MiB, data[(5 * MiB)..(10 * MiB)]);
        byte[] overlapping = [.. data[..(5 * MiB)], .. UploadClient.RandomBytes(MiB, 12)]; // its last MiB is stored already, with other bytes
        await WriteAsync(0, overlapping);
        await WriteAsync(10 * MiB, data[(10 * MiB)..]);

        var done = await harness.Engine.WaitForCompletionAsync(Caller, upload.Id, TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.Equal(UploadClient.Sha256Hex(data), done!.Record.Sha256);
        Assert.Equal(data, await harness.ReadCompletedAsync(upload.Id));
        Assert.Empty(StagedPieces(harness));
    }

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task A_Deleted_Upload_Leaves_No_Staged_Piece_Behind(Backend backend)
    {
        var harness = await OpenAsync(backend);
        var data = UploadClient.RandomBytes(15 * MiB, 13);
        var upload = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = data.Length, FileName = "d.bin" }, CancellationToken.None);
        // Pieces after a missing first one: an object store keeps them staged for the hash until the first arrives.
        await harness.Engine.WriteAsync(Caller, upload.Id, 5 * MiB, new MemoryStream(data[(5 * MiB)..]),
            new WriteOptions { Protocol = Protocol, ExpectedLength = 10 * MiB }, CancellationToken.None);

        Assert.True(await harness.Engine.DeleteAsync(Caller, upload.Id, CancellationToken.None));
        Assert.Empty(StagedPieces(harness));
    }

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task Only_Uploads_In_Progress_Are_Kept_In_Memory(Backend backend)
    {
        var harness = await OpenAsync(backend);
        for (int i = 0; i < 20; i++)
        {
            var upload = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = 10 }, CancellationToken.None);
            await harness.Engine.WriteAsync(Caller, upload.Id, 0, new MemoryStream(new byte[10]), Streaming(), CancellationToken.None);
            await harness.Engine.WaitForCompletionAsync(Caller, upload.Id, TimeSpan.FromSeconds(30), CancellationToken.None);
        }

        var unfinished = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = 10 }, CancellationToken.None);
        Assert.Equal(1, harness.Engine.ActiveCount);
        Assert.Equal(unfinished.Id, (await harness.Engine.FindAsync(Caller, unfinished.Id, CancellationToken.None))!.Id);
    }

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task A_Client_Holding_Its_Share_Of_Unfinished_Bytes_Is_Refused_With_507(Backend backend)
    {
        var harness = await OpenAsync(backend, o => o.MaxUnfinishedBytesPerClient = 1000);
        var a = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = 2000 }, CancellationToken.None);
        await harness.Engine.WriteAsync(Caller, a.Id, 0, new MemoryStream(new byte[900]), Streaming(900), CancellationToken.None);
        var ex = await Assert.ThrowsAsync<UploadException>(() => harness.Engine.WriteAsync(Caller, a.Id, 900, new MemoryStream(new byte[200]), Streaming(200), CancellationToken.None));
        Assert.Equal("storage_quota_exceeded", ex.Error.Code);
        Assert.Equal(507, ex.Error.Status);
        Assert.NotNull(ex.RetryAfterSeconds);

        // Another client is not affected.
        var other = new Caller("", "ip:other");
        var b = await harness.Engine.CreateAsync(other, new UploadSpec { Protocol = Protocol, Length = 500 }, CancellationToken.None);
        await harness.Engine.WriteAsync(other, b.Id, 0, new MemoryStream(new byte[500]), Streaming(500), CancellationToken.None);
    }

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task Finished_Files_Count_Against_Their_Clients_File_And_Byte_Quotas_Across_A_Restart(Backend backend)
    {
        static void Quotas(ChunkUpload.Core.UploadOptions o)
        {
            o.MaxCompletedFilesPerClient = 2;
            o.MaxCompletedBytesPerClient = 100;
        }

        var harness = await OpenAsync(backend, Quotas);
        var empty = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = 0 }, CancellationToken.None);
        var sixty = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = 60 }, CancellationToken.None);
        await harness.Engine.WriteAsync(Caller, sixty.Id, 0, new MemoryStream(new byte[60]), Streaming(60), CancellationToken.None);
        await harness.WaitForCompleteAsync(empty.Id);
        await harness.WaitForCompleteAsync(sixty.Id);

        var files = await Assert.ThrowsAsync<UploadException>(() => harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = 0 }, CancellationToken.None));
        Assert.Equal("completed_files_quota_exceeded", files.Error.Code);
        Assert.Equal(403, files.Error.Status);

        // Another client is not affected.
        await harness.Engine.CreateAsync(new Caller("", "ip:other"), new UploadSpec { Protocol = Protocol, Length = 0 }, CancellationToken.None);

        // The counts are the store's: a restart keeps them, and deleting a file frees its place and its bytes.
        harness.Dispose();
        var restarted = await ReopenAsync(harness, Quotas);
        var again = await Assert.ThrowsAsync<UploadException>(() => restarted.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = 0 }, CancellationToken.None));
        Assert.Equal("completed_files_quota_exceeded", again.Error.Code);
        Assert.True(await restarted.Engine.DeleteAsync(Caller, empty.Id, CancellationToken.None));

        var bytes = await Assert.ThrowsAsync<UploadException>(() => restarted.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = 41 }, CancellationToken.None));
        Assert.Equal("completed_bytes_quota_exceeded", bytes.Error.Code);
        Assert.Equal(403, bytes.Error.Status);
        var fits = await restarted.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol }, CancellationToken.None);
        await restarted.Engine.WriteAsync(Caller, fits.Id, 0, new MemoryStream(new byte[40]), Streaming(40), CancellationToken.None);
        var over = await Assert.ThrowsAsync<UploadException>(() => restarted.Engine.WriteAsync(Caller, fits.Id, 40, new MemoryStream(new byte[1]), Streaming(1), CancellationToken.None));
        Assert.Equal("completed_bytes_quota_exceeded", over.Error.Code); // 60 finished + 40 unfinished + 1: the length need not be declared
        await restarted.Engine.DeclareLengthAsync(Caller, fits.Id, 40, CancellationToken.None);
        await restarted.WaitForCompleteAsync(fits.Id);
    }

    [Theory]
    [MemberData(nameof(AllBackends))]
    public async Task Writes_Through_Another_Protocol_Are_Refused(Backend backend)
    {
        var harness = await OpenAsync(backend);
        var upload = await harness.Engine.CreateAsync(Caller, new UploadSpec { Protocol = Protocol, Length = 10 }, CancellationToken.None);
        var ex = await Assert.ThrowsAsync<UploadException>(() => harness.Engine.WriteAsync(Caller, upload.Id, 0, new MemoryStream(new byte[10]),
            new WriteOptions { Protocol = "other", ExpectedLength = 10 }, CancellationToken.None));
        Assert.Equal("wrong_protocol", ex.Error.Code);
        Assert.Equal(409, ex.Error.Status);
    }

    /// <summary>Gives <paramref name="breakAt"/> bytes, then fails as a dropped connection does.</summary>
    private sealed class BreakingStream(byte[] data, int breakAt) : Stream
    {
        private int _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_position >= breakAt)
                throw new IOException("The client went away.");
            int n = Math.Min(count, breakAt - _position);
            Array.Copy(data, _position, buffer, offset, n);
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Gives <paramref name="stallAt"/> bytes, then waits until cancelled (a connection that went silent).</summary>
    private sealed class StallingStream(byte[] data, int stallAt) : Stream
    {
        private int _position;

        public TaskCompletionSource Stalled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position >= stallAt)
            {
                Stalled.TrySetResult();
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            int n = Math.Min(buffer.Length, stallAt - _position);
            data.AsMemory(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    // Files holding staged bytes: the object store's staging folder, or tmp/ on local disk (whose spare files are
    // scratch kept for reuse, not pieces).
    private static string[] StagedPieces(EngineHarness harness)
    {
        string staging = harness.S3?.StagingDirectory ?? harness.Layout.Temp;
        return Directory.Exists(staging)
            ? [.. Directory.GetFiles(staging, "*", SearchOption.AllDirectories).Where(f => !f.StartsWith(harness.Layout.SpareStaging + "/", StringComparison.Ordinal))]
            : [];
    }
}
