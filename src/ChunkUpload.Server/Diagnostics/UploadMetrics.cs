using ChunkUpload.Core;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Hooks;
using ChunkUpload.Core.Uploads;
using Microsoft.Extensions.Options;
using Prometheus;

namespace ChunkUpload.Server.Diagnostics;

/// <summary>
/// The server's metrics in a registry of its own (prometheus-net), exported at <c>/metrics</c>. Counters and
/// histograms follow the engine's notifications (this is an <see cref="IUploadObserver"/>) and the HTTP layer's
/// refusals; gauges (uploads in progress, assembly queue, webhook backlog, free disk) are read when scraped. Label
/// values come from fixed sets (protocol names, catalog codes), never from clients.
/// </summary>
public sealed class UploadMetrics : IUploadObserver
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly Counter _created;
    private readonly Counter _completed;
    private readonly Counter _failed;
    private readonly Counter _deleted;
    private readonly Counter _receivedBytes;
    private readonly Histogram _acknowledgement;
    private readonly Histogram _batchPieces;
    private readonly Histogram _batchBytes;
    private readonly Histogram _batchSeconds;
    private readonly Histogram _completion;
    private readonly Counter _rejections;
    private readonly Gauge _inProgress;
    private readonly Gauge _queue;
    private readonly Gauge _webhookBacklog;
    private readonly Gauge _freeBytes;
    private readonly Gauge _minFreeBytes;

    public UploadMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(Registry);
        string[] protocol = ["protocol"];
        _created = factory.CreateCounter("chunkupload_uploads_created_total", "Uploads started, by protocol.", protocol);
        _completed = factory.CreateCounter("chunkupload_uploads_completed_total", "Uploads completed (every byte stored, hashed, checked and published), by protocol.", protocol);
        _failed = factory.CreateCounter("chunkupload_uploads_failed_total", "Uploads that failed for good (checksum mismatch, refused by the application, lost part), by protocol.", protocol);
        _deleted = factory.CreateCounter("chunkupload_uploads_deleted_total",
            "Uploads removed, by protocol and reason (request: a client asked; expired: idle too long; retention: a completed file past its retention).",
            ["protocol", "reason"]);
        _receivedBytes = factory.CreateCounter("chunkupload_received_bytes_total",
            "Bytes of upload data received and durably stored, by protocol (bytes a client sent again are not counted twice).", protocol);
        _acknowledgement = factory.CreateHistogram("chunkupload_write_acknowledgement_seconds",
            "Time from the end of a write request's body (a chunk, a part, a PATCH) to its acknowledgement: the wait for the group commit that makes its bytes durable.",
            protocol, new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 17) });
        _batchPieces = factory.CreateHistogram("chunkupload_assembly_batch_pieces", "Staged pieces committed in one assembler batch (one flush and one journal write for all of them).",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(1, 2, 10) });
        _batchBytes = factory.CreateHistogram("chunkupload_assembly_batch_bytes", "New bytes committed in one assembler batch.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(64 * 1024, 4, 10) });
        _batchSeconds = factory.CreateHistogram("chunkupload_assembly_batch_seconds", "Time to commit and journal one assembler batch.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 17) });
        _completion = factory.CreateHistogram("chunkupload_completion_seconds",
            "Time from the last byte of an upload being stored to the upload being complete (whole-file hash, checks, authorization, publication), by protocol.",
            protocol, new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2.5, 16) });
        _rejections = factory.CreateCounter("chunkupload_rejections_total", "Requests refused, by the error catalog's code and the HTTP status sent.", ["code", "status"]);
        _inProgress = factory.CreateGauge("chunkupload_uploads_in_progress",
            "Unfinished uploads in this process's registry, by protocol and state (receiving; assembling once every byte is stored).", ["protocol", "state"]);
        _queue = factory.CreateGauge("chunkupload_assembly_queue_length", "Uploads waiting for the assembler's next batch.");
        _webhookBacklog = factory.CreateGauge("chunkupload_webhook_backlog", "Completion events in the outbox not yet delivered to the webhook.");
        _freeBytes = factory.CreateGauge("chunkupload_storage_free_bytes", "Free bytes on the storage root's volume (available to this process).");
        _minFreeBytes = factory.CreateGauge("chunkupload_storage_min_free_bytes", "The free-space floor (Upload:MinFreeSpace): below it new data is refused with 507.");
    }

    /// <summary>The registry <c>/metrics</c> exports; this server's metrics only.</summary>
    public CollectorRegistry Registry { get; }

    /// <summary>Counts a refusal (<see cref="Http.ErrorHandlingMiddleware"/>, the protocol adapters, authentication and the rate limiter call this).</summary>
    public void Rejected(UploadError error, int status) =>
        _rejections.WithLabels(error.Code, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();

    /// <summary>Counts a refusal of a request, when the server's metrics are registered.</summary>
    public static void Rejected(HttpContext context, UploadError error, int? status = null) =>
        context.RequestServices.GetService<UploadMetrics>()?.Rejected(error, status ?? error.Status);

    /// <summary>Reads the gauges that describe the moment: called before each export.</summary>
    public async Task UpdateGaugesAsync(UploadEngine engine, ICompletionOutbox outbox, UploadOptions options, CancellationToken cancellationToken)
    {
        // Series of uploads no longer in progress drop to zero instead of keeping their last value.
        foreach (var labels in _inProgress.GetAllLabelValues())
            _inProgress.WithLabels(labels).Set(0);
        foreach (var count in engine.CountActive())
            _inProgress.WithLabels(count.Protocol, count.State).Set(count.Count);
        _queue.Set(engine.AssemblyQueueLength);
        _minFreeBytes.Set(options.MinFreeSpace);
        if (FreeBytes(options.ResolveStorageRoot()) is { } free)
            _freeBytes.Set(free);
        _webhookBacklog.Set(await outbox.CountPendingAsync(cancellationToken));
    }

    /// <summary>Free bytes on the volume holding <paramref name="root"/>; null when it cannot be read.</summary>
    public static long? FreeBytes(string root)
    {
        try
        {
            return new DriveInfo(root).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public void Started(UploadRecord upload) => _created.WithLabels(upload.Protocol).Inc();

    public void Completed(UploadRecord upload) => _completed.WithLabels(upload.Protocol).Inc();

    public void Failed(UploadRecord upload, string reason) => _failed.WithLabels(upload.Protocol).Inc();

    public void Deleted(UploadRecord upload, DeletionReason reason) =>
        _deleted.WithLabels(upload.Protocol, reason switch
        {
            DeletionReason.Expired => "expired",
            DeletionReason.Retention => "retention",
            _ => "request",
        }).Inc();

    public void BatchStored(UploadRecord upload, int pieces, long bytes, TimeSpan duration)
    {
        _receivedBytes.WithLabels(upload.Protocol).Inc(bytes);
        _batchPieces.Observe(pieces);
        _batchBytes.Observe(bytes);
        _batchSeconds.Observe(duration.TotalSeconds);
    }

    public void WriteAcknowledged(UploadRecord upload, long bytes, TimeSpan afterBody) =>
        _acknowledgement.WithLabels(upload.Protocol).Observe(afterBody.TotalSeconds);

    public void CompletionTimed(UploadRecord upload, TimeSpan sinceAllStored) =>
        _completion.WithLabels(upload.Protocol).Observe(sinceAllStored.TotalSeconds);
}
