using System.Net.Http.Json;
using System.Text.Json.Serialization;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Hooks;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Security;

/// <summary>
/// Asks the main application at <see cref="AuthOptions.AuthorizationUrl"/> (a POST with the JSON below) whether an
/// upload may start, and again whether the finished file may be kept. 2xx allows; 401/403 refuses (the reason from
/// a JSON <c>{"reason": "…"}</c> body is shown to the client); anything else, or no answer within the timeout, is a
/// transient 503 so the client retries.
/// </summary>
public sealed class HttpCallbackAuthorizer(HttpClient http, IOptions<AuthOptions> options) : IUploadAuthorizer
{
    public async Task AuthorizeAsync(UploadAuthorization request, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(settings.AuthorizationTimeoutSeconds));
        var payload = new CallbackPayload(
            request.Event == UploadEvent.Start ? "start" : "complete",
            request.Owner,
            request.Identifier,
            request.FileName,
            request.TotalSize,
            request.Sha256);
        HttpResponseMessage response;
        try
        {
            response = await http.PostAsJsonAsync(settings.AuthorizationUrl, payload, CallbackJsonContext.Default.CallbackPayload, timeout.Token);
        }
        catch (Exception ex) when (ex is HttpRequestException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new UploadException(UploadErrors.AuthorizationUnavailable,
                "The application that authorizes uploads did not answer; try again shortly.", ex) { RetryAfterSeconds = 5 };
        }

        using (response)
        {
            if (response.IsSuccessStatusCode)
                return;
            if ((int)response.StatusCode is 401 or 403)
            {
                string? reason = null;
                try
                {
                    reason = (await response.Content.ReadFromJsonAsync(CallbackJsonContext.Default.CallbackRefusal, timeout.Token))?.Reason;
                }
                catch (Exception ex) when (ex is System.Text.Json.JsonException or NotSupportedException or HttpRequestException or OperationCanceledException)
                {
                    // No reason given.
                }

                throw new UploadException(UploadErrors.UploadRefused,
                    string.IsNullOrWhiteSpace(reason) ? "The application refused this upload." : "The application refused this upload: " + reason);
            }

            throw new UploadException(UploadErrors.AuthorizationUnavailable,
                $"The application that authorizes uploads answered {(int)response.StatusCode}; try again shortly.") { RetryAfterSeconds = 5 };
        }
    }
}

public sealed record CallbackPayload(
    [property: JsonPropertyName("event")] string Event,
    [property: JsonPropertyName("owner")] string Owner,
    [property: JsonPropertyName("identifier")] string Identifier,
    [property: JsonPropertyName("fileName")] string FileName,
    [property: JsonPropertyName("totalSize")] long TotalSize,
    [property: JsonPropertyName("sha256")] string? Sha256);

public sealed record CallbackRefusal([property: JsonPropertyName("reason")] string? Reason);

[JsonSerializable(typeof(CallbackPayload))]
[JsonSerializable(typeof(CallbackRefusal))]
internal sealed partial class CallbackJsonContext : JsonSerializerContext;
