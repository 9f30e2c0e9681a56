using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using ChunkUpload.FaultTests.Infrastructure;

namespace ChunkUpload.ClientTests.Infrastructure;

[CollectionDefinition(Name)]
public sealed class TusServerCollection : ICollectionFixture<TusServerFixture>
{
    public const string Name = "tus server";
}

/// <summary>
/// One real server process (own storage root, free loopback port) for the client tests, the scenario scripts
/// installed, and a work folder for source files; plus the server-side checks every scenario ends with.
/// </summary>
public sealed class TusServerFixture : IAsyncLifetime
{
    private readonly string _storageRoot = Directory.CreateTempSubdirectory("chunkupload-clients-store-").FullName;

    public ServerProcess Server { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    public string WorkDirectory { get; } = Directory.CreateTempSubdirectory("chunkupload-clients-").FullName;

    public Uri TusEndpoint => new(Server.BaseUri, "/tus");

    /// <summary>Where uploads of the IETF draft "Resumable Uploads for HTTP" are created.</summary>
    public Uri RufhEndpoint => new(Server.BaseUri, "/rufh/");

    public async Task InitializeAsync()
    {
        await NodeScenario.EnsureInstalledAsync();
        Server = await ServerProcess.StartHealthyAsync(_storageRoot, TimeSpan.FromSeconds(60));
        Http = new HttpClient { BaseAddress = Server.BaseUri, Timeout = TimeSpan.FromSeconds(60) };
    }

    public Task DisposeAsync()
    {
        Http?.Dispose();
        Server?.Dispose();
        Directory.Delete(_storageRoot, recursive: true);
        Directory.Delete(WorkDirectory, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>A new file of <paramref name="size"/> random bytes named <paramref name="name"/>, written in 1 MiB blocks.</summary>
    public string CreateFile(string name, long size)
    {
        string folder = Directory.CreateDirectory(Path.Combine(WorkDirectory, Guid.NewGuid().ToString("N"))).FullName;
        string path = Path.Combine(folder, name);
        using var file = File.Create(path);
        byte[] block = new byte[1024 * 1024];
        for (long left = size; left > 0; left -= block.Length)
        {
            RandomNumberGenerator.Fill(block);
            file.Write(block, 0, (int)Math.Min(block.Length, left));
        }

        return path;
    }

    public static string Sha256Of(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>GET /uploads/{id}: the upload's state as the server reports it (null on 404).</summary>
    public async Task<JsonElement?> StatusAsync(string id)
    {
        using var response = await Http.GetAsync(new Uri("/uploads/" + Uri.EscapeDataString(id), UriKind.Relative));
        if (response.StatusCode == HttpStatusCode.NotFound)
            return null;
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    /// <summary>
    /// The server side of a finished scenario: GET /uploads/{id} reaches state complete (polled with a deadline; a
    /// concatenation completes in the background) with the source's SHA-256, and GET /files/{id} returns exactly the
    /// source's bytes. Returns the status document.
    /// </summary>
    public async Task<JsonElement> AssertStoredAsync(string id, string source)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        JsonElement? status;
        while ((status = await StatusAsync(id)) is not { } s || s.GetProperty("state").GetString() != "complete")
        {
            Assert.True(DateTime.UtcNow < deadline, $"upload {id} did not complete on the server; last status: {status?.ToString() ?? "404"}\n{Server.LogTail}");
            await Task.Delay(50);
        }

        var complete = status.Value;
        Assert.Equal(new FileInfo(source).Length, complete.GetProperty("totalSize").GetInt64());
        Assert.Equal(Sha256Of(source), complete.GetProperty("sha256").GetString());

        using var response = await Http.GetAsync(new Uri("/files/" + Uri.EscapeDataString(id), UriKind.Relative), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var downloaded = await response.Content.ReadAsStreamAsync();
        await using var expected = File.OpenRead(source);
        await AssertSameBytesAsync(expected, downloaded);
        return complete;
    }

    private static async Task AssertSameBytesAsync(Stream expected, Stream actual)
    {
        byte[] a = new byte[256 * 1024];
        byte[] b = new byte[256 * 1024];
        long position = 0;
        while (true)
        {
            int read = await expected.ReadAtLeastAsync(a, a.Length, throwOnEndOfStream: false);
            int got = await actual.ReadAtLeastAsync(b, b.Length, throwOnEndOfStream: false);
            Assert.True(read == got, $"the download has {(got < read ? "fewer" : "more")} bytes than the source after {position} bytes");
            if (read == 0)
                return;
            int differs = a.AsSpan(0, read).CommonPrefixLength(b.AsSpan(0, got));
            Assert.True(differs == read, $"the download differs from the source at byte {position + differs}");
            position += read;
        }
    }
}
