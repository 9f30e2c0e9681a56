using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;

namespace ChunkUpload.BrowserTests;

/// <summary>
/// The deployment the README describes, on loopback: the server published to a temp folder (dotnet publish) and
/// run from there, behind Debian's nginx with the README's site configuration (its ports, certificate paths and
/// names filled in; a self-signed certificate made here). nginx is installed with apt-get when missing (as root);
/// if it is still missing the tests fail, they are never skipped. Only the processes started here are stopped.
/// </summary>
public sealed partial class NginxDeployment : IAsyncLifetime
{
    public const string NginxPath = "/usr/sbin/nginx";

    /// <summary>The server's Upload:MaxActiveUploadsPerClient here: per-client counting shows which address it saw.</summary>
    public const int MaxActiveUploadsPerClient = 5;

#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif

    private readonly StringBuilder _nginxOutput = new();
    private Process? _nginx;

    /// <summary>The published application (what an operator copies to a server).</summary>
    public string PublishDirectory { get; } = Directory.CreateTempSubdirectory("chunkupload-publish-").FullName;

    /// <summary>The server's working directory and storage root (the unit's /var/lib/chunkupload).</summary>
    public string StateDirectory { get; } = Directory.CreateTempSubdirectory("chunkupload-state-").FullName;

    /// <summary>nginx's configuration, certificate, logs, pid and temp files.</summary>
    public string NginxDirectory { get; } = Directory.CreateTempSubdirectory("chunkupload-nginx-").FullName;

    public ServerProcess Server { get; private set; } = null!;

    /// <summary>nginx's TLS listener: the address clients use.</summary>
    public Uri ProxyUri { get; private set; } = null!;

    /// <summary>Trusts exactly the certificate made for this nginx.</summary>
    public HttpClient ProxyHttp { get; private set; } = null!;

    public string CertificateHash { get; private set; } = "";

    public string AccessLogPath => Path.Combine(NginxDirectory, "access.log");

    public string ErrorLogPath => Path.Combine(NginxDirectory, "error.log");

    public string ConfigPath => Path.Combine(NginxDirectory, "nginx.conf");

    /// <summary>How long the fixture's steps took (publish, server start, nginx start), for the test output.</summary>
    public string Timings { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Microsoft.Playwright.Assertions.SetDefaultExpectTimeout(30_000); // as BrowserFixture: CI shares two cores
        try
        {
            await StartAsync();
        }
        catch
        {
            // Stop what was started so far, whatever xunit does with a fixture that failed to start (DisposeAsync may run twice).
            await DisposeAsync();
            throw;
        }
    }

    private async Task StartAsync()
    {
        EnsureNginx();
        var clock = Stopwatch.StartNew();
        await PublishAsync();
        var published = clock.Elapsed;
        // The published server as the README's systemd unit runs it: `dotnet <folder>/ChunkUpload.Server.dll` from its
        // state directory (the storage root), settings in the environment, believing forwarded headers from nginx only.
        var state = StateDirectory;
        Server = await ServerProcess.StartAsync(
            storageRoot: state,
            serverDll: Path.Combine(PublishDirectory, "ChunkUpload.Server.dll"),
            workingDirectory: state,
            environment: new Dictionary<string, string>
            {
                ["Upload__StorageRoot"] = state,
                ["ForwardedHeaders__KnownProxies__0"] = "127.0.0.1",
                // Small enough for a test to reach, large enough for the other tests' uploads from one address.
                ["Upload__MaxActiveUploadsPerClient"] = MaxActiveUploadsPerClient.ToString(CultureInfo.InvariantCulture),
            });
        var serverStarted = clock.Elapsed;
        WriteCertificate();
        var httpsPort = ServerProcess.FreePort();
        var httpPort = ServerProcess.FreePort();
        ProxyUri = new Uri($"https://127.0.0.1:{httpsPort}/");
        File.WriteAllText(ConfigPath, MainConfiguration(SiteFromReadme(Server.BaseUri.Port, httpPort, httpsPort,
            Path.Combine(NginxDirectory, "cert.pem"), Path.Combine(NginxDirectory, "key.pem"))));
        await RunAsync(NginxPath, ["-t", "-c", ConfigPath], TimeSpan.FromSeconds(30));
        StartNginx();
        ProxyHttp = ProxyClient(source: null);
        await WaitForProxyAsync();
        Timings = string.Create(CultureInfo.InvariantCulture,
            $"publish {published.TotalSeconds:F1} s, server start {(serverStarted - published).TotalSeconds:F1} s, nginx start {(clock.Elapsed - serverStarted).TotalSeconds:F1} s");
    }

