using System.ComponentModel.DataAnnotations;
using System.Net.Http.Json;
using ChunkUpload.Core;
using ChunkUpload.Core.Contracts;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Services;

/// <summary>Completion webhook, section <c>Webhook</c>: off unless <c>Url</c> is set.</summary>
public sealed class WebhookOptions
{
    public const string SectionName = "Webhook";

    public Uri? Url { get; set; }

    /// <summary>First retry delay; each failure doubles it, up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan InitialRetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromMinutes(5);

    [Range(1, 300)]
    public int TimeoutSeconds { get; set; } = 10;
}

/// <summary>
/// Delivers the completion outbox: one POST per finished file (JSON: id, identifier, fileName, size, sha256, owner,
/// completedAt) with the header <c>Idempotency-Key: {id}</c>, retried with exponential back-off until the receiver
/// answers 2xx. At least once; exactly once for a receiver that honours the key. Survives restarts (the outbox is
/// on disk).
/// </summary>
public sealed partial class WebhookService(
    ICompletionOutbox outbox,
    HttpClient http,
    IOptions<WebhookOptions> options,
    TimeProvider time,
    ILogger<WebhookService> logger) : BackgroundService
{
    private readonly Dictionary<string, (int Failures, DateTimeOffset NextAttempt)> _backoff = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        http.Timeout = TimeSpan.FromSeconds(settings.TimeoutSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            var next = await DeliverDueAsync(settings, stoppingToken);
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

    /// <summary>Sends every event that is due; returns when the next retry is due, if any.</summary>
    private async Task<DateTimeOffset?> DeliverDueAsync(WebhookOptions settings, CancellationToken cancellationToken)
    {
        DateTimeOffset? next = null;
        foreach (var completion in await outbox.PendingAsync(cancellationToken))
        {
            var now = time.GetUtcNow();
            if (_backoff.TryGetValue(completion.Id, out var state) && state.NextAttempt > now)
            {
                next = next is { } n && n < state.NextAttempt ? n : state.NextAttempt;
                continue;
            }

            if (await TrySendAsync(settings.Url!, completion, cancellationToken))
            {
                await outbox.AcknowledgeAsync(completion.Id, cancellationToken);
                _backoff.Remove(completion.Id);
                LogDelivered(logger, completion.Identifier, completion.Id);
                continue;
            }

            int failures = state.Failures + 1;
            var delay = TimeSpan.FromTicks(Math.Min(settings.MaxRetryDelay.Ticks, settings.InitialRetryDelay.Ticks * (1L << Math.Min(failures - 1, 20))));
            var at = time.GetUtcNow() + delay;
            _backoff[completion.Id] = (failures, at);
            next = next is { } m && m < at ? m : at;
            LogRetrying(logger, completion.Identifier, failures, delay.TotalSeconds);
        }

        return next;
    }

    private async Task<bool> TrySendAsync(Uri url, CompletionEvent completion, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = JsonContent.Create(completion) };
        request.Headers.Add("Idempotency-Key", completion.Id);
        try
        {
            using var response = await http.SendAsync(request, cancellationToken);
            return response.IsSuccessStatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return false;
        }
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Completion of upload {Identifier} delivered to the webhook (event {EventId})")]
    private static partial void LogDelivered(ILogger logger, LogText identifier, string eventId);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Webhook for upload {Identifier} failed {Failures} times; next try in {Seconds} s")]
    private static partial void LogRetrying(ILogger logger, LogText identifier, int failures, double seconds);
}
