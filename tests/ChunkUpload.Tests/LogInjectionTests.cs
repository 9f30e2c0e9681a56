using System.Net;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.AspNetCore.Mvc.Testing;

namespace ChunkUpload.Tests;

/// <summary>
/// Log lines cannot be forged: identifiers, paths, parameter names and values a client sends reach the server's own
/// log lines with line breaks and other control characters escaped.
/// </summary>
public sealed class LogInjectionTests : IDisposable
{
    private const string Forged = "[12:00:00 INF] ChunkUpload: FORGED administrator login";
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Hostile_Identifiers_Paths_And_Parameters_Reach_The_Log_Without_Raw_Line_Breaks()
    {
        using var app = new ChunkUploadApplication(_dir.StorageRoot);
        var http = app.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        string hostile = "evil\r\n" + Forged + "\u0085\u2028\u001b[31m";
        string escaped = Uri.EscapeDataString(hostile);
        string geometry = "resumableChunkNumber=1&resumableChunkSize=1000&resumableTotalSize=1000&resumableFilename=f.bin&resumableRelativePath=f.bin";

        var requests = new List<HttpRequestMessage>
        {
            // An identifier in the query string (the chunk test and a raw chunk), refused as invalid.
            new(HttpMethod.Get, $"/upload?{geometry}&resumableIdentifier={escaped}"),
            new(HttpMethod.Post, $"/upload?{geometry}&resumableIdentifier={escaped}") { Content = new ByteArrayContent(new byte[1000]) },
            // A parameter name echoed in the refusal's detail.
            new(HttpMethod.Get, $"/upload?{geometry}&resumableIdentifier=ok-1&{escaped}=1&{escaped}=2"),
            // Identifiers in the path of every protocol-neutral route, and of tus and the IETF draft.
            new(HttpMethod.Get, "/uploads/" + escaped),
            new(HttpMethod.Delete, "/uploads/" + escaped),
            new(HttpMethod.Get, "/files/" + escaped),
            new(HttpMethod.Head, "/tus/" + escaped) { Headers = { { "Tus-Resumable", "1.0.0" } } },
            new(HttpMethod.Get, "/no-such-route/" + escaped),
        };
        foreach (var request in requests)
        {
            using var response = await http.SendAsync(request);
            Assert.True((int)response.StatusCode >= 400, $"{request.Method} {request.RequestUri} answered {(int)response.StatusCode}.");
        }

        var ours = app.Logs.Entries.Where(e => e.Category.StartsWith("ChunkUpload", StringComparison.Ordinal)).ToList();
        // The hostile text did reach the log (so the check below is not vacuous), once per refused request at least.
        Assert.True(ours.Count(e => e.Message.Contains(Forged, StringComparison.Ordinal)) >= 6,
            "Expected the hostile values in the log: " + string.Join(" | ", ours.Select(e => e.Message)));
        foreach (var entry in ours)
        {
            Assert.False(entry.Message.Any(c => char.IsControl(c) || c is '\u2028' or '\u2029'),
                $"A raw control character or line break in a log line of {entry.Category}: {entry.Message.Replace("\r", "<CR>", StringComparison.Ordinal).Replace("\n", "<LF>", StringComparison.Ordinal)}");
        }

        Assert.Contains(ours, e => e.Message.Contains("evil\\r\\n" + Forged, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("plain name.bin", "plain name.bin")]
    [InlineData("a\r\nb", "a\\r\\nb")]
    [InlineData("tab\there", "tab\\there")]
    [InlineData("esc\u001b[31m nel\u0085 ls\u2028 ps\u2029 del\u007f", "esc\\u001b[31m nel\\u0085 ls\\u2028 ps\\u2029 del\\u007f")]
    [InlineData("", "")]
    [InlineData(null, "")]
    public void Log_Text_Escapes_Every_Control_Character_And_Line_Separator(string? value, string expected)
    {
        Assert.Equal(expected, new ChunkUpload.Core.LogText(value).ToString());
    }
}
