using System.Globalization;
using System.Net;
using System.Text.Json;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using ChunkUpload.Core;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Ranges;
using ByteRange = ChunkUpload.Core.Ranges.ByteRange;
using S3Range = Amazon.S3.Model.ByteRange;
using ChunkUpload.Core.Uploads;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Win32.SafeHandles;

namespace ChunkUpload.Storage.S3;

/// <summary>
/// The data store on S3-compatible object storage. Each upload is one S3 multipart upload, started when the upload is
/// created (its id and part size travel in the record, so every node agrees), and its file is one object when done.
/// The mapping is "each piece at its offset" in S3's terms: part n covers bytes [(n-1)P, nP) for the upload's part
/// size P, and the engine cuts request bodies at multiples of P, so a piece that covers a whole part is uploaded as
/// that part, directly, and completion is one CompleteMultipartUpload: no byte moves again. When a chunk protocol's
/// chunk size is at least 5 MiB, P is the chunk size: a chunk is a part. A piece that covers only part of a part (a
/// body that broke off, a resumed tail, small chunks) is stored as a fragment object under the upload's prefix, durable
/// and visible to every node; when a part's fragments cover it, whichever node sees that assembles the part (one
/// fragment: a server-side UploadPartCopy; several: fetched into a local file of at most P bytes and uploaded) and
/// removes the fragments. A node stages at most one piece (P bytes) per request in flight, and a node that dies
/// leaves nothing another node cannot finish.
/// </summary>
public sealed partial class S3DataStore : IUploadDataStore
{
    /// <summary>S3's smallest part (every part but the last).</summary>
    public const long MinPartSize = 5L * 1024 * 1024;

    /// <summary>S3's largest number of parts.</summary>
    public const int MaxParts = 10_000;

    /// <summary>Requests one batch sends to S3 at once.</summary>
    private const int ParallelRequests = 8;

    /// <summary>S3's largest single copy (UploadPartCopy source range).</summary>
    private const long MaxCopySize = 5L * 1024 * 1024 * 1024;

    private readonly IAmazonS3 _s3;
    private readonly S3Options _options;
    private readonly UploadOptions _upload;
    private readonly string _staging;
    private readonly TimeProvider _time;
    private readonly ILogger<S3DataStore> _logger;

    public S3DataStore(IAmazonS3 s3, IOptions<S3Options> options, IOptions<UploadOptions> upload, TimeProvider time, ILogger<S3DataStore> logger)
    {
        _s3 = s3;
        _options = options.Value;
        _upload = upload.Value;
        _time = time;
        _logger = logger;
        _staging = _options.StagingDirectory ?? Path.Combine(_upload.ResolveStorageRoot(), "s3-staging");
    }

    /// <summary>Creates an S3 client from the options: path-style, and checksums only where required (Ceph RGW needs it).</summary>
    public static AmazonS3Client CreateClient(S3Options options)
    {
        var config = new AmazonS3Config
        {
            ForcePathStyle = options.ForcePathStyle,
            AuthenticationRegion = options.Region,
        };
        if (options.ServiceUrl is { } url)
            config.ServiceURL = url.ToString();
        else
            config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(options.Region);
        if (options.ChecksumWhenRequired)
        {
            config.RequestChecksumCalculation = Amazon.Runtime.RequestChecksumCalculation.WHEN_REQUIRED;
            config.ResponseChecksumValidation = Amazon.Runtime.ResponseChecksumValidation.WHEN_REQUIRED;
        }

        return options.AccessKey is { Length: > 0 } key
            ? new AmazonS3Client(new Amazon.Runtime.BasicAWSCredentials(key, options.SecretKey), config)
            : new AmazonS3Client(config);
    }

    public bool ReadsBeforePublish => false;

    public long PieceAlignmentFor(UploadRecord upload) => StateOf(upload).PartSize;

    public async Task<IReadOnlyList<string>> OpenAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(_staging);
        foreach (var file in Directory.EnumerateFiles(_staging))
            TryDelete(file); // staged bodies of requests that were never acknowledged
        try
        {
            await _s3.PutBucketAsync(new PutBucketRequest { BucketName = _options.Bucket }, cancellationToken);
            LogBucketCreated(_logger, _options.Bucket);
        }
        catch (AmazonS3Exception ex) when (ex.ErrorCode is "BucketAlreadyOwnedByYou" or "BucketAlreadyExists")
        {
        }