    /// <summary>
    /// A client of nginx that trusts exactly this nginx's certificate; its connections come from <paramref name="source"/>
    /// (any 127.x.y.z works on Linux loopback), or from 127.0.0.1 when null.
    /// </summary>
    public HttpClient ProxyClient(IPAddress? source)
    {
        var handler = new SocketsHttpHandler
        {
            SslOptions = { RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate?.GetCertHashString() == CertificateHash },
        };
        if (source is not null)
        {
            handler.ConnectCallback = (context, cancellationToken) => ConnectFromAsync(source, context.DnsEndPoint, cancellationToken);
        }

        return new HttpClient(handler) { BaseAddress = ProxyUri, Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>A TCP connection to <paramref name="target"/> whose local address is <paramref name="source"/>.</summary>
    public static async ValueTask<Stream> ConnectFromAsync(IPAddress source, DnsEndPoint target, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(source, 0));
            await socket.ConnectAsync(target, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        ProxyHttp?.Dispose();
        await StopNginxAsync();
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }

        foreach (var directory in new[] { PublishDirectory, NginxDirectory, StateDirectory })
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    /// <summary>nginx's own output, error log and access log (for failure messages).</summary>
    public string NginxLog
    {
        get
        {
            string output;
            lock (_nginxOutput)
            {
                output = _nginxOutput.ToString();
            }

            return $"nginx output:\n{output}\nerror.log:\n{ReadShared(ErrorLogPath)}\naccess.log (tail):\n{Tail(ReadShared(AccessLogPath), 40)}";
        }
    }

    /// <summary>The nginx site block of README.md, the one right after the marker comment that names this test.</summary>
    public static string ReadmeSite()
    {
        var readme = File.ReadAllText(Path.Combine(ServerProcess.RepositoryRoot, "README.md"));
        var marker = readme.IndexOf("NginxDeploymentTests.cs runs the next nginx block", StringComparison.Ordinal);
        Assert.True(marker >= 0, "README.md lost the marker comment before the deployment's nginx block");
        var block = NginxFence().Match(readme, marker);
        Assert.True(block.Success, "README.md has no ```nginx block after the deployment marker");
        return block.Groups["site"].Value;
    }

    private static string SiteFromReadme(int serverPort, int httpPort, int httpsPort, string certificate, string key)
    {
        var site = ReadmeSite();
        // Each placeholder must be there exactly once: a README edit that moves them fails here, not in nginx.
        site = ReplaceOnce(site, "server 127.0.0.1:5080;", $"server 127.0.0.1:{serverPort};");
        site = ReplaceOnce(site, "listen 80;", $"listen 127.0.0.1:{httpPort};");
        site = ReplaceOnce(site, "listen [::]:80;", "");
        site = ReplaceOnce(site, "listen 443 ssl http2;", $"listen 127.0.0.1:{httpsPort} ssl http2;");
        site = ReplaceOnce(site, "listen [::]:443 ssl http2;", "");
        site = ReplaceOnce(site, "/etc/letsencrypt/live/uploads.example.com/fullchain.pem", certificate);
        site = ReplaceOnce(site, "/etc/letsencrypt/live/uploads.example.com/privkey.pem", key);
        return site;
    }

    private string MainConfiguration(string site)
    {
        var d = NginxDirectory;
        // Debian's /etc/nginx/nginx.conf around the site, with the pid, logs and temp files moved into the temp folder.
        return $$"""
            {{(Environment.UserName == "root" ? "user root;" : "")}}
            worker_processes 1;
            pid {{d}}/nginx.pid;
            error_log {{d}}/error.log info;
            events { worker_connections 768; }
            http {
                sendfile on;
                tcp_nopush on;
                types_hash_max_size 2048;
                include /etc/nginx/mime.types;
                default_type application/octet-stream;
                ssl_protocols TLSv1.2 TLSv1.3;
                ssl_prefer_server_ciphers on;
                access_log {{d}}/access.log;
                gzip on;
                client_body_temp_path {{d}}/client_body;
                proxy_temp_path {{d}}/proxy;
                fastcgi_temp_path {{d}}/fastcgi;
                uwsgi_temp_path {{d}}/uwsgi;
                scgi_temp_path {{d}}/scgi;
            {{site}}
            }
            """;
    }

    private static string ReplaceOnce(string text, string placeholder, string value)
    {
        var first = text.IndexOf(placeholder, StringComparison.Ordinal);
        Assert.True(first >= 0 && text.IndexOf(placeholder, first + 1, StringComparison.Ordinal) < 0,
            $"README.md's nginx block must contain '{placeholder}' exactly once (NginxDeployment fills it in)");
        return string.Concat(text.AsSpan(0, first), value, text.AsSpan(first + placeholder.Length));
    }

    private void WriteCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        CertificateHash = certificate.GetCertHashString();
        File.WriteAllText(Path.Combine(NginxDirectory, "cert.pem"), certificate.ExportCertificatePem());
        File.WriteAllText(Path.Combine(NginxDirectory, "key.pem"), key.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>
    /// `dotnet publish` of the server, as the README says, but from the build the tests already made (--no-build):
    /// the running tests' servers (this and other test projects, in parallel) live in that build's output, which a
    /// second build must not rewrite; for the same reason npm's tree is not touched (SkipNpmInstall: the build already
    /// ran `npm ci`, and a library missing from the output fails the published-folder test). The output goes to this
    /// fixture's own temp folder.
    /// </summary>
    private async Task PublishAsync()
    {
        var project = Path.Combine(ServerProcess.RepositoryRoot, "src", "ChunkUpload.Server", "ChunkUpload.Server.csproj");
        await RunAsync("dotnet",
            ["publish", project, "-c", Configuration, "--no-build", "-p:SkipNpmInstall=true", "-o", PublishDirectory, "-nologo", "-nodeReuse:false"],
            TimeSpan.FromMinutes(5));
    }

    private void StartNginx()
    {
        var start = new ProcessStartInfo(NginxPath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "-c", ConfigPath, "-g", "daemon off;" })
        {
            start.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => AppendNginx(e.Data);
        process.ErrorDataReceived += (_, e) => AppendNginx(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _nginx = process;
    }

    /// <summary>Stops the nginx master started here and its workers (by PID: the process tree of that master).</summary>
    private async Task StopNginxAsync()
    {
        var process = _nginx;
        _nginx = null;
        if (process is null)
        {
            return;
        }

        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        process.Dispose();
    }

    private async Task WaitForProxyAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            if (_nginx is { HasExited: true })
            {
                throw new InvalidOperationException($"nginx exited with code {_nginx.ExitCode}:\n{NginxLog}");
            }

            try
            {
                using var response = await ProxyHttp.GetAsync(new Uri("healthz", UriKind.Relative));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // nginx is not listening yet
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"nginx did not pass /healthz through within 30 s:\n{NginxLog}\nserver log:\n{Server.Log}");
            }

            await Task.Delay(100);
        }
    }

    private static void EnsureNginx()
    {
        if (File.Exists(NginxPath))
        {
            return;
        }

        var ci = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
        if (Environment.UserName == "root")
        {
            BrowserFixture.Run("apt-get", "update", "-o", "DPkg::Lock::Timeout=600");
            BrowserFixture.Run("apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=600", "nginx");
        }

        if (!File.Exists(NginxPath))
        {
            throw new InvalidOperationException(
                $"{NginxPath} is missing and could not be installed (apt-get install -y nginx). " +
                (ci ? "CI=true: the deployment test must run, so this is a failure." : "Install it and run the tests again."));
        }
    }

    private static async Task RunAsync(string file, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', start.ArgumentList)} took more than {timeout}");
        }

        var (standardOutput, standardError) = (await stdout, await stderr);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"{file} {string.Join(' ', start.ArgumentList)} exited with {process.ExitCode}:\n{standardOutput}\n{standardError}"));
        }
    }

    private void AppendNginx(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_nginxOutput)
        {
            _nginxOutput.AppendLine(line);
        }
    }

    private static string ReadShared(string path)
    {
        if (!File.Exists(path))
        {
            return "";
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static string Tail(string text, int lines) =>
        string.Join('\n', text.Split('\n', StringSplitOptions.RemoveEmptyEntries).TakeLast(lines));

    /// <summary>The access log so far (shared read: nginx keeps writing it).</summary>
    public string AccessLog() => ReadShared(AccessLogPath);

    [GeneratedRegex(@"```nginx\n(?<site>.*?)```", RegexOptions.Singleline)]
    private static partial Regex NginxFence();
}
