using System.ComponentModel.DataAnnotations;

namespace ChunkUpload.Core;

/// <summary>Settings of the upload engine, bound from the <c>Upload</c> configuration section.</summary>
public sealed class UploadOptions
{
    public const string SectionName = "Upload";

    /// <summary>Folder that holds every byte the server writes. Relative paths are resolved against the working directory.</summary>
    [Required]
    public string StorageRoot { get; set; } = "data";

    /// <summary>Largest file a client may declare (bytes).</summary>
    [Range(1, long.MaxValue)]
    public long MaxFileSize { get; set; } = 100L * 1024 * 1024 * 1024;

    /// <summary>Largest nominal chunk size a client may use (bytes). The last chunk may be up to twice this, less one byte.</summary>
    [Range(1, 1L * 1024 * 1024 * 1024)]
    public long MaxChunkSize { get; set; } = 64L * 1024 * 1024;

    /// <summary>The chunk size the server recommends to its clients (announced by <c>GET /config</c>).</summary>
    [Range(1, 1L * 1024 * 1024 * 1024)]
    public long RecommendedChunkSize { get; set; } = 8L * 1024 * 1024;

    /// <summary>Chunks per file a client may declare; bounds the bookkeeping of one session.</summary>
    [Range(1, int.MaxValue)]
    public int MaxChunksPerFile { get; set; } = 1_000_000;

    /// <summary>Longest accepted identifier, in characters.</summary>
    [Range(1, 65_536)]
    public int MaxIdentifierLength { get; set; } = 1024;

    /// <summary>Longest accepted file name, in characters.</summary>
    [Range(1, 65_536)]
    public int MaxFileNameLength { get; set; } = 1024;

    /// <summary>
    /// Longest accepted relative path (the folder path a folder upload sends with each file), in characters: Linux's
    /// PATH_MAX (4096) by default, so a folder upload of any tree the client's disk can hold is accepted.
    /// </summary>
    [Range(1, 65_536)]
    public int MaxRelativePathLength { get; set; } = 4096;

    /// <summary>
    /// When true (the default) a chunk is flushed to the disk (fsync) before it is acknowledged, so an acknowledged
    /// chunk survives a power loss. Turning it off trades that guarantee for speed: a process crash still loses
    /// nothing, a machine crash may lose chunks acknowledged in the last seconds.
    /// </summary>
    public bool FlushToDisk { get; set; } = true;

    /// <summary>Free space (bytes) the server keeps on the storage volume; work that would cross it is refused with 507.</summary>
    [Range(0, long.MaxValue)]
    public long MinFreeSpace { get; set; } = 256L * 1024 * 1024;

    /// <summary>Chunk uploads the page runs in parallel (announced by <c>GET /config</c>).</summary>
    [Range(1, 64)]
    public int SimultaneousUploads { get; set; } = 4;

    /// <summary>Assembler loops running in parallel (each works on a different upload).</summary>
    [Range(1, 64)]
    public int AssemblyWorkers { get; set; } = 2;

    /// <summary>Unfinished uploads one client (principal, or address when anonymous) may have at once; more get 429.</summary>
    [Range(1, int.MaxValue)]
    public int MaxActiveUploadsPerClient { get; set; } = 500;

    /// <summary>
    /// Finished files one client (principal, or address when anonymous) may keep; a new upload beyond it is refused
    /// with 403 until some are deleted or retired (zero-byte files count too).
    /// </summary>
    [Range(1, int.MaxValue)]
    public int MaxCompletedFilesPerClient { get; set; } = 10_000;

    /// <summary>
    /// Bytes one client may keep in finished files, counting its unfinished uploads (they become files): a file whose
    /// declared length would cross it is refused with 403 at its start, and so are bytes that would cross it.
    /// </summary>
    [Range(1, long.MaxValue)]
    public long MaxCompletedBytesPerClient { get; set; } = 1024L * 1024 * 1024 * 1024;

    /// <summary>Slowest accepted chunk body (bytes per second, after a grace period); slower senders are cut off.</summary>
    [Range(0, long.MaxValue)]
    public long MinBodyBytesPerSecond { get; set; } = 1024;

    /// <summary>How long a chunk body may run below <see cref="MinBodyBytesPerSecond"/> before it is cut off.</summary>
    public TimeSpan MinBodyRateGracePeriod { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>An unfinished upload with no chunk for this long is removed (7 days: the resume window Fine Uploader assumes).</summary>
    public TimeSpan IdleExpiry { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// Completed files are removed this long after completion (30 days by default); none (an empty value) keeps them
    /// until they are deleted.
    /// </summary>
    public TimeSpan? CompletedRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Temp files and orphaned files older than this are removed by the sweeper.</summary>
    public TimeSpan TempFileMaxAge { get; set; } = TimeSpan.FromDays(1);

    /// <summary>How often the sweeper runs.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Request bodies are staged and committed in pieces of at most this many bytes, cut at multiples of it in the
    /// file: a streaming write (a tus PATCH of a whole file) keeps every piece that arrived whole before a drop.
    /// </summary>
    [Range(64 * 1024, 1L * 1024 * 1024 * 1024)]
    public long SegmentSize { get; set; } = 8L * 1024 * 1024;

    /// <summary>An upload that has not received a single byte this long after it was created is removed.</summary>
    public TimeSpan UnstartedUploadExpiry { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>
    /// Bytes one client (principal, or address when anonymous) may hold in unfinished uploads; more are refused with 507
    /// until some finish. Declaring a size reserves nothing: only stored bytes count.
    /// </summary>
    [Range(0, long.MaxValue)]
    public long MaxUnfinishedBytesPerClient { get; set; } = 256L * 1024 * 1024 * 1024;

    /// <summary>How long a sequential write waits for an earlier request on the same upload to let go before answering "locked".</summary>
    public TimeSpan WriterLockWait { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>With shared metadata: how long a node's claim on completing an upload lasts if that node dies while completing it.</summary>
    public TimeSpan CompletionLease { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Partial uploads one concatenation may name.</summary>
    [Range(1, 100_000)]
    public int MaxConcatenationParts { get; set; } = 1000;

    /// <summary>Whether completions are recorded in the outbox (set when a webhook is configured).</summary>
    public bool RecordCompletionEvents { get; set; }

    /// <summary>Resolved absolute storage root.</summary>
    public string ResolveStorageRoot() => Path.GetFullPath(StorageRoot);
}