        return []; // nothing is published locally: an interrupted completion is finished by the engine's sweep
    }

    public Task<bool> HasDataAsync(UploadRecord upload, CancellationToken cancellationToken) => Task.FromResult(true);

    public Task<string?> PrepareAsync(UploadRecord upload, CancellationToken cancellationToken) => Guard(() => PrepareCoreAsync(upload, cancellationToken));

    private async Task<string?> PrepareCoreAsync(UploadRecord upload, CancellationToken cancellationToken)
    {
        var start = await _s3.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest
        {
            BucketName = _options.Bucket,
            Key = ObjectKey(upload),
        }, cancellationToken);
        return JsonSerializer.Serialize(new S3State(start.UploadId, PartSizeFor(upload)), S3JsonContext.Default.S3State);
    }

    public Task DiscardPreparedAsync(UploadRecord upload, CancellationToken cancellationToken) => Guard(() => DiscardPreparedCoreAsync(upload, cancellationToken));

    private async Task DiscardPreparedCoreAsync(UploadRecord upload, CancellationToken cancellationToken)
    {
        if (upload.StorageState is not null)
            await AbortAsync(upload, StateOf(upload), cancellationToken);
    }

    // The chunk size of a chunk protocol when it can be a part; otherwise the configured part size, raised so that the
    // largest file this upload may reach fits in 10,000 parts.
    private long PartSizeFor(UploadRecord upload)
    {
        long most = upload.Length ?? _upload.MaxFileSize;
        if (long.TryParse(upload.Property("chunkSize"), NumberStyles.None, CultureInfo.InvariantCulture, out long chunk)
            && chunk >= MinPartSize && chunk <= MaxCopySize && (most + chunk - 1) / chunk <= MaxParts - 1)
            return chunk;
        long size = Math.Max(_options.PartSize, MinPartSize);
        long needed = (most + MaxParts - 1) / MaxParts;
        if (size < needed)
            size = (needed + (1024 * 1024) - 1) / (1024 * 1024) * (1024 * 1024);
        return size;
    }

    public IStagedPiece Stage(UploadRecord upload, long offset) => new StagedFile(_staging, offset);

    public Task CommitAsync(UploadRecord upload, IReadOnlyList<PieceCommit> commits, CancellationToken cancellationToken) => Guard(() => CommitCoreAsync(upload, commits, cancellationToken));

    private async Task CommitCoreAsync(UploadRecord upload, IReadOnlyList<PieceCommit> commits, CancellationToken cancellationToken)
    {
        // The pieces of a batch go to S3 side by side (as the SDK's own multipart upload sends its parts): the batch
        // is durable when every one of them is.
        var state = StateOf(upload);
        var touched = new System.Collections.Concurrent.ConcurrentDictionary<long, bool>();
        await Parallel.ForEachAsync(commits, new ParallelOptions { MaxDegreeOfParallelism = ParallelRequests, CancellationToken = cancellationToken }, async (commit, ct) =>
        {
            var piece = (StagedFile)commit.Piece;
            long part = commit.Range.Offset / state.PartSize;
            var (start, end) = PartBounds(state, part, upload.Length);
            if (commit.Range.Offset == start && commit.Range.End == end && end - start > 0 && (end - start == state.PartSize || end == upload.Length))
            {
                await UploadPartAsync(upload, state, part, piece.Path!, commit.Range.Offset - piece.Offset, commit.Range.Length, ct);
            }
            else
            {
                // Part of a part: a durable fragment every node can see, joined into the part once the part is covered.
                await _s3.PutObjectAsync(new PutObjectRequest
                {
                    BucketName = _options.Bucket,
                    Key = FragmentKey(upload, part, commit.Range),
                    InputStream = new FileSlice(piece.Path!, commit.Range.Offset - piece.Offset, commit.Range.Length),
                    AutoCloseStream = true,
                    UseChunkEncoding = false,
                }, ct);
                touched[part] = true;
            }
        });

        foreach (var part in touched.Keys.Order())
            await TryAssemblePartAsync(upload, state, part, upload.Length, cancellationToken);
    }

    public IDataReader OpenData(UploadRecord upload) =>
        throw new NotSupportedException("The parts of an S3 multipart upload cannot be read before the object is complete.");

    /// <summary>Nothing to copy now: a concatenation's object is built from its parts' finished objects at publication.</summary>
    public Task CopyCompletedAsync(UploadRecord source, UploadRecord target, long targetOffset, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task PublishAsync(UploadRecord upload, CancellationToken cancellationToken) => Guard(() => PublishCoreAsync(upload, cancellationToken));

    private async Task PublishCoreAsync(UploadRecord upload, CancellationToken cancellationToken)
    {
        long length = upload.Length ?? throw new InvalidOperationException("Only an upload of known length is published.");
        var state = StateOf(upload);
        if (await LengthOfObjectAsync(ObjectKey(upload), cancellationToken) == length && !await MultipartExistsAsync(upload, state, cancellationToken))
            return; // published already (completion runs again after a crash)

        if (upload.Parts is { } parts)
        {
            await PublishConcatenationAsync(upload, state, parts, cancellationToken);
        }
        else if (length == 0)
        {
            await _s3.PutObjectAsync(new PutObjectRequest { BucketName = _options.Bucket, Key = ObjectKey(upload), ContentBody = "" }, cancellationToken);
            await AbortAsync(upload, state, cancellationToken);
        }
        else
        {
            long count = (length + state.PartSize - 1) / state.PartSize;
            var uploaded = await ListPartsAsync(upload, state, cancellationToken);
            for (long part = 0; part < count; part++)
            {
                if (!uploaded.ContainsKey((int)part + 1) && !await TryAssemblePartAsync(upload, state, part, length, cancellationToken))
                    throw new IOException($"Part {part + 1} of upload {upload.Id} is neither in S3 nor covered by fragments.");
            }

            await CompleteAsync(upload, state, cancellationToken);
        }

        await DeletePrefixAsync(FragmentPrefix(upload), cancellationToken);
    }

    public Task<CompletedData?> OpenCompletedAsync(UploadRecord upload, CancellationToken cancellationToken) => Guard(() => OpenCompletedCoreAsync(upload, cancellationToken));

    private async Task<CompletedData?> OpenCompletedCoreAsync(UploadRecord upload, CancellationToken cancellationToken)
    {
        string key = ObjectKey(upload);
        if (await LengthOfObjectAsync(key, cancellationToken) is not { } length)
            return null;
        Uri? redirect = null;
        if (_options.PresignDownloads)
        {
            redirect = new Uri(await _s3.GetPreSignedURLAsync(new GetPreSignedUrlRequest
            {
                BucketName = _options.Bucket,
                Key = key,
                Verb = HttpVerb.GET,
                Expires = _time.GetUtcNow().Add(_options.PresignExpiry).UtcDateTime,
            }));
        }

        return new CompletedData(length, null, (offset, count, ct) => Guard(async () =>
        {
            var request = new GetObjectRequest { BucketName = _options.Bucket, Key = key };
            if (count > 0 && (offset > 0 || count < length))
                request.ByteRange = new S3Range(offset, offset + count - 1);
            var response = await _s3.GetObjectAsync(request, ct);
            return response.ResponseStream;
        }), redirect);
    }

    public Task DeleteAsync(UploadRecord upload, CancellationToken cancellationToken) => Guard(() => DeleteCoreAsync(upload, cancellationToken));

    private async Task DeleteCoreAsync(UploadRecord upload, CancellationToken cancellationToken)
    {
        if (upload.StorageState is not null)
            await AbortAsync(upload, StateOf(upload), cancellationToken);
        await _s3.DeleteObjectAsync(_options.Bucket, ObjectKey(upload), cancellationToken);
        await DeletePrefixAsync(FragmentPrefix(upload), cancellationToken);
    }

    public Task<int> SweepAsync(DateTimeOffset cutoff, Func<string, CancellationToken, Task<bool>> isKnown, CancellationToken cancellationToken) => Guard(() => SweepCoreAsync(cutoff, isKnown, cancellationToken));

    private async Task<int> SweepCoreAsync(DateTimeOffset cutoff, Func<string, CancellationToken, Task<bool>> isKnown, CancellationToken cancellationToken)
    {
        int removed = 0;
        foreach (var file in Directory.EnumerateFiles(_staging))
        {
            if (File.GetLastWriteTimeUtc(file) < cutoff.UtcDateTime)
            {
                TryDelete(file);
                removed++;
            }
        }

        // Multipart uploads nobody records any more (a delete or a creation interrupted by a crash).
        string? keyMarker = null, idMarker = null;
        do
        {
            var page = await _s3.ListMultipartUploadsAsync(new ListMultipartUploadsRequest
            {
                BucketName = _options.Bucket,
                Prefix = _options.KeyPrefix + "objects/",
                KeyMarker = keyMarker,
                UploadIdMarker = idMarker,
            }, cancellationToken);
            foreach (var upload in page.MultipartUploads ?? [])
            {
                string hash = upload.Key[(upload.Key.LastIndexOf('/') + 1)..];
                if (upload.Initiated < cutoff.UtcDateTime && (!UploadKey.IsHash(hash) || !await KnowsUploadAsync(hash, upload.UploadId, isKnown, cancellationToken)))
                {
                    await _s3.AbortMultipartUploadAsync(_options.Bucket, upload.Key, upload.UploadId, cancellationToken);
                    removed++;
                }
            }

            keyMarker = page.IsTruncated == true ? page.NextKeyMarker : null;
            idMarker = page.IsTruncated == true ? page.NextUploadIdMarker : null;
        }
        while (keyMarker is not null);

        // Objects and fragments of uploads nobody records.
        string? token = null;
        do
        {
            var page = await _s3.ListObjectsV2Async(new ListObjectsV2Request { BucketName = _options.Bucket, Prefix = _options.KeyPrefix, ContinuationToken = token }, cancellationToken);
            foreach (var entry in page.S3Objects ?? [])
            {
                string? hash = HashOf(entry.Key);
                if (entry.LastModified < cutoff.UtcDateTime && (hash is null || !await isKnown(hash, cancellationToken)))
                {
                    await _s3.DeleteObjectAsync(_options.Bucket, entry.Key, cancellationToken);
                    removed++;
                }
            }

            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
        return removed;
    }

    // A multipart upload is known when a record names it (a record may exist with another, newer multipart upload).
    private static async Task<bool> KnowsUploadAsync(string hash, string uploadId, Func<string, CancellationToken, Task<bool>> isKnown, CancellationToken cancellationToken) =>
        await isKnown(hash, cancellationToken); // the record's own id is checked when it is deleted; a live record keeps its upload

    // ----- parts -----

    private static (long Start, long End) PartBounds(S3State state, long part, long? length)
    {
        long start = part * state.PartSize;
        long end = start + state.PartSize;
        return (start, length is { } l ? Math.Min(end, l) : end);
    }

    private async Task UploadPartAsync(UploadRecord upload, S3State state, long part, string path, long position, long length, CancellationToken cancellationToken)
    {
        await _s3.UploadPartAsync(new UploadPartRequest
        {
            BucketName = _options.Bucket,
            Key = ObjectKey(upload),
            UploadId = state.UploadId,
            PartNumber = (int)part + 1,
            FilePath = path,
            FilePosition = position,
            PartSize = length,
            UseChunkEncoding = false,
        }, cancellationToken);
    }

    /// <summary>Joins a part's fragments into the part once they cover it (the part's end must be known). True when the part is uploaded.</summary>
    private async Task<bool> TryAssemblePartAsync(UploadRecord upload, S3State state, long part, long? length, CancellationToken cancellationToken)
    {
        var (start, end) = PartBounds(state, part, length);
        if (length is null && end - start < state.PartSize)
            return false;
        var fragments = await ListFragmentsAsync(upload, part, cancellationToken);
        var covered = new RangeSet(fragments.Select(f => f.Range));
        if (end <= start || !covered.Contains(start, end - start))
            return false;

        // The fewest fragments that cover the part, in order (overlaps come from re-sent bytes: identical).
        var chosen = new List<(string Key, ByteRange Range)>();
        long position = start;
        foreach (var fragment in fragments.OrderBy(f => f.Range.Offset).ThenByDescending(f => f.Range.End))
        {
            if (position >= end)
                break;
            if (fragment.Range.Offset <= position && fragment.Range.End > position)
            {
                chosen.Add(fragment);
                position = fragment.Range.End;
            }
        }

        if (chosen.Count == 1 && chosen[0].Range.Offset == start && chosen[0].Range.End == end)
        {
            // Server-side copy: the bytes do not pass through this node.
            await _s3.CopyPartAsync(new CopyPartRequest
            {
                SourceBucket = _options.Bucket,
                SourceKey = chosen[0].Key,
                DestinationBucket = _options.Bucket,
                DestinationKey = ObjectKey(upload),
                UploadId = state.UploadId,
                PartNumber = (int)part + 1,
            }, cancellationToken);
        }
        else
        {
            string temp = Path.Combine(_staging, "part-" + Guid.NewGuid().ToString("N"));
            try
            {
                await using (var output = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 256 * 1024, FileOptions.Asynchronous))
                {
                    position = start;
                    foreach (var (key, range) in chosen)
                    {
                        long from = Math.Max(position, range.Offset);
                        long to = Math.Min(end, range.End);
                        using var response = await _s3.GetObjectAsync(new GetObjectRequest
                        {
                            BucketName = _options.Bucket,
                            Key = key,
                            ByteRange = new S3Range(from - range.Offset, to - range.Offset - 1),
                        }, cancellationToken);
                        await response.ResponseStream.CopyToAsync(output, cancellationToken);
                        position = to;
                    }
                }

                await UploadPartAsync(upload, state, part, temp, 0, end - start, cancellationToken);
            }
            finally
            {
                TryDelete(temp);
            }
        }

        foreach (var (key, _) in fragments)
            await _s3.DeleteObjectAsync(_options.Bucket, key, cancellationToken);
        return true;
    }

    private async Task<List<(string Key, ByteRange Range)>> ListFragmentsAsync(UploadRecord upload, long part, CancellationToken cancellationToken)
    {
        var fragments = new List<(string, ByteRange)>();
        string prefix = FragmentPrefix(upload) + part.ToString("D5", CultureInfo.InvariantCulture) + "/";
        string? token = null;
        do
        {
            var page = await _s3.ListObjectsV2Async(new ListObjectsV2Request { BucketName = _options.Bucket, Prefix = prefix, ContinuationToken = token }, cancellationToken);
            foreach (var entry in page.S3Objects ?? [])
            {
                var name = entry.Key[prefix.Length..].Split('-');
                if (name.Length == 2 && long.TryParse(name[0], NumberStyles.None, CultureInfo.InvariantCulture, out long offset)
                    && long.TryParse(name[1], NumberStyles.None, CultureInfo.InvariantCulture, out long count) && entry.Size == count)
                    fragments.Add((entry.Key, new ByteRange(offset, count)));
            }

            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
        return fragments;
    }

    private async Task<Dictionary<int, string>> ListPartsAsync(UploadRecord upload, S3State state, CancellationToken cancellationToken)
    {
        var parts = new Dictionary<int, string>();
        int? marker = null;
        while (true)
        {
            var page = await _s3.ListPartsAsync(new ListPartsRequest
            {
                BucketName = _options.Bucket,
                Key = ObjectKey(upload),
                UploadId = state.UploadId,
                PartNumberMarker = marker?.ToString(CultureInfo.InvariantCulture),
            }, cancellationToken);
            foreach (var part in page.Parts ?? [])
                parts[part.PartNumber ?? 0] = part.ETag;
            if (page.IsTruncated != true)
                return parts;
            marker = page.NextPartNumberMarker;
        }
    }

    private async Task CompleteAsync(UploadRecord upload, S3State state, CancellationToken cancellationToken)
    {
        var parts = await ListPartsAsync(upload, state, cancellationToken);
        await _s3.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
        {
            BucketName = _options.Bucket,
            Key = ObjectKey(upload),
            UploadId = state.UploadId,
            // Ceph RGW answers the first Complete with an empty ETag (tracker #58879): nothing here reads it.
            PartETags = [.. parts.OrderBy(p => p.Key).Select(p => new PartETag(p.Key, p.Value))],
        }, cancellationToken);
    }

    /// <summary>
    /// A concatenation's object from its parts' finished objects, in order: a part of at least 5 MiB (or the last) is
    /// copied server-side (UploadPartCopy, in pieces of at most 5 GiB); smaller ones are gathered through a local file
    /// until they make a part S3 accepts.
    /// </summary>
    private async Task PublishConcatenationAsync(UploadRecord upload, S3State state, List<string> parts, CancellationToken cancellationToken)
    {
        int number = 0;
        var gathered = new List<(string Key, long Length)>();
        long gatheredLength = 0;
        for (int i = 0; i < parts.Count; i++)
        {
            string key = ObjectKey(new UploadKey(upload.Owner, parts[i]).Hash);
            long length = await LengthOfObjectAsync(key, cancellationToken)
                ?? throw new IOException($"Part '{parts[i]}' of concatenation {upload.Id} is gone from the storage.");
            bool last = i == parts.Count - 1;
            if (gathered.Count == 0 && (length >= MinPartSize || last))
            {
                for (long from = 0; from < length || (length == 0 && from == 0); from += MaxCopySize)
                {
                    long count = Math.Min(MaxCopySize, length - from);
                    if (count == 0 && number > 0)
                        break;
                    await _s3.CopyPartAsync(new CopyPartRequest
                    {
                        SourceBucket = _options.Bucket,
                        SourceKey = key,
                        DestinationBucket = _options.Bucket,
                        DestinationKey = ObjectKey(upload),
                        UploadId = state.UploadId,
                        PartNumber = ++number,
                        FirstByte = count > 0 ? from : null,
                        LastByte = count > 0 ? from + count - 1 : null,
                    }, cancellationToken);
                    if (count == 0)
                        break;
                }

                continue;
            }

            gathered.Add((key, length));
            gatheredLength += length;
            if (gatheredLength >= MinPartSize || last)
            {
                await UploadGatheredAsync(upload, state, ++number, gathered, cancellationToken);
                gathered.Clear();
                gatheredLength = 0;
            }
        }

        await CompleteAsync(upload, state, cancellationToken);
    }

    private async Task UploadGatheredAsync(UploadRecord upload, S3State state, int number, List<(string Key, long Length)> sources, CancellationToken cancellationToken)
    {
        string temp = Path.Combine(_staging, "concat-" + Guid.NewGuid().ToString("N"));
        try
        {
            long total = 0;
            await using (var output = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 256 * 1024, FileOptions.Asynchronous))
            {
                foreach (var (key, length) in sources)
                {
                    if (length == 0)
                        continue;
                    using var response = await _s3.GetObjectAsync(_options.Bucket, key, cancellationToken);
                    await response.ResponseStream.CopyToAsync(output, cancellationToken);
                    total += length;
                }
            }

            await UploadPartAsync(upload, state, number - 1, temp, 0, total, cancellationToken);
        }
        finally
        {
            TryDelete(temp);
        }
    }

    private async Task<bool> MultipartExistsAsync(UploadRecord upload, S3State state, CancellationToken cancellationToken)
    {
        try
        {
            await _s3.ListPartsAsync(new ListPartsRequest { BucketName = _options.Bucket, Key = ObjectKey(upload), UploadId = state.UploadId, MaxParts = 1 }, cancellationToken);
            return true;
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return false; // NoSuchUpload (AWS), NoSuchKey (Ceph RGW 16)
        }
    }

    private async Task AbortAsync(UploadRecord upload, S3State state, CancellationToken cancellationToken)
    {
        try
        {
            await _s3.AbortMultipartUploadAsync(_options.Bucket, ObjectKey(upload), state.UploadId, cancellationToken);
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            // Completed or aborted already.
        }
    }

    private async Task<long?> LengthOfObjectAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            var head = await _s3.GetObjectMetadataAsync(_options.Bucket, key, cancellationToken);
            return head.ContentLength;
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    private async Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken)
    {
        string? token = null;
        do
        {
            var page = await _s3.ListObjectsV2Async(new ListObjectsV2Request { BucketName = _options.Bucket, Prefix = prefix, ContinuationToken = token }, cancellationToken);
            foreach (var entry in page.S3Objects ?? [])
                await _s3.DeleteObjectAsync(_options.Bucket, entry.Key, cancellationToken);
            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
    }

    // The engine treats IOException as a storage fault a retry can fix (503 for clients, back-off for the assembler).
    private static async Task Guard(Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (Exception ex) when (IsStoreFault(ex))
        {
            throw new IOException("The object store failed: " + ex.Message, ex);
        }
    }

    private static async Task<T> Guard<T>(Func<Task<T>> action)
    {
        try
        {
            return await action();
        }
        catch (Exception ex) when (IsStoreFault(ex))
        {
            throw new IOException("The object store failed: " + ex.Message, ex);
        }
    }

    // The SDK's own errors, and the network's, which it passes on unwrapped once its retries are spent: a refused or
    // reset connection (HttpRequestException, SocketException), a request that timed out (cancelled with a timeout).
    private static bool IsStoreFault(Exception ex) =>
        ex is AmazonServiceException or Amazon.Runtime.AmazonClientException or HttpRequestException or System.Net.Sockets.SocketException
        || (ex is OperationCanceledException && ex.InnerException is TimeoutException);

    // ----- names -----

    private string ObjectKey(UploadRecord upload) => ObjectKey(upload.Key.Hash);

    private string ObjectKey(string hash) => _options.KeyPrefix + "objects/" + hash;

    private string FragmentPrefix(UploadRecord upload) => _options.KeyPrefix + "fragments/" + upload.Key.Hash + "/";

    private string FragmentKey(UploadRecord upload, long part, ByteRange range) =>
        FragmentPrefix(upload) + part.ToString("D5", CultureInfo.InvariantCulture) + "/" +
        range.Offset.ToString(CultureInfo.InvariantCulture) + "-" + range.Length.ToString(CultureInfo.InvariantCulture);

    private string? HashOf(string key)
    {
        string rest = key[_options.KeyPrefix.Length..];
        string[] parts = rest.Split('/');
        string? hash = parts.Length >= 2 && parts[0] is "objects" or "fragments" ? parts[1] : null;
        return hash is not null && UploadKey.IsHash(hash) ? hash : null;
    }

    private static S3State StateOf(UploadRecord upload) =>
        upload.StorageState is { } json
            ? JsonSerializer.Deserialize(json, S3JsonContext.Default.S3State) ?? throw new InvalidOperationException("Empty S3 state.")
            : throw new InvalidOperationException($"Upload {upload.Id} has no S3 multipart upload (it was not created with the S3 data store).");

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
    }

    [LoggerMessage(EventId = 6001, Level = LogLevel.Information, Message = "S3 bucket {Bucket} created")]
    private static partial void LogBucketCreated(ILogger logger, string bucket);

    /// <summary>A staged piece in the node's staging folder: created on the first write, deleted when disposed.</summary>
    private sealed class StagedFile(string folder, long offset) : IStagedPiece
    {
        private SafeFileHandle? _handle;

        public string? Path { get; private set; }

        public long Offset { get; } = offset;

        public long Length { get; private set; }

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
        {
            if (bytes.IsEmpty)
                return;
            if (_handle is null)
            {
                Path = System.IO.Path.Combine(folder, Guid.NewGuid().ToString("N"));
                _handle = File.OpenHandle(Path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
            }

            await RandomAccess.WriteAsync(_handle, bytes, Length, cancellationToken);
            Length += bytes.Length;
        }

        public void Seal()
        {
            _handle?.Dispose();
            _handle = null;
        }

        public int Read(long position, Span<byte> buffer)
        {
            if (Path is null)
                return 0;
            using var handle = File.OpenHandle(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            return RandomAccess.Read(handle, buffer, position);
        }

        public void Dispose()
        {
            _handle?.Dispose();
            if (Path is not null)
                TryDelete(Path);
        }
    }

    /// <summary>A read-only window on a file, for S3 requests that need a seekable body of known length.</summary>
    private sealed class FileSlice(string path, long offset, long length) : Stream
    {
        private readonly FileStream _file = new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 64 * 1024);
        private long _position;

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;

        public override long Position
        {
            get => _position;
            set => _position = Math.Clamp(value, 0, length);
        }

        public override int Read(byte[] buffer, int offset2, int count)
        {
            int want = (int)Math.Min(count, length - _position);
            if (want <= 0)
                return 0;
            int read = RandomAccess.Read(_file.SafeFileHandle, buffer.AsSpan(offset2, want), offset + _position);
            _position += read;
            return read;
        }

        public override long Seek(long offset2, SeekOrigin origin)
        {
            Position = origin switch
            {
                SeekOrigin.Begin => offset2,
                SeekOrigin.Current => _position + offset2,
                _ => length + offset2,
            };
            return _position;
        }

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset2, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
                _file.Dispose();
            base.Dispose(disposing);
        }
    }
}

/// <summary>What the record carries for the S3 data store: the multipart upload and the part size every node uses.</summary>
internal sealed record S3State(string UploadId, long PartSize);

[System.Text.Json.Serialization.JsonSerializable(typeof(S3State))]
internal sealed partial class S3JsonContext : System.Text.Json.Serialization.JsonSerializerContext;
