using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ChunkUpload.Core;
using ChunkUpload.Core.Contracts;
using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Uploads;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Services;

/// <summary>Completion webhook, section <c>Webhook</c>: off unless <c>Url</c> is set.</summary>
public sealed class WebhookOptions
{
    public const string SectionName = "Webhook";

    public Uri? Url { get; set; }

    /// <summary>Key (at least 32 characters) with which each delivery is signed (<c>ChunkUpload-Signature</c>); none: unsigned.</summary>
    public string? Secret { get; set; }

    /// <summary>First retry delay; each failure doubles it, up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan InitialRetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromMinutes(5);

    [Range(1, 300)]
    public int TimeoutSeconds { get; set; } = 10;

    /// <summary>Deliveries in flight at once, so that one slow receiver call does not hold up the others.</summary>
    [Range(1, 64)]
    public int MaxParallelDeliveries { get; set; } = 4;
}

/// <summary>
/// Delivers the completion outbox: one POST per finished file (JSON: id, identifier, fileName, size, sha256, owner,
/// completedAt) with the header <c>Idempotency-Key: {id}</c> and, with a secret, <c>ChunkUpload-Signature:
/// t={unix seconds},v1={hex HMAC-SHA256(secret, "{t}.{body}")}</c>; retried with exponential back-off until the
/// receiver answers 2xx (a redirect is not followed: it is a failure). At least once; exactly once for a receiver
/// that honours the key. Survives restarts (the outbox is durable). An event whose upload was deleted before it
/// went out is dropped. The loop never ends the host: an unexpected fault is logged and the loop goes on after a
/// back-off.
/// </summary>
public sealed partial class WebhookService(
    ICompletionOutbox outbox,
    UploadEngine engine,
    HttpClient http,
    IOptions<WebhookOptions> options,
    TimeProvider time,
    ILogger<WebhookService> logger) : BackgroundService
{
    public const string SignatureHeader = "ChunkUpload-Signature";

    /// <summary>The most of a receiver's answer that is read (it is not used; reading a little lets the connection be reused).</summary>
    private const int MaxResponseBytes = 4096;

    /// <summary>The primary handler: no redirects, no cookies.</summary>
    public static HttpMessageHandler CreateHandler() => new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false };

    private readonly ConcurrentDictionary<string, (int Failures, DateTimeOffset NextAttempt)> _backoff = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        http.Timeout = TimeSpan.FromSeconds(settings.TimeoutSeconds);
        int faults = 0;
        var outboxRetry = settings.InitialRetryDelay;
        while (!stoppingToken.IsCancellationRequested)
        {
            DateTimeOffset? next;
            try
            {
                next = await DeliverDueAsync(settings, stoppingToken);
                faults = 0;
                outboxRetry = settings.InitialRetryDelay;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (Core.StorageFaults.IsTransient(ex))
            {
                // The outbox's store (a shared database) is out of reach: the events wait there; look again later
                // instead of ending the service (which would stop the whole node).
                LogOutboxUnavailable(logger, ex, outboxRetry.TotalSeconds);
                try
                {
                    await Task.Delay(outboxRetry, time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                outboxRetry = TimeSpan.FromTicks(Math.Min(settings.MaxRetryDelay.Ticks, outboxRetry.Ticks * 2));
                continue;
            }
            catch (Exception ex)
            {
                // A bug must not stop the node (BackgroundServiceExceptionBehavior.StopHost): log it, pause, go on.
                faults++;
                var pause = Backoff(settings, faults);
                LogLoopFault(logger, ex, pause.TotalSeconds);
                next = time.GetUtcNow() + pause;
            }

            var wait = next is { } at ? at - time.GetUtcNow() : Timeout.InfiniteTimeSpan;
            using var wake = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            try
            {
                var signal = outbox.WaitForWorkAsync(wake.Token).AsTask();
                var delay = wait == Timeout.InfiniteTimeSpan ? Task.Delay(Timeout.InfiniteTimeSpan, time, wake.Token) : Task.Delay(wait < TimeSpan.Zero ? TimeSpan.Zero : wait, time, wake.Token);
                await Task.WhenAny(signal, delay);
                await wake.CancelAsync();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private static TimeSpan Backoff(WebhookOptions settings, int failures) =>
        TimeSpan.FromTicks(Math.Min(settings.MaxRetryDelay.Ticks, settings.InitialRetryDelay.Ticks * (1L << Math.Min(failures - 1, 20))));

    /// <summary>Sends every event that is due, a few at a time; returns when the next retry is due, if any.</summary>
    private async Task<DateTimeOffset?> DeliverDueAsync(WebhookOptions settings, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var due = new List<CompletionEvent>();
        DateTimeOffset? next = null;
        foreach (var completion in await outbox.PendingAsync(cancellationToken))
        {
            if (_backoff.TryGetValue(completion.Id, out var state) && state.NextAttempt > now)
                next = next is { } n && n < state.NextAttempt ? n : state.NextAttempt;
            else
                due.Add(completion);
        }

        var retries = new ConcurrentBag<DateTimeOffset>();
        await Parallel.ForEachAsync(due, new ParallelOptions { MaxDegreeOfParallelism = settings.MaxParallelDeliveries, CancellationToken = cancellationToken },
            async (completion, token) =>
            {
                if (await DeliverAsync(settings, completion, token) is { } retryAt)
                    retries.Add(retryAt);
            });
        foreach (var at in retries)
            next = next is { } m && m < at ? m : at;
        return next;
    }

    /// <summary>One event: delivered (or dropped) and acknowledged, or the time of its next attempt.</summary>
    private async Task<DateTimeOffset?> DeliverAsync(WebhookOptions settings, CompletionEvent completion, CancellationToken cancellationToken)
    {
        // The event is recorded just before the file is published, so an upload still "assembling" is announced.
        if (await engine.FindAsync(new Caller(completion.Owner, ""), completion.Identifier, cancellationToken) is null)
        {
            await outbox.AcknowledgeAsync(completion.Id, cancellationToken);
            _backoff.TryRemove(completion.Id, out _);
            LogDropped(logger, completion.Identifier, completion.Id);
            return null;
        }

        if (await TrySendAsync(settings, completion, cancellationToken))
        {
            await outbox.AcknowledgeAsync(completion.Id, cancellationToken);
            _backoff.TryRemove(completion.Id, out _);
            LogDelivered(logger, completion.Identifier, completion.Id);
            return null;
        }

        int failures = (_backoff.TryGetValue(completion.Id, out var state) ? state.Failures : 0) + 1;
        var delay = Backoff(settings, failures);
        var at = time.GetUtcNow() + delay;
        _backoff[completion.Id] = (failures, at);
        LogRetrying(logger, completion.Identifier, failures, delay.TotalSeconds);
        return at;
    }

    private async Task<bool> TrySendAsync(WebhookOptions settings, CompletionEvent completion, CancellationToken cancellationToken)
    {
        byte[] body = JsonSerializer.SerializeToUtf8Bytes(completion, JsonSerializerOptions.Web);
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        using var request = new HttpRequestMessage(HttpMethod.Post, settings.Url) { Content = content };
        request.Headers.Add("Idempotency-Key", completion.Id);
        if (!string.IsNullOrEmpty(settings.Secret))
            request.Headers.Add(SignatureHeader, Sign(settings.Secret, time.GetUtcNow().ToUnixTimeSeconds(), body));
        try
        {
            // Headers only: a receiver that answers with an endless body must not hold the delivery.
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            await DrainSomeAsync(response, cancellationToken);
            return response.IsSuccessStatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return false;
        }
    }

    private static async Task DrainSomeAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength is not (> 0 and <= MaxResponseBytes))
            return;
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[MaxResponseBytes];
        while (await stream.ReadAsync(buffer, cancellationToken) > 0)
        {
        }
    }

    /// <summary><c>t={unixSeconds},v1={hex HMAC-SHA256(secret, "{t}." + body)}</c>.</summary>
    public static string Sign(string secret, long unixSeconds, ReadOnlySpan<byte> body)
    {
        string t = unixSeconds.ToString(CultureInfo.InvariantCulture);
        byte[] prefix = Encoding.UTF8.GetBytes(t + ".");
        byte[] signed = new byte[prefix.Length + body.Length];
        prefix.CopyTo(signed, 0);
        body.CopyTo(signed.AsSpan(prefix.Length));
        return "t=" + t + ",v1=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), signed));
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Completion of upload {Identifier} delivered to the webhook (event {EventId})")]
    private static partial void LogDelivered(ILogger logger, LogText identifier, string eventId);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Warning, Message = "The completion outbox could not be read; trying again in {Seconds} s")]
    private static partial void LogOutboxUnavailable(ILogger logger, Exception exception, double seconds);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Webhook for upload {Identifier} failed {Failures} times; next try in {Seconds} s")]
    private static partial void LogRetrying(ILogger logger, LogText identifier, int failures, double seconds);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Information, Message = "Completion of upload {Identifier} not announced: the upload is gone (event {EventId})")]
    private static partial void LogDropped(ILogger logger, LogText identifier, string eventId);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Error, Message = "Webhook delivery failed unexpectedly; trying again in {Seconds} s")]
    private static partial void LogLoopFault(ILogger logger, Exception exception, double seconds);
}
