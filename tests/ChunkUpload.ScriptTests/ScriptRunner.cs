using System.Diagnostics;
using System.Text;
using ChunkUpload.Testing;

namespace ChunkUpload.ScriptTests;

/// <summary>Runs one of the repository's bash scripts as a child process and collects its output.</summary>
internal sealed class ScriptRun : IDisposable
{
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly Process _process;

    private ScriptRun(Process process) => _process = process;

    public string Stdout { get { lock (_stdout) { return _stdout.ToString(); } } }

    public string Stderr { get { lock (_stderr) { return _stderr.ToString(); } } }

    public int ExitCode => _process.ExitCode;

    public static ScriptRun Start(string script, string workingDirectory, params string[] arguments)
    {
        var start = new ProcessStartInfo("bash")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(ServerProcess.RepositoryRoot, "scripts", script));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment.Remove("CHUNKUPLOAD_URL");

        // upload.sh --protocol tus keeps upload URLs here between runs: per test, never in the user's home.
        start.Environment["CHUNKUPLOAD_STATE_DIR"] = StateDirectory(workingDirectory);
        var process = new Process { StartInfo = start };
        var run = new ScriptRun(process);
        process.OutputDataReceived += (_, e) => Append(run._stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Append(run._stderr, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return run;
    }

    /// <summary>Where upload.sh keeps its tus state files for runs in <paramref name="workingDirectory"/>.</summary>
    public static string StateDirectory(string workingDirectory) => Path.Combine(workingDirectory, "state");

    public static async Task<ScriptRun> RunAsync(string script, string workingDirectory, params string[] arguments)
    {
        var run = Start(script, workingDirectory, arguments);
        await run.WaitAsync(TimeSpan.FromMinutes(3));
        return run;
    }

    public async Task WaitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
            throw new TimeoutException($"script did not finish within {timeout}:\n{Stderr}");
        }
    }

    /// <summary>Kills the script and everything it started (its curl processes), like a dropped SSH session.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
    }

    public bool HasExited => _process.HasExited;

    public override string ToString() => $"exit {(_process.HasExited ? _process.ExitCode : -1)}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";

    public void Dispose() => _process.Dispose();

    private static void Append(StringBuilder buffer, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (buffer)
        {
            buffer.AppendLine(line);
        }
    }
}
