using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ChunkUpload.BrowserTests.Infrastructure;

/// <summary>What the server says of an upload the page is sending (<c>GET /uploads/{id}</c>), for the browser tests.</summary>
internal static partial class ServerStatus
{
    /// <summary>The status, or null while the server has no such upload.</summary>
    public static async Task<JsonNode?> GetAsync(HttpClient http, string id)
    {
        using var response = await http.GetAsync(new Uri("uploads/" + Uri.EscapeDataString(id), UriKind.Relative));
        return response.StatusCode == HttpStatusCode.OK ? JsonNode.Parse(await response.Content.ReadAsStringAsync()) : null;
    }

    /// <summary>Polls the status until <paramref name="condition"/> holds, for at most a minute.</summary>
    public static async Task WaitForAsync(HttpClient http, string id, Func<JsonNode, bool> condition, Func<string>? context = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var status = await GetAsync(http, id);
            if (status is not null && condition(status))
                return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"server status of {id} never matched; last: {status?.ToJsonString() ?? "404"}{(context is null ? "" : "\n" + context())}");
            await Task.Delay(50);
        }
    }

    /// <summary>resumable.js's and flow.js's default identifier: size-name without chars outside [0-9a-zA-Z_-].</summary>
    public static string ResumableIdentifier(string file) =>
        new FileInfo(file).Length.ToString(CultureInfo.InvariantCulture) + "-" + IdentifierJunk().Replace(Path.GetFileName(file), "");

    [GeneratedRegex("[^0-9a-zA-Z_-]")]
    private static partial Regex IdentifierJunk();
}
