using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ChunkUpload.FaultTests.Infrastructure;

/// <summary>
/// One run of the real server: <c>dotnet ChunkUpload.Server.dll</c> (copied next to this test assembly by the
/// ProjectReference) on a free loopback port over a given storage root. <see cref="Kill"/> sends SIGKILL to the
/// PID started here, and only to it.
/// </summary>
public sealed class ServerProcess : IDisposable
{
    private const int LogLines = 300;
    private readonly Queue<string> _log = new();
    private readonly Process _process;

    private ServerProcess(Process process, Uri baseUri, string storageRoot)
    {
        _process = process;
        BaseUri = baseUri;
        StorageRoot = storageRoot;
        Pid = process.Id;
    }

    public static string ServerDll => Path.Combine(AppContext.BaseDirectory, "ChunkUpload.Server.dll");

    public Uri BaseUri { get; }

    public int Port => BaseUri.Port;

    public string StorageRoot { get; }

    public int Pid { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>Every line the server writes (stdout and stderr) from the moment a handler is added, for tests that count log events.</summary>
    public event Action<string>? LineWritten;

    /// <summary>The last lines the server wrote (stdout and stderr), for failure messages.</summary>
    public string LogTail
    {
        get
        {
            lock (_log)
                return string.Join('\n', _log);
        }
    }

    /// <summary>Starts the server without waiting for it (the crash test kills it during start-up).</summary>
    public static ServerProcess Start(string storageRoot, params string[] extraArguments)
    {
        string dll = ServerDll;
        if (!File.Exists(dll))
            throw new InvalidOperationException($"The server build is missing: {dll}. Build the solution first.");

        var uri = new Uri($"http://127.0.0.1:{FreePort()}");
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        foreach (string argument in new[]
                 {
                     dll, "--urls", uri.ToString().TrimEnd('/'), $"--Upload:StorageRoot={storageRoot}", "--Upload:MinFreeSpace=0",
                 }.Concat(extraArguments))
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment.Remove("ASPNETCORE_URLS");
        var process = new Process { StartInfo = start };
        process.Start();
        var server = new ServerProcess(process, uri, storageRoot);
        process.OutputDataReceived += (_, e) => server.Append(e.Data);
        process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return server;
    }

    /// <summary>Starts the server and waits (bounded polling) until /healthz answers 200.</summary>
    public static async Task<ServerProcess> StartHealthyAsync(string storageRoot, TimeSpan timeout, params string[] extraArguments)
    {
        // A port picked free can be taken again before the server binds it: a few attempts, each bounded.
        for (int attempt = 1; ; attempt++)
        {
            var server = Start(storageRoot, extraArguments);
            if (await server.WaitHealthyAsync(timeout))
                return server;
            string log = server.LogTail;
            bool exited = server.HasExited;
            server.Dispose();
            if (!exited || attempt >= 3)
                throw new TimeoutException($"The server did not become healthy within {timeout.TotalSeconds} s (exited: {exited}):\n{log}");
        }
    }

    /// <summary>Polls /healthz until it answers 200 (true), the process exits or the deadline passes (false).</summary>
    public async Task<bool> WaitHealthyAsync(TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        using var http = new HttpClient { BaseAddress = BaseUri, Timeout = TimeSpan.FromSeconds(5) };
        while (deadline.Elapsed < timeout)
        {
            if (HasExited)
                return false;
            if (await IsHealthyAsync(http))
                return true;
            await Task.Delay(25);
        }

        return false;
    }

    /// <summary>One /healthz probe: true when it answers 200.</summary>
    public static async Task<bool> IsHealthyAsync(HttpClient http)
    {
        try
        {
            using var response = await http.GetAsync(new Uri("/healthz", UriKind.Relative));
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
        {
            return false;
        }
    }

    /// <summary>SIGKILL to this server's PID (Process.Kill on Unix), then a bounded wait for it to be gone.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
                _process.Kill(entireProcessTree: false);
        }
        catch (InvalidOperationException)
        {
            // already exited
        }

        if (!_process.WaitForExit(TimeSpan.FromSeconds(30)))
            throw new TimeoutException($"Server PID {Pid} did not exit within 30 s of SIGKILL.");
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_log)
        {
            _log.Enqueue(line);
            while (_log.Count > LogLines)
                _log.Dequeue();
        }

        LineWritten?.Invoke(line);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
