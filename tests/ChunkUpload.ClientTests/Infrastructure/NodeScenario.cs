using System.Diagnostics;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Xunit.Abstractions;

namespace ChunkUpload.ClientTests.Infrastructure;

/// <summary>
/// Runs one scenario script of node/ (<c>node &lt;script&gt; '&lt;json arguments&gt;'</c>) and reads the one line of
/// JSON it prints. The scripts use tus-js-client from node/node_modules, installed with <c>npm ci</c> from the
/// scripts' own package-lock.json when it is missing or older than the lock.
/// </summary>
public static class NodeScenario
{
    private static readonly SemaphoreSlim InstallGate = new(1, 1);
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static string ScriptsDirectory { get; } =
        typeof(NodeScenario).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "ChunkUploadClientScripts")?.Value
        ?? throw new InvalidOperationException("Assembly metadata ChunkUploadClientScripts is missing (see the csproj).");

    /// <summary>Runs <c>npm ci</c> in node/ unless tus-js-client is installed from the current lock.</summary>
    public static async Task EnsureInstalledAsync()
    {
        await InstallGate.WaitAsync();
        try
        {
            string installed = Path.Combine(ScriptsDirectory, "node_modules", ".package-lock.json");
            string library = Path.Combine(ScriptsDirectory, "node_modules", "tus-js-client", "package.json");
            string lockFile = Path.Combine(ScriptsDirectory, "package-lock.json");
            if (File.Exists(library) && File.Exists(installed) && File.GetLastWriteTimeUtc(installed) >= File.GetLastWriteTimeUtc(lockFile))
                return;
            var (exit, stdout, stderr) = await RunAsync("npm", ["ci", "--no-audit", "--no-fund"], TimeSpan.FromMinutes(10));
            if (exit != 0 || !File.Exists(library))
                throw new InvalidOperationException($"npm ci in {ScriptsDirectory} failed (exit {exit}):\n{stdout}\n{stderr}");
        }
        finally
        {
            InstallGate.Release();
        }
    }

    /// <summary>Runs <paramref name="script"/> with <paramref name="arguments"/> (serialized as JSON) and parses its result.</summary>
    public static async Task<ScenarioResult> RunAsync(string script, object arguments, ITestOutputHelper output, TimeSpan? timeout = null)
    {
        string json = JsonSerializer.Serialize(arguments, Json);
        output.WriteLine($"node {script} {json}");
        var watch = Stopwatch.StartNew();
        var (exit, stdout, stderr) = await RunAsync("node", [script, json], timeout ?? TimeSpan.FromMinutes(2));
        output.WriteLine($"  exit {exit} after {watch.ElapsedMilliseconds} ms");
        if (stderr.Length > 0)
            output.WriteLine("  stderr: " + stderr);
        string? line = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
        if (exit != 0 || line is null)
            throw new InvalidOperationException($"node {script} exited with {exit} and printed no result:\n{stdout}\n{stderr}");
        var result = JsonSerializer.Deserialize<ScenarioResult>(line, Json)
            ?? throw new InvalidOperationException($"node {script} printed no JSON object: {line}");
        output.WriteLine($"  outcome {result.Outcome}, url {result.Url}" + (result.Error is { } e ? $", error {e.Status}: {e.Message}" : ""));
        foreach (var request in result.Requests)
            output.WriteLine("  " + request);
        return result;
    }

    // Starts the process, waits with a deadline, and on timeout kills exactly that process (and its children).
    private static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(string file, string[] arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(file)
        {
            WorkingDirectory = ScriptsDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
            start.ArgumentList.Add(argument);
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Append(stderr, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"{file} {string.Join(' ', arguments)} (PID {process.Id}) ran longer than {timeout.TotalSeconds} s and was killed:\n{stdout}\n{stderr}");
        }

        process.WaitForExit(); // drains the redirected output
        lock (stdout)
        lock (stderr)
            return (process.ExitCode, stdout.ToString(), stderr.ToString());
    }

    private static void Append(StringBuilder text, string? line)
    {
        if (line is null)
            return;
        lock (text)
            text.AppendLine(line);
    }
}

/// <summary>What a scenario script printed: how the upload ended and every request tus-js-client made.</summary>
public sealed record ScenarioResult(
    string Outcome,
    string? Url,
    long? Size,
    long Acknowledged,
    ScenarioError? Error,
    IReadOnlyList<RecordedRequest> Requests,
    string? ResumedUrl = null,
    int? StoredUploads = null)
{
    /// <summary>The upload's id on the server: the last path segment of its tus URL.</summary>
    public string UploadId => IdOf(Url ?? throw new InvalidOperationException($"The scenario ended '{Outcome}' without an upload URL."));

    public IEnumerable<RecordedRequest> Patches => Requests.Where(r => r.Method == "PATCH");

    public static string IdOf(string url) => Uri.UnescapeDataString(new Uri(url).Segments[^1]);
}

public sealed record ScenarioError(string Message, int? Status, string? Body, string? Method);

/// <summary>One request as tus-js-client made it: tus (or IETF draft) headers, body bytes it declared and handed to the socket, the answer.</summary>
public sealed record RecordedRequest(
    string Method,
    string Url,
    long? UploadOffset,
    long? UploadLength,
    string? UploadConcat,
    string? UploadChecksum,
    string? ContentType,
    long DeclaredBytes,
    long SentBytes,
    int? Status,
    long? ResponseOffset,
    string? Location,
    string? Error,
    string? UploadComplete = null,
    string? InteropVersion = null,
    string? ResponseComplete = null)
{
    public override string ToString() =>
        $"{Method} {new Uri(Url).AbsolutePath} offset={UploadOffset?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"} " +
        $"concat={UploadConcat ?? "-"} complete={UploadComplete ?? "-"} body={SentBytes}/{DeclaredBytes} -> {Status?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"} " +
        $"offset={ResponseOffset?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"} complete={ResponseComplete ?? "-"}" + (Error is null ? "" : $" error: {Error}");
}
