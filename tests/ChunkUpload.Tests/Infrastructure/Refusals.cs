using System.Net;
using System.Text.Json;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>
/// A refusal in whatever shape its protocol answers with, reduced to status and stable code: problem+json
/// (<c>code</c>), Fine Uploader's JSON (<c>code</c> beside <c>success: false</c>), Google's JSON
/// (<c>error.errors[0].reason</c>), or the text line <c>code: detail</c> (nginx, append).
/// </summary>
public static class Refusals
{
    public static async Task AssertRefusedAsync(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status} {code}, got {(int)response.StatusCode}: {body}");
        Assert.Equal(code, CodeOf(response.Content.Headers.ContentType?.MediaType, body));
    }

    public static string? CodeOf(string? mediaType, string body)
    {
        switch (mediaType)
        {
            case "text/plain":
                int colon = body.IndexOf(':', StringComparison.Ordinal);
                Assert.True(colon > 0, "A text refusal is 'code: detail': " + body);
                Assert.False(string.IsNullOrWhiteSpace(body[(colon + 1)..]), "The refusal has no detail: " + body);
                return body[..colon];
            case "application/problem+json":
            case "application/json":
                var root = JsonDocument.Parse(body).RootElement;
                if (root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
                {
                    Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()), body);
                    return error.GetProperty("errors")[0].GetProperty("reason").GetString();
                }

                string? detail = root.TryGetProperty("detail", out var d) ? d.GetString() : root.TryGetProperty("error", out var e) ? e.GetString() : null;
                Assert.False(string.IsNullOrWhiteSpace(detail), "The refusal has no detail: " + body);
                return root.TryGetProperty("code", out var c) ? c.GetString() : null;
            default:
                Assert.Fail($"A refusal of type '{mediaType}': {body}");
                return null;
        }
    }
}
