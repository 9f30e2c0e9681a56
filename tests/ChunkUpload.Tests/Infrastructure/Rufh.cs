using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>Requests of the IETF draft "Resumable Uploads for HTTP" at /rufh, and checks of its answers.</summary>
public static class Rufh
{
    public const string PartialUpload = "application/partial-upload";
    public const string ProblemTypes = "https://iana.org/assignments/http-problem-types#";

    /// <summary>A creation request: <c>Upload-Complete</c> (null: none), optional <c>Upload-Length</c>, optional content.</summary>
    public static HttpRequestMessage Create(int? interop, string? complete, byte[]? content = null, long? length = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/rufh/") { Content = new ByteArrayContent(content ?? []) };
        Interop(request, interop);
        if (complete is not null)
            request.Headers.TryAddWithoutValidation("Upload-Complete", complete);
        if (length is { } total)
            request.Headers.TryAddWithoutValidation("Upload-Length", total.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return request;
    }

    /// <summary>An append: <c>Upload-Offset</c>, <c>Upload-Complete</c> (null: none), the content with <paramref name="contentType"/> (null: none).</summary>
    public static HttpRequestMessage Patch(string url, int? interop, long offset, string? complete, byte[] content, string? contentType = PartialUpload)
    {
        var request = new HttpRequestMessage(HttpMethod.Patch, url) { Content = new ByteArrayContent(content) };
        if (contentType is not null)
            request.Content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        Interop(request, interop);
        request.Headers.TryAddWithoutValidation("Upload-Offset", offset.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (complete is not null)
            request.Headers.TryAddWithoutValidation("Upload-Complete", complete);
        return request;
    }

    public static HttpRequestMessage Head(string url, int? interop) => Interop(new HttpRequestMessage(HttpMethod.Head, url), interop);

    public static HttpRequestMessage Delete(string url, int? interop) => Interop(new HttpRequestMessage(HttpMethod.Delete, url), interop);

    /// <summary>Creates an upload without content and returns its URL.</summary>
    public static async Task<string> CreateEmptyAsync(HttpClient http, int? interop, long? length = null)
    {
        using var response = await http.SendAsync(Create(interop, "?0", null, length));
        Assert.Equal(201, (int)response.StatusCode);
        return response.Headers.Location!.OriginalString;
    }

    public static string IdOf(string url) => url[(url.LastIndexOf('/') + 1)..];

    /// <summary>The single value of a response header, or null.</summary>
    public static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(", ", values) : null;

    public static long Offset(HttpResponseMessage response) => long.Parse(Header(response, "Upload-Offset")!, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The offset the server reports in an offset retrieval.</summary>
    public static async Task<long> OffsetAsync(HttpClient http, string url)
    {
        using var head = await http.SendAsync(Head(url, null));
        Assert.Equal(204, (int)head.StatusCode);
        return Offset(head);
    }

    /// <summary>Asserts a problem+json refusal with the stable code (and the draft's problem type, when given) and returns it.</summary>
    public static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, int status, string code, string? draftType = null)
    {
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(code, problem.GetProperty("code").GetString());
        Assert.Equal(status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()));
        Assert.Equal(draftType is null ? "urn:chunkupload:error:" + code : ProblemTypes + draftType, problem.GetProperty("type").GetString());
        return problem;
    }

    private static HttpRequestMessage Interop(HttpRequestMessage request, int? interop)
    {
        if (interop is { } version)
            request.Headers.TryAddWithoutValidation("Upload-Draft-Interop-Version", version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return request;
    }
}
