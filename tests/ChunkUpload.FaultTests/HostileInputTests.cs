using System.Text.Json;
using ChunkUpload.FaultTests.Infrastructure;
using Xunit.Abstractions;

namespace ChunkUpload.FaultTests;

/// <summary>
/// Issue 5, abuse: crafted requests over raw sockets against the real server process. Each must be answered
/// with a 4xx application/problem+json carrying <c>code</c> and <c>detail</c> (or by Kestrel's own 4xx for
/// request-line and header limits; a closed connection only where the client itself stopped sending); never a
/// 5xx; nothing may appear outside the storage root; /healthz stays 200 after every request.
/// </summary>
public sealed class HostileInputTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Crafted_Requests_Get_4xx_Problems_Never_5xx_Nothing_Escapes_And_The_Server_Stays_Healthy()
    {
        var figures = new Figures(output);
        string marker = "cuesc" + Guid.NewGuid().ToString("N")[..10];
        string tempRoot = Directory.CreateTempSubdirectory("chunkupload-hostile-").FullName;
        string storage = Path.Combine(tempRoot, "storage");
        var failures = new List<string>();
        var results = new List<(HostileCase Case, RawResponse Response, string Outcome)>();
        var excluded = new List<HostileCase>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            using var server = await ServerProcess.StartHealthyAsync(storage, TimeSpan.FromSeconds(90));
            using var http = new HttpClient { BaseAddress = server.BaseUri, Timeout = TimeSpan.FromSeconds(10) };
            bool runKnownBugs = Environment.GetEnvironmentVariable("CHUNKUPLOAD_HOSTILE_KNOWN_BUGS") == "1";
            var cases = HostileCases.All(marker, await CreateTusTargetsAsync(http), await CreateProtocolTargetsAsync(http, marker));
            foreach (var hostile in cases)
            {
                if (hostile.KnownBug is not null && !runKnownBugs)
                {
                    excluded.Add(hostile);
                    continue;
                }

                // A stalled body is cut off by Kestrel's minimum data rate after its grace period (10 s by default).
                var response = await RawHttp.SendAsync(server.Port, hostile.Request, hostile.HalfClose, hostile.Stall ? TimeSpan.FromSeconds(45) : null);
                string? problem = Judge(hostile, response, out string outcome);
                results.Add((hostile, response, outcome));
                if (problem is not null)
                    failures.Add($"[{hostile.Category}] {hostile.Name}: {problem}\n    response: {Describe(response)}");
                if (!await ServerProcess.IsHealthyAsync(http))
                {
                    failures.Add($"[{hostile.Category}] {hostile.Name}: /healthz is not 200 afterwards (exited: {server.HasExited})\n{server.LogTail}");
                    break;
                }
            }

            if (!server.HasExited)
                await CheckDeepTreeRoundTripAsync(http, marker, failures);
            CheckNothingEscaped(tempRoot, storage, marker, failures);
            if (server.HasExited)
                failures.Add("The server process exited during the suite.");
        }
        finally
        {
            Report(figures, results, excluded, failures, clock.Elapsed);
            figures.Save("hostile-figures.txt");
            try
            {
                Directory.Delete(tempRoot, recursive: true);
            }
            catch (IOException)
            {
                // best effort
            }
        }

        Assert.True(results.Count >= 300, $"Only {results.Count} hostile requests ran.");
        Assert.True(failures.Count == 0, $"{failures.Count} hostile requests were answered wrongly:\n" + string.Join('\n', failures));
    }

    // Issue 11: a folder upload of a deep tree through Kestrel's real request-line and header limits. One-chunk files
    // sent as resumable.js sends them (test GET, then the octet chunk, every parameter URL-encoded in the query string);
    // the relative path must come back whole from GET /uploads/{id}.
    private static async Task CheckDeepTreeRoundTripAsync(HttpClient http, string marker, List<string> failures)
    {
        string wide = new('東', 255);
        (string Id, string Name, string Path)[] files =
        [
            ($"hostile-{marker}-deep-tree", "file.bin", string.Concat(Enumerable.Repeat("d/", 2000)) + "file.bin"),
            ($"hostile-{marker}-wide-" + new string('東', 990), new string('名', 1024), string.Concat(Enumerable.Repeat(wide + "/", 15)) + wide),
        ];
        foreach (var (id, name, path) in files)
        {
            string query = RequestBuilder.Query(
            [
                ("resumableChunkNumber", "1"), ("resumableChunkSize", "1000"), ("resumableCurrentChunkSize", "10"), ("resumableTotalSize", "10"),
                ("resumableType", "application/octet-stream"), ("resumableIdentifier", id), ("resumableFilename", name),
                ("resumableRelativePath", path), ("resumableTotalChunks", "1"),
            ]);
            string what = $"deep tree ({path.Length}-character path, {query.Length}-character query)";
            using (var test = await http.GetAsync("/upload?" + query))
            {
                if (test.StatusCode != System.Net.HttpStatusCode.NoContent)
                    failures.Add($"{what}: the test GET answered {(int)test.StatusCode}: {await test.Content.ReadAsStringAsync()}");
            }

            using (var chunk = await http.PostAsync("/upload?" + query, new ByteArrayContent(new byte[10])))
            {
                if (chunk.StatusCode != System.Net.HttpStatusCode.OK)
                {
                    failures.Add($"{what}: the chunk answered {(int)chunk.StatusCode}: {await chunk.Content.ReadAsStringAsync()}");
                    continue;
                }
            }

            using var status = await http.GetAsync("/uploads/" + Uri.EscapeDataString(id));
            string body = await status.Content.ReadAsStringAsync();
            if (status.StatusCode != System.Net.HttpStatusCode.OK)
            {
                failures.Add($"{what}: GET /uploads/{{id}} answered {(int)status.StatusCode}: {body}");
                continue;
            }

            var root = JsonDocument.Parse(body).RootElement;
            if (root.GetProperty("relativePath").GetString() != path || root.GetProperty("fileName").GetString() != name)
                failures.Add($"{what}: GET /uploads/{{id}} does not give back the relative path and name: {body[..Math.Min(body.Length, 300)]}");
        }
    }

    // The tus uploads the tus cases aim at (PATCHes, concatenations), made the way tus-js-client makes them.
    private static async Task<TusTargets> CreateTusTargetsAsync(HttpClient http)
    {
        async Task<string> CreateAsync(params (string Name, string Value)[] headers)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/tus");
            request.Headers.Add("Tus-Resumable", "1.0.0");
            foreach (var (name, value) in headers)
                request.Headers.Add(name, value);
            using var response = await http.SendAsync(request);
            Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
            return response.Headers.Location!.OriginalString;
        }

        return new TusTargets(
            await CreateAsync(("Upload-Length", "100")),
            await CreateAsync(("Upload-Defer-Length", "1")),
            await CreateAsync(("Upload-Length", "10"), ("Upload-Concat", "partial")));
    }

    // The other protocols' targets: a complete upload (for ranges past its end), an IETF upload and a Google-style session.
    private static async Task<ProtocolTargets> CreateProtocolTargetsAsync(HttpClient http, string marker)
    {
        string completed = $"hostile-{marker}-complete";
        using (var append = new HttpRequestMessage(HttpMethod.Post, "/append") { Content = new ByteArrayContent(new byte[10]) })
        {
            append.Headers.Add("X-File-Id", completed);
            append.Headers.Add("X-Start-Byte", "0");
            using var response = await http.SendAsync(append);
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        }

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            using var status = await http.GetAsync("/uploads/" + completed);
            string state = JsonDocument.Parse(await status.Content.ReadAsStringAsync()).RootElement.GetProperty("state").GetString()!;
            if (state == "complete")
                break;
            Assert.True(DateTime.UtcNow < deadline, $"The target upload is still '{state}'.");
            await Task.Delay(50);
        }

        using var rufh = new HttpRequestMessage(HttpMethod.Post, "/rufh") { Content = new ByteArrayContent([]) };
        rufh.Headers.Add("Upload-Complete", "?0");
        rufh.Headers.Add("Upload-Length", "100");
        using var created = await http.SendAsync(rufh);
        Assert.Equal(System.Net.HttpStatusCode.Created, created.StatusCode);

        string google = $"/upload/hostile-{marker}-session";
        using var initiate = new HttpRequestMessage(HttpMethod.Post, google + "?uploadType=resumable") { Content = new ByteArrayContent([]) };
        initiate.Headers.Add("X-Upload-Content-Length", "100");
        using var session = await http.SendAsync(initiate);
        Assert.Equal(System.Net.HttpStatusCode.OK, session.StatusCode);
        var location = created.Headers.Location!;
        return new ProtocolTargets(completed, 10, location.IsAbsoluteUri ? location.AbsolutePath : location.OriginalString, google);
    }

    /// <summary>Null when the answer is acceptable for the case; otherwise why not. <paramref name="outcome"/> classifies it for the table.</summary>
    private static string? Judge(HostileCase hostile, RawResponse response, out string outcome)
    {
        if (response.Closed)
        {
            outcome = "closed";
            return hostile.Expect == Expect.ProblemOrCut ? null : "the connection closed without an answer";
        }

        int status = response.Status!.Value;
        bool isProblem = IsRefusal(hostile.Shape, response, status, out string? code, out string? why);
        string shape = hostile.Shape == Shape.Problem ? "problem" : hostile.Shape.ToString().ToLowerInvariant() + " refusal";
        outcome = isProblem ? $"{status} {shape}" : $"{status} {(status is >= 200 and < 300 ? "data" : "bare")}";
        if (status >= 500)
            return $"a {status} (server error)";
        if (status is >= 200 and < 300)
            return hostile.Expect is Expect.DataOrProblem or Expect.Data ? null : $"accepted with {status}";
        if (hostile.Expect == Expect.Data)
            return $"a legal request refused with {status}";
        if (status is < 400 or >= 500)
            return $"unexpected status {status}";
        if (status == 416 && hostile.Shape == Shape.Problem && response.Header("Content-Range")?.StartsWith("bytes */", StringComparison.Ordinal) != true)
            return "a 416 without Content-Range: bytes */length";
        if (isProblem)
            return null;
        if (hostile.Expect is Expect.Kestrel or Expect.Routing && status is 400 or 413 or 414 or 431 && response.ContentType is null)
        {
            outcome = $"{status} kestrel";
            return null;
        }

        if (hostile.Expect == Expect.Routing && status is 404 or 405 && response.ContentType?.StartsWith("application/problem+json", StringComparison.OrdinalIgnoreCase) == true)
        {
            outcome = $"{status} routing problem";
            return null;
        }

        return $"a {status} that is not a problem+json with code and detail ({why})";
    }

    /// <summary>Whether the answer is a refusal in the protocol's shape, with a stable code and a detail.</summary>
    private static bool IsRefusal(Shape shape, RawResponse response, int status, out string? code, out string? why)
    {
        code = null;
        why = null;
        switch (shape)
        {
            case Shape.Problem:
                return IsProblem(response, status, out code, out why);
            case Shape.Text:
                if (response.ContentType?.StartsWith("text/plain", StringComparison.OrdinalIgnoreCase) != true)
                {
                    why = $"Content-Type '{response.ContentType}'";
                    return false;
                }

                int colon = response.Body.IndexOf(':', StringComparison.Ordinal);
                code = colon > 0 ? response.Body[..colon] : null;
                if (code is null || !code.All(c => c is '_' or (>= 'a' and <= 'z')) || string.IsNullOrWhiteSpace(response.Body[(colon + 1)..]))
                    why = "not one line 'code: detail'";
                return why is null;
            default:
                if (response.ContentType?.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) != true)
                {
                    why = $"Content-Type '{response.ContentType}'";
                    return false;
                }

                try
                {
                    using var json = JsonDocument.Parse(response.Body);
                    var root = json.RootElement;
                    if (shape == Shape.FineUploader)
                    {
                        bool failed = root.TryGetProperty("success", out var success) && success.ValueKind == JsonValueKind.False;
                        code = root.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
                        string? error = root.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null;
                        why = !failed ? "no success: false" : string.IsNullOrWhiteSpace(code) || string.IsNullOrWhiteSpace(error) ? "no code or no error" : null;
                    }
                    else
                    {
                        var error = root.GetProperty("error");
                        code = error.GetProperty("errors")[0].GetProperty("reason").GetString();
                        why = error.GetProperty("code").GetInt32() != status ? "error.code differs from the status"
                            : string.IsNullOrWhiteSpace(code) || string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()) ? "no reason or no message" : null;
                    }
                }
                catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
                {
                    why = "not the protocol's JSON error: " + ex.Message;
                }

                return why is null;
        }
    }

    private static bool IsProblem(RawResponse response, int status, out string? code, out string? why)
    {
        code = null;
        why = null;
        if (response.ContentType is null || !response.ContentType.StartsWith("application/problem+json", StringComparison.OrdinalIgnoreCase))
        {
            why = $"Content-Type '{response.ContentType}'";
            return false;
        }

        try
        {
            using var json = JsonDocument.Parse(response.Body);
            var root = json.RootElement;
            code = root.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            string? detail = root.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
            int? bodyStatus = root.TryGetProperty("status", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetInt32() : null;
            if (string.IsNullOrWhiteSpace(code) || string.IsNullOrWhiteSpace(detail))
                why = "no code or no detail";
            else if (bodyStatus is not null && bodyStatus != status)
                why = $"body status {bodyStatus} differs from {status}";
            return why is null;
        }
        catch (JsonException ex)
        {
            why = "body is not JSON: " + ex.Message;
            return false;
        }
    }

    private static void CheckNothingEscaped(string tempRoot, string storage, string marker, List<string> failures)
    {
        // The temp folder holds the storage root and nothing else.
        foreach (string entry in Directory.EnumerateFileSystemEntries(tempRoot))
        {
            if (!string.Equals(entry, storage, StringComparison.Ordinal))
                failures.Add($"Something was created beside the storage root: {entry}");
        }

        // No name the traversal values would create, anywhere they could land.
        var places = new List<string> { Path.GetTempPath(), "/tmp", tempRoot, storage, AppContext.BaseDirectory, Directory.GetCurrentDirectory() };
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory).Parent; dir is not null && places.Count < 20; dir = dir.Parent)
            places.Add(dir.FullName);
        foreach (string place in places.Where(Directory.Exists).Distinct(StringComparer.Ordinal))
        {
            foreach (string entry in Directory.EnumerateFileSystemEntries(place))
            {
                if (entry.Contains(marker, StringComparison.Ordinal))
                    failures.Add($"A traversal target exists: {entry}");
            }
        }

        foreach (string value in HostileCases.TraversalValues(marker))
        {
            foreach (string baseDir in new[] { storage, Path.Combine(storage, "sessions"), Path.Combine(storage, "completed"), Path.Combine(storage, "tmp"), AppContext.BaseDirectory })
            {
                string candidate = Path.GetFullPath(Path.Combine(baseDir, value));
                if (File.Exists(candidate) || Directory.Exists(candidate))
                    failures.Add($"A traversal target exists: {candidate}");
            }
        }

        // Inside the root, names are hashes: no file or folder is named after a hostile value.
        foreach (string entry in Directory.EnumerateFileSystemEntries(storage, "*", SearchOption.AllDirectories))
        {
            if (Path.GetRelativePath(storage, entry).Contains(marker, StringComparison.Ordinal))
                failures.Add($"A storage path carries a client-supplied name: {entry}");
        }
    }

    private static void Report(Figures figures, List<(HostileCase Case, RawResponse Response, string Outcome)> results, List<HostileCase> excluded,
        List<string> failures, TimeSpan elapsed)
    {
        figures.Line("=== Hostile-input suite ===");
        figures.Line($"{results.Count} crafted requests over raw sockets, {elapsed.TotalSeconds:F1} s");
        figures.Line("");
        figures.Line("Counts by status:");
        figures.Line($"  {"answer",-28}{"count",6}");
        foreach (var group in results.GroupBy(r => r.Outcome).OrderBy(g => g.Key, StringComparer.Ordinal))
            figures.Line($"  {group.Key,-28}{group.Count(),6}");
        figures.Line("");
        figures.Line("Counts by category:");
        foreach (var group in results.GroupBy(r => r.Case.Category))
            figures.Line($"  {group.Key,-14}{group.Count(),4}  " + string.Join(", ", group.GroupBy(r => r.Outcome).Select(g => $"{g.Key} x{g.Count()}")));
        figures.Line("");
        figures.Line("Every request:");
        foreach (var (hostile, response, outcome) in results)
            figures.Line($"  [{hostile.Category}] {hostile.Name} -> {outcome}{CodeOf(response)}");
        figures.Line("");
        figures.Line($"Excluded as known server bugs ({excluded.Count}; run them with CHUNKUPLOAD_HOSTILE_KNOWN_BUGS=1):");
        foreach (var hostile in excluded)
            figures.Line($"  [{hostile.Category}] {hostile.Name}: {hostile.KnownBug}");
        figures.Line("");
        figures.Line(failures.Count == 0 ? "result: PASS" : $"result: FAIL ({failures.Count})");
        foreach (string failure in failures)
            figures.Line("  failure: " + failure);
    }

    private static string CodeOf(RawResponse response)
    {
        if (response.Closed)
            return $" ({response.Note})";
        try
        {
            if (response.ContentType?.StartsWith("text/plain", StringComparison.OrdinalIgnoreCase) == true && response.Body.IndexOf(':', StringComparison.Ordinal) is > 0 and var colon)
                return " " + response.Body[..colon];
            using var json = JsonDocument.Parse(response.Body);
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return "";
            if (root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object
                && error.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array && errors.GetArrayLength() > 0
                && errors[0].TryGetProperty("reason", out var reason))
                return $" {reason.GetString()}";
            return root.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String ? $" {c.GetString()}" : "";
        }
        catch (JsonException)
        {
            return "";
        }
    }

    private static string Describe(RawResponse response) =>
        response.Closed
            ? $"no response ({response.Note})"
            : $"{response.Status} Content-Type '{response.ContentType}' body '{(response.Body.Length > 400 ? response.Body[..400] + "..." : response.Body)}'{(response.Note.Length > 0 ? $" ({response.Note})" : "")}";
}
