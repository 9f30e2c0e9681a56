using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;

namespace ChunkUpload.Testing;

/// <summary>
/// The real ChunkUpload server as a child process (`dotnet ChunkUpload.Server.dll`) on a free loopback
/// port with its own storage root. Only the process started here is ever killed.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly StringBuilder _log = new();
    private Process? _process;

    private readonly string _dll;
    private readonly IReadOnlyList<string> _arguments;
    private readonly string? _workingDirectory;
    private readonly IReadOnlyDictionary<string, string> _environment;

    private ServerProcess(string storageRoot, string dll, IReadOnlyList<string> arguments, string? workingDirectory,
        IReadOnlyDictionary<string, string> environment)
    {
        StorageRoot = storageRoot;
        _dll = dll;
        _arguments = arguments;
        _workingDirectory = workingDirectory;
        _environment = environment;
    }

    public string StorageRoot { get; }

    public Uri BaseUri { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    /// <summary>Everything the server wrote to stdout/stderr so far (for failure messages).</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public static string RepositoryRoot => Metadata("ChunkUploadRepositoryRoot");

    public static string ServerDll =>
        Environment.GetEnvironmentVariable("CHUNKUPLOAD_SERVER_DLL") is { Length: > 0 } fromEnvironment
            ? fromEnvironment
            : Metadata("ChunkUploadServerDll");

    /// <summary>
    /// Starts the server: by default the solution's build (<see cref="ServerDll"/>), or <paramref name="serverDll"/>
    /// (a published copy), with <paramref name="arguments"/> added to its command line and <paramref name="environment"/>
    /// to its environment, in <paramref name="workingDirectory"/> (default: the dll's directory).
    /// </summary>
    public static async Task<ServerProcess> StartAsync(string? storageRoot = null, string? serverDll = null, IReadOnlyList<string>? arguments = null,
        string? workingDirectory = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var ownStorageRoot = storageRoot is null;
        storageRoot ??= Directory.CreateTempSubdirectory("chunkupload-test-").FullName;
        var server = new ServerProcess(storageRoot, serverDll ?? ServerDll, arguments ?? [], workingDirectory,
            environment ?? new Dictionary<string, string>());
        try
        {
            await server.StartProcessAsync(FreePort()).ConfigureAwait(false);
        }
        catch
        {
            // A server that never became healthy is stopped here (the caller has no handle on it); a storage root made
            // here goes with it, the caller's stays.
            if (ownStorageRoot)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                await server.StopAsync().ConfigureAwait(false);
            }

            throw;
        }

        return server;
    }

    /// <summary>Stops the process (keeping the storage root) and starts it again, on a new port unless <paramref name="samePort"/>.</summary>
    public async Task RestartAsync(bool samePort = false)
    {
        var port = BaseUri.Port;
        await StopAsync().ConfigureAwait(false);
        await StartProcessAsync(samePort ? port : FreePort()).ConfigureAwait(false);
    }

    private async Task StartProcessAsync(int port)
    {
        var dll = _dll;
        if (!File.Exists(dll))
        {
            throw new InvalidOperationException($"The server build is missing: {dll}. Build the solution first.");
        }

        BaseUri = new Uri($"http://127.0.0.1:{port}/");
        var start = new ProcessStartInfo("dotnet")
        {
            // The server's content root is the dll's directory wherever it runs from, so its appsettings.json applies.
            WorkingDirectory = _workingDirectory ?? Path.GetDirectoryName(dll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
                 {
                     dll, "--urls", BaseUri.ToString().TrimEnd('/'), $"--Upload:StorageRoot={StorageRoot}",
                 }.Concat(_arguments))
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        foreach (var (name, value) in _environment)
        {
            start.Environment[name] = value;
        }

        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        Http = new HttpClient { BaseAddress = BaseUri, Timeout = TimeSpan.FromSeconds(60) };

        // Bounded wait for /healthz: polls until healthy, the process dies, or the deadline passes.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"The server exited with code {process.ExitCode}:\n{Log}");
            }

            try
            {
                using var response = await Http.GetAsync(new Uri("healthz", UriKind.Relative)).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The server did not become healthy within 60 s:\n{Log}");
            }

            await Task.Delay(100).ConfigureAwait(false);
        }
    }

    public async Task StopAsync()
    {
        var process = _process;
        _process = null;
        Http?.Dispose();
        if (process is null)
        {
            return;
        }

        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        process.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        try
        {
            Directory.Delete(StorageRoot, recursive: true);
        }
        catch (IOException)
        {
            // best effort
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string Metadata(string key) =>
        typeof(ServerProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == key)?.Value
        ?? throw new InvalidOperationException($"Assembly metadata {key} is missing (see ServerUnderTest.targets).");
}
