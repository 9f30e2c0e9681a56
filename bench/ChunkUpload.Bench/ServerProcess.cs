using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace ChunkUpload.Bench;

/// <summary>
/// A server the benchmark started itself: one PID, output to a log file, killed by that PID only.
/// Peak memory comes from /proc/PID/status (VmHWM), reset before each measured upload via clear_refs.
/// </summary>
internal sealed class ServerProcess : IDisposable
{
    private readonly Process _process;
    private bool _disposed;

    private ServerProcess(string name, Process process, int port, string storage, string logPath)
    {
        Name = name;
        _process = process;
        Port = port;
        Storage = storage;
        LogPath = logPath;
    }

    public string Name { get; }

    public int Port { get; }

    public int Pid => _process.Id;

    public string Storage { get; }

    public string LogPath { get; }

    public Uri BaseUri => new($"http://127.0.0.1:{Port}/");

    public bool HasExited => _process.HasExited;

    /// <summary>Starts <paramref name="fileName"/> with its output redirected (by exec, so the PID is the server's own).</summary>
    public static ServerProcess Start(string name, string fileName, IEnumerable<string> args, int port, string storage, string logDir)
    {
        Directory.CreateDirectory(storage);
        var logPath = Path.Combine(logDir, $"{name}.log");
        var command = $"exec {Quote(fileName)} {string.Join(' ', args.Select(Quote))} >{Quote(logPath)} 2>&1 </dev/null";
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(command);
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["NODE_ENV"] = "production";
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {name}");
        return new ServerProcess(name, process, port, storage, logPath);
    }

    /// <summary>A free loopback port (bound and released; the servers bind it right after).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Polls <paramref name="path"/> until it answers 200, the process dies, or the bound passes.</summary>
    public async Task WaitReadyAsync(HttpClient http, string path, TimeSpan bound)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(bound.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with code {_process.ExitCode} during start-up; log: {LogPath}\n{Tail(LogPath)}");
            }

            try
            {
                using var response = await http.GetAsync(new Uri(BaseUri, path));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"{Name} did not answer GET {path} within {bound.TotalSeconds} s; log: {LogPath}\n{Tail(LogPath)}");
    }

    /// <summary>Resets the peak RSS to the current RSS (Linux clear_refs value 5). False if the kernel refused.</summary>
    public bool ResetPeakRss()
    {
        try
        {
            File.WriteAllText($"/proc/{Pid}/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>CPU time (user + system) the server has used so far, from /proc/PID/stat.</summary>
    public TimeSpan CpuTime()
    {
        // Fields after the parenthesised command name: state is field 3, utime 14 and stime 15 (clock ticks of 1/100 s).
        var stat = File.ReadAllText($"/proc/{Pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromMilliseconds(ticks * 10);
    }

    /// <summary>Peak resident set size in bytes since start or the last reset (VmHWM).</summary>
    public long PeakRssBytes() => ReadStatusKiB("VmHWM:") * 1024;

    private long ReadStatusKiB(string field)
    {
        foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                var value = line[field.Length..].Trim();
                var space = value.IndexOf(' ', StringComparison.Ordinal);
                return long.Parse(space < 0 ? value : value[..space], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    /// <summary>Kills this server (its own PID only) and waits for it; safe to call more than once.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: false);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }

        _process.Dispose();
    }

    public static string Tail(string path, int lines = 20)
    {
        try
        {
            return string.Join('\n', File.ReadLines(path).TakeLast(lines));
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    private static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
