using System.ComponentModel.DataAnnotations;

namespace ChunkUpload.Storage.S3;

/// <summary>S3-compatible object storage for the data, section <c>S3</c> (environment: <c>S3__ServiceUrl</c>, ...).</summary>
public sealed class S3Options
{
    public const string SectionName = "S3";

    /// <summary>The endpoint (for AWS leave empty and set <see cref="Region"/>; for Ceph RGW, MinIO and the like, its URL).</summary>
    public Uri? ServiceUrl { get; set; }

    [Required]
    [RegularExpression("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", ErrorMessage = "S3:Bucket must be a valid bucket name (3-63 lowercase letters, digits, dots and hyphens).")]
    public string Bucket { get; set; } = "chunkupload";

    public string Region { get; set; } = "us-east-1";

    public string? AccessKey { get; set; }

    public string? SecretKey { get; set; }

    /// <summary>Path-style addressing (http://host/bucket/key), which S3-compatible servers on one host need.</summary>
    public bool ForcePathStyle { get; set; } = true;

    /// <summary>
    /// Send request checksums only when an operation requires them (AWSSDK.S3 4.x otherwise adds flexible checksums
    /// with a streamed trailer, which Ceph's RADOS Gateway 16 refuses with XAmzContentSHA256Mismatch). True by default:
    /// correct for AWS too.
    /// </summary>
    public bool ChecksumWhenRequired { get; set; } = true;

    /// <summary>Objects are stored under this prefix in the bucket.</summary>
    public string KeyPrefix { get; set; } = "chunkupload/";

    /// <summary>
    /// Part size for uploads whose protocol does not choose one (tus, Google-style, append): at least 5 MiB (S3's
    /// smallest part but the last), and large enough for Upload:MaxFileSize in 10,000 parts (raised when needed).
    /// A chunk protocol's chunk size is used instead when it is at least 5 MiB: then a chunk is a part.
    /// </summary>
    [Range(5L * 1024 * 1024, 5L * 1024 * 1024 * 1024)]
    public long PartSize { get; set; } = 8L * 1024 * 1024;

    /// <summary>When true, downloads are redirected (302) to a presigned GET of the object instead of streamed through the node.</summary>
    public bool PresignDownloads { get; set; }

    public TimeSpan PresignExpiry { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Where a node stages request bodies before they become parts (bounded: a piece per request in flight).</summary>
    public string? StagingDirectory { get; set; }
}
