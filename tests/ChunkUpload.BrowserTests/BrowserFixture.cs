using System.Diagnostics;

namespace ChunkUpload.BrowserTests;

[CollectionDefinition(Name)]
public sealed class BrowserCollection : ICollectionFixture<BrowserFixture>
{
    public const string Name = "browser";
}

/// <summary>
/// One server and one Chromium for all browser tests. Chromium is Debian's /usr/bin/chromium; when it is
/// missing the fixture installs it with apt-get (as root). If it is still missing the tests fail: they are
/// never skipped.
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private static readonly string[] ChromiumArgs =
    [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ];

    public ServerProcess Server { get; private set; } = null!;

    public IPlaywright Playwright { get; private set; } = null!;

    public IBrowser Browser { get; private set; } = null!;

    /// <summary>Test files and artifacts (screenshots) live under the test output directory.</summary>
    public string WorkDirectory { get; } = Directory.CreateTempSubdirectory("chunkupload-browser-").FullName;

    public static string ArtifactsDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "artifacts");

    public async Task InitializeAsync()
    {
        // A deadline for every Expect (Playwright's default is 5 s): the suite shares two cores with the other test
        // projects in CI, and a page can take longer than that to react under that load.
        Assertions.SetDefaultExpectTimeout(30_000);
        EnsureChromium();
        Directory.CreateDirectory(ArtifactsDirectory);
        Server = await ServerProcess.StartAsync();
        Playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        Browser = await Playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ChromiumArgs,
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }

        Playwright?.Dispose();
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }

        Directory.Delete(WorkDirectory, recursive: true);
    }

    private static void EnsureChromium()
    {
        if (File.Exists(ChromiumPath))
        {
            return;
        }

        var ci = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
        if (Environment.UserName == "root")
        {
            Run("apt-get", "update", "-o", "DPkg::Lock::Timeout=600");
            Run("apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=600", "chromium");
        }

        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException(
                $"{ChromiumPath} is missing and could not be installed (apt-get install -y chromium). " +
                (ci ? "CI=true: browser tests must run, so this is a failure." : "Install it and run the tests again."));
        }
    }

    internal static void Run(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {file}");
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', arguments)} took more than 10 minutes");
        }
    }
}
