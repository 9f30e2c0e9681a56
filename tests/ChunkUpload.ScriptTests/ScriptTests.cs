using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ChunkUpload.Testing;
using Xunit.Abstractions;

namespace ChunkUpload.ScriptTests;

/// <summary>scripts/upload.sh, status.sh and download.sh (bash + curl) against the real server process.</summary>
public sealed class ScriptTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int MiB = 1024 * 1024;
    private readonly string _work = Directory.CreateTempSubdirectory("chunkupload-scripts-").FullName;
    private ServerProcess _server = null!;

    public async Task InitializeAsync() => _server = await ServerProcess.StartAsync();

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_work, recursive: true);
    }

    private string Url => _server.BaseUri.ToString().TrimEnd('/');

    [Fact]
    public async Task Upload_sh_sends_the_file_in_resumable_js_chunks_and_verifies_the_sha256()
    {
        var file = CreateFile("holiday film.mkv", (5 * MiB) + 1234);
        using var run = await ScriptRun.RunAsync("upload.sh", _work, "-c", MiB.ToString(CultureInfo.InvariantCulture), file, Url);
        output.WriteLine(run.ToString());

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("5244114-holidayfilmmkv", run.Stdout.Trim());
        Assert.Contains("5 chunk(s)", run.Stderr, StringComparison.Ordinal); // last chunk absorbs the remainder
        Assert.Contains("chunks sent: 5, already on the server: 0", run.Stderr, StringComparison.Ordinal);
        var status = await StatusAsync("5244114-holidayfilmmkv");
        Assert.Equal("complete", status!["state"]!.GetValue<string>());
        Assert.Equal(Sha256(file), status["sha256"]!.GetValue<string>());
        Assert.Equal("holiday film.mkv", status["fileName"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Upload_sh_killed_half_way_and_run_again_sends_only_the_rest(bool restartServerInBetween)
    {
        const int chunks = 16;
        var file = CreateFile("big.bin", chunks * MiB);
        var id = $"{chunks * MiB}-bigbin";

        // A slow first run (2 chunks at a time, 1 MiB/s each), killed with everything it started.
        var first = ScriptRun.Start("upload.sh", _work, "-c", MiB.ToString(CultureInfo.InvariantCulture), "-j", "2",
            "--limit-rate", "1M", file, Url);
        using (first)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await StatusAsync(id))?["receivedChunks"]?.GetValue<int>() is not >= 4)
            {
                Assert.False(first.HasExited, $"the first run ended early: {first}");
                Assert.True(DateTime.UtcNow < deadline, "the first run stored no chunks within 60 s");
                await Task.Delay(100);
            }

            first.Kill();
            await first.WaitAsync(TimeSpan.FromSeconds(30));
        }

        if (restartServerInBetween)
        {
            await _server.RestartAsync();
        }

        var before = await StatusAsync(id);
        Assert.NotNull(before);
        var missing = before["missingChunks"]!.AsArray().Count;
        output.WriteLine($"after the kill: {chunks - missing} of {chunks} chunks stored, {missing} missing");
        Assert.InRange(missing, 1, chunks - 4);

        using var second = await ScriptRun.RunAsync("upload.sh", _work, "-c", MiB.ToString(CultureInfo.InvariantCulture), file, Url);
        output.WriteLine(second.ToString());
        Assert.Equal(0, second.ExitCode);
        Assert.Contains($"chunks sent: {missing}, already on the server: {chunks - missing}", second.Stderr, StringComparison.Ordinal);
        Assert.Contains("matches the server", second.Stderr, StringComparison.Ordinal);
        var after = await StatusAsync(id);
        Assert.Equal(Sha256(file), after!["sha256"]!.GetValue<string>());
    }

    [Fact]
    public async Task Upload_sh_over_tus_creates_the_upload_patches_the_file_in_chunks_and_verifies_the_sha256()
    {
        const int size = (5 * MiB) + 1234;
        var file = CreateFile("holiday film.mkv", size);
        using var run = await ScriptRun.RunAsync("upload.sh", _work, "--protocol", "tus", "-c", MiB.ToString(CultureInfo.InvariantCulture), file, Url);
        output.WriteLine(run.ToString());

        Assert.Equal(0, run.ExitCode);
        var id = run.Stdout.Trim();
        Assert.Matches("^[0-9a-f]{32}$", id);
        Assert.Equal(id, CreatedId(run.Stderr));
        Assert.Contains($"bytes sent: {size} in 6 PATCH(es), already on the server: 0", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("matches the server", run.Stderr, StringComparison.Ordinal);
        var status = await StatusAsync(id);
        Assert.Equal("tus", status!["protocol"]!.GetValue<string>());
        Assert.Equal("complete", status["state"]!.GetValue<string>());
        Assert.Equal(Sha256(file), status["sha256"]!.GetValue<string>());
        Assert.Equal("holiday film.mkv", status["fileName"]!.GetValue<string>());
        Assert.Equal(await File.ReadAllBytesAsync(file), await _server.Http.GetByteArrayAsync(new Uri("files/" + id, UriKind.Relative)));
        Assert.Empty(StateFiles()); // a verified upload is forgotten
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task Upload_sh_over_tus_killed_half_way_and_run_again_sends_only_the_rest(bool restartServerInBetween, bool onePatch)
    {
        const int size = 16 * MiB;
        var file = CreateFile("big.bin", size);
        string[] mode = onePatch ? ["--one-patch"] : ["-c", (4 * MiB).ToString(CultureInfo.InvariantCulture)];

        // A slow first run (2 MiB/s), killed with its curl as soon as the server has stored part of the file: after
        // the first 4 MiB PATCH, or within the single PATCH once the engine stored its first 8 MiB piece.
        string? id = null;
        var first = ScriptRun.Start("upload.sh", _work, ["--protocol", "tus", "--limit-rate", "2M", .. mode, file, Url]);
        using (first)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (true)
            {
                id ??= CreatedId(first.Stderr);
                if (id is not null && (await StatusAsync(id))?["offset"]?.GetValue<long>() > 0)
                {
                    break;
                }

                Assert.False(first.HasExited, $"the first run ended early: {first}");
                Assert.True(DateTime.UtcNow < deadline, $"the first run stored nothing within 60 s: {first}");
                await Task.Delay(100);
            }

            first.Kill();
            await first.WaitAsync(TimeSpan.FromSeconds(30));
            output.WriteLine(first.ToString());
        }

        Assert.NotNull(id);
        Assert.Single(StateFiles()); // the upload URL outlives the killed run
        if (restartServerInBetween)
        {
            await _server.RestartAsync(); // SIGKILL, then a new process on another port: the URL's path still leads there
        }

        var stored = (await StatusAsync(id))!["offset"]!.GetValue<long>();
        output.WriteLine($"after the kill: {stored} of {size} bytes stored");
        Assert.InRange(stored, 1, size - 1);

        using var second = await ScriptRun.RunAsync("upload.sh", _work, ["--protocol", "tus", .. mode, file, Url]);
        output.WriteLine(second.ToString());
        Assert.Equal(0, second.ExitCode);
        Assert.Equal(id, second.Stdout.Trim()); // the same upload, continued
        Assert.DoesNotContain("created", second.Stderr, StringComparison.Ordinal);
        Assert.Contains("resuming big.bin at byte ", second.Stderr, StringComparison.Ordinal);
        var summary = Regex.Match(second.Stderr, @"bytes sent: (\d+) in (\d+) PATCH\(es\), already on the server: (\d+)");
        Assert.True(summary.Success, second.ToString());
        long sent = long.Parse(summary.Groups[1].Value, CultureInfo.InvariantCulture);
        long already = long.Parse(summary.Groups[3].Value, CultureInfo.InvariantCulture);
        output.WriteLine($"second run: {sent} bytes PATCHed, {already} already on the server");
        Assert.InRange(already, stored, size - 1); // nothing the server had stored was lost or sent again
        Assert.Equal(size - already, sent); // only the rest
        var after = await StatusAsync(id);
        Assert.Equal("complete", after!["state"]!.GetValue<string>());
        Assert.Equal(Sha256(file), after["sha256"]!.GetValue<string>());
        Assert.Empty(StateFiles());
    }

    [Fact]
    public async Task Upload_sh_over_tus_starts_a_new_upload_when_the_server_no_longer_has_the_remembered_one()
    {
        var file = CreateFile("gone.bin", 4 * MiB);
        string? id = null;
        using (var first = ScriptRun.Start("upload.sh", _work, "--protocol", "tus", "-c", MiB.ToString(CultureInfo.InvariantCulture), "--limit-rate", "1M", file, Url))
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((id = CreatedId(first.Stderr)) is null || StateFiles().Length == 0)
            {
                Assert.False(first.HasExited, $"the first run ended early: {first}");
                Assert.True(DateTime.UtcNow < deadline, $"the first run created no upload within 60 s: {first}");
                await Task.Delay(50);
            }

            first.Kill();
            await first.WaitAsync(TimeSpan.FromSeconds(30));
        }

        using (var delete = await _server.Http.DeleteAsync(new Uri("uploads/" + id, UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        }

        using var second = await ScriptRun.RunAsync("upload.sh", _work, "--protocol", "tus", file, Url);
        output.WriteLine(second.ToString());
        Assert.Equal(0, second.ExitCode);
        Assert.Contains("the server no longer has the upload", second.Stderr, StringComparison.Ordinal);
        var newId = second.Stdout.Trim();
        Assert.Equal(newId, CreatedId(second.Stderr));
        Assert.NotEqual(id, newId);
        Assert.Contains($"bytes sent: {4 * MiB} in 1 PATCH(es), already on the server: 0", second.Stderr, StringComparison.Ordinal);
        Assert.Equal(Sha256(file), (await StatusAsync(newId))!["sha256"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("google", new[] { "-c", "1048576" }, "6 PUT(s)")]
    [InlineData("google", new[] { "--one-request" }, "1 PUT(s)")]
    [InlineData("nginx", new[] { "-c", "1048576", "-j", "3" }, "6 segment(s)")]
    [InlineData("append", new string[0], "1 POST(s)")]
    public async Task Upload_sh_over_a_range_protocol_sends_the_file_under_the_id_its_clients_derive_and_verifies_the_sha256(
        string protocol, string[] options, string requests)
    {
        const int size = (5 * MiB) + 1234;
        var file = CreateFile("holiday film.mkv", size);
        using var run = await ScriptRun.RunAsync("upload.sh", _work, ["--protocol", protocol, .. options, file, Url]);
        output.WriteLine(run.ToString());

        Assert.Equal(0, run.ExitCode);
        var id = run.Stdout.Trim();
        Assert.Equal(ExpectedId(protocol, file), id);
        Assert.Contains($"bytes sent: {size} in {requests}, already on the server: 0", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("matches the server", run.Stderr, StringComparison.Ordinal);
        var status = await StatusAsync(id);
        Assert.Equal(protocol, status!["protocol"]!.GetValue<string>());
        Assert.Equal("complete", status["state"]!.GetValue<string>());
        Assert.Equal(Sha256(file), status["sha256"]!.GetValue<string>());
        Assert.Equal("holiday film.mkv", status["fileName"]!.GetValue<string>());
        Assert.Equal(await File.ReadAllBytesAsync(file), await _server.Http.GetByteArrayAsync(new Uri("files/" + Uri.EscapeDataString(id), UriKind.Relative)));
        Assert.Empty(StateFiles());
    }

    [Theory]
    [InlineData("google", false, false)]
    [InlineData("google", true, true)]
    [InlineData("nginx", false, false)]
    [InlineData("nginx", true, false)]
    [InlineData("append", false, false)]
    [InlineData("append", true, false)]
    public async Task Upload_sh_over_a_range_protocol_killed_half_way_and_run_again_sends_only_the_rest(
        string protocol, bool restartServerInBetween, bool oneRequest)
    {
        const int size = 16 * MiB;
        var file = CreateFile("big.bin", size);
        var id = ExpectedId(protocol, file);

        // google: PUTs of 4 MiB (or the whole file in one PUT); nginx: 2 MiB segments, 2 at a time; append: one POST.
        string[] mode = protocol switch
        {
            "google" when oneRequest => ["--one-request"],
            "google" => ["-c", (4 * MiB).ToString(CultureInfo.InvariantCulture)],
            "nginx" => ["-c", (2 * MiB).ToString(CultureInfo.InvariantCulture), "-j", "2"],
            _ => [],
        };

        // A slow first run (2 MiB/s; nginx 1 MiB/s per segment), killed with its curl processes as soon as the server has
        // stored part of the file: after the first PUT or segments, or within the single PUT or POST once the engine
        // stored its first 8 MiB piece.
        var rate = protocol == "nginx" ? "1M" : "2M";
        var first = ScriptRun.Start("upload.sh", _work, ["--protocol", protocol, "--limit-rate", rate, .. mode, file, Url]);
        using (first)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await StatusAsync(id))?["storedBytes"]?.GetValue<long>() is not > 0)
            {
                Assert.False(first.HasExited, $"the first run ended early: {first}");
                Assert.True(DateTime.UtcNow < deadline, $"the first run stored nothing within 60 s: {first}");
                await Task.Delay(100);
            }

            first.Kill();
            await first.WaitAsync(TimeSpan.FromSeconds(30));
            output.WriteLine(first.ToString());
        }

        Assert.Single(StateFiles()); // the id (and URL) outlives the killed run
        if (restartServerInBetween)
        {
            await _server.RestartAsync(); // SIGKILL, then a new process on another port with the same storage
        }

        var stored = (await StatusAsync(id))!["storedBytes"]!.GetValue<long>();
        output.WriteLine($"after the kill: {stored} of {size} bytes stored");
        Assert.InRange(stored, 1, size - 1);

        using var second = await ScriptRun.RunAsync("upload.sh", _work, ["--protocol", protocol, .. mode, file, Url]);
        output.WriteLine(second.ToString());
        Assert.Equal(0, second.ExitCode);
        Assert.Equal(id, second.Stdout.Trim()); // the same upload, continued
        Assert.DoesNotContain("started", second.Stderr, StringComparison.Ordinal); // google: no new session
        Assert.Contains("resuming big.bin", second.Stderr, StringComparison.Ordinal);
        var summary = Regex.Match(second.Stderr, @"bytes sent: (\d+) in (\d+) (PUT|segment|POST)\(s\), already on the server: (\d+)");
        Assert.True(summary.Success, second.ToString());
        long sent = long.Parse(summary.Groups[1].Value, CultureInfo.InvariantCulture);
        long already = long.Parse(summary.Groups[4].Value, CultureInfo.InvariantCulture);
        output.WriteLine($"second run: {sent} bytes sent in {summary.Groups[2].Value} {summary.Groups[3].Value}(s), {already} already on the server");
        Assert.InRange(already, stored, size - 1); // nothing the server had stored was lost or sent again
        Assert.Equal(size - already, sent); // only the rest
        var after = await StatusAsync(id);
        Assert.Equal("complete", after!["state"]!.GetValue<string>());
        Assert.Equal(Sha256(file), after["sha256"]!.GetValue<string>());
        Assert.Empty(StateFiles());
    }

    [Fact]
    public async Task Upload_sh_over_google_starts_again_when_the_server_no_longer_has_the_session()
    {
        var file = CreateFile("gone.bin", 4 * MiB);
        var id = ExpectedId("google", file);
        using (var first = ScriptRun.Start("upload.sh", _work, "--protocol", "google", "-c", MiB.ToString(CultureInfo.InvariantCulture), "--limit-rate", "1M", file, Url))
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await StatusAsync(id))?["storedBytes"]?.GetValue<long>() is not > 0 || StateFiles().Length == 0)
            {
                Assert.False(first.HasExited, $"the first run ended early: {first}");
                Assert.True(DateTime.UtcNow < deadline, $"the first run stored nothing within 60 s: {first}");
                await Task.Delay(50);
            }

            first.Kill();
            await first.WaitAsync(TimeSpan.FromSeconds(30));
        }

        using (var delete = await _server.Http.DeleteAsync(new Uri("uploads/" + Uri.EscapeDataString(id), UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        }

        using var second = await ScriptRun.RunAsync("upload.sh", _work, "--protocol", "google", file, Url);
        output.WriteLine(second.ToString());
        Assert.Equal(0, second.ExitCode);
        Assert.Contains("the server no longer has the upload", second.Stderr, StringComparison.Ordinal);
        Assert.Contains("started ", second.Stderr, StringComparison.Ordinal);
        Assert.Equal(id, second.Stdout.Trim());
        Assert.Contains($"bytes sent: {4 * MiB} in 1 PUT(s), already on the server: 0", second.Stderr, StringComparison.Ordinal);
        Assert.Equal(Sha256(file), (await StatusAsync(id))!["sha256"]!.GetValue<string>());
    }

    [Fact]
    public async Task Upload_sh_uses_the_servers_chunk_size_and_handles_an_empty_file()
    {
        var empty = CreateFile("empty.txt", 0);
        using var run = await ScriptRun.RunAsync("upload.sh", _work, empty, Url);
        output.WriteLine(run.ToString());
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("1 chunk(s) of 8.0 MiB", run.Stderr, StringComparison.Ordinal);
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            (await StatusAsync("0-emptytxt"))!["sha256"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("google", "0 PUT(s)")] // the initiation names 0 bytes, which completes the upload
    [InlineData("append", "1 POST(s)")]
    public async Task Upload_sh_over_google_and_append_uploads_an_empty_file(string protocol, string requests)
    {
        var empty = CreateFile("empty.txt", 0);
        using var run = await ScriptRun.RunAsync("upload.sh", _work, "--protocol", protocol, empty, Url);
        output.WriteLine(run.ToString());
        Assert.Equal(0, run.ExitCode);
        Assert.Contains($"bytes sent: 0 in {requests}, already on the server: 0", run.Stderr, StringComparison.Ordinal);
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            (await StatusAsync(ExpectedId(protocol, empty)))!["sha256"]!.GetValue<string>());
    }

    [Fact]
    public async Task Status_sh_and_download_sh_report_and_resume_a_partial_download()
    {
        var file = CreateFile("report.pdf", (3 * MiB) + 99);
        using (var upload = await ScriptRun.RunAsync("upload.sh", _work, "-q", file, Url))
        {
            Assert.True(upload.ExitCode == 0, upload.ToString());
        }

        var id = "3145827-reportpdf";
        using (var status = await ScriptRun.RunAsync("status.sh", _work, id, Url))
        {
            output.WriteLine(status.ToString());
            Assert.Equal(0, status.ExitCode);
            Assert.Contains("state:      complete", status.Stdout, StringComparison.Ordinal);
            Assert.Contains("missing:    none", status.Stdout, StringComparison.Ordinal);
            Assert.Contains(Sha256(file), status.Stdout, StringComparison.Ordinal);
        }

        // A download cut after 1 MiB: the next run asks for the rest with Range.
        var target = Path.Combine(_work, "copy.pdf");
        await File.WriteAllBytesAsync(target + ".part", (await File.ReadAllBytesAsync(file)).AsSpan(0, MiB).ToArray());
        using (var download = await ScriptRun.RunAsync("download.sh", _work, "-u", Url, id, target))
        {
            output.WriteLine(download.ToString());
            Assert.Equal(0, download.ExitCode);
            Assert.Contains($"resuming at byte {MiB}", download.Stderr, StringComparison.Ordinal);
        }

        Assert.Equal(Sha256(file), Sha256(target));
        Assert.False(File.Exists(target + ".part"));

        // Without OUT the original name is used.
        using (var download = await ScriptRun.RunAsync("download.sh", _work, "-u", Url, id))
        {
            Assert.True(download.ExitCode == 0, download.ToString());
        }

        Assert.Equal(Sha256(file), Sha256(Path.Combine(_work, "report.pdf")));
    }

    [Fact]
    public async Task Scripts_fail_with_a_clear_message_and_a_non_zero_exit()
    {
        using (var unknown = await ScriptRun.RunAsync("status.sh", _work, "no-such-upload", Url))
        {
            Assert.Equal(4, unknown.ExitCode);
            Assert.Contains("has no upload no-such-upload", unknown.Stderr, StringComparison.Ordinal);
        }

        using (var missingFile = await ScriptRun.RunAsync("upload.sh", _work, Path.Combine(_work, "nope.bin"), Url))
        {
            Assert.Equal(1, missingFile.ExitCode);
            Assert.Contains("no such file", missingFile.Stderr, StringComparison.Ordinal);
        }

        var file = CreateFile("x.bin", 10);
        using (var noServer = await ScriptRun.RunAsync("upload.sh", _work, file, "http://127.0.0.1:9"))
        {
            Assert.Equal(1, noServer.ExitCode);
            Assert.Contains("Is the server running at http://127.0.0.1:9?", noServer.Stderr, StringComparison.Ordinal);
        }

        using (var notComplete = await ScriptRun.RunAsync("download.sh", _work, "-u", Url, "nothing-here"))
        {
            Assert.Equal(4, notComplete.ExitCode);
        }

        using (var badUsage = await ScriptRun.RunAsync("upload.sh", _work, "--jobs", "zero", file))
        {
            Assert.Equal(2, badUsage.ExitCode);
        }

        using (var badProtocol = await ScriptRun.RunAsync("upload.sh", _work, "--protocol", "ftp", file))
        {
            Assert.Equal(2, badProtocol.ExitCode);
            Assert.Contains("--protocol must be resumable, tus, google, nginx or append", badProtocol.Stderr, StringComparison.Ordinal);
        }

        using (var onePatchWithoutTus = await ScriptRun.RunAsync("upload.sh", _work, "--one-patch", file))
        {
            Assert.Equal(2, onePatchWithoutTus.ExitCode);
        }

        using (var oneRequestOverNginx = await ScriptRun.RunAsync("upload.sh", _work, "--protocol", "nginx", "--one-request", file))
        {
            Assert.Equal(2, oneRequestOverNginx.ExitCode);
            Assert.Contains("--one-request (--one-patch) needs --protocol tus or google", oneRequestOverNginx.Stderr, StringComparison.Ordinal);
        }

        // The nginx module's ranges name at least one byte: an empty file is refused before anything is sent.
        var empty = CreateFile("empty.bin", 0);
        using var emptyOverNginx = await ScriptRun.RunAsync("upload.sh", _work, "--protocol", "nginx", empty, Url);
        Assert.Equal(1, emptyOverNginx.ExitCode);
        Assert.Contains("cannot send an empty file", emptyOverNginx.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("upload.sh")]
    [InlineData("status.sh")]
    [InlineData("download.sh")]
    public async Task Every_script_explains_itself_with_help(string script)
    {
        using var run = await ScriptRun.RunAsync(script, _work, "--help");
        Assert.Equal(0, run.ExitCode);
        Assert.StartsWith("Usage: " + script, run.Stdout, StringComparison.Ordinal);
        Assert.Contains("Examples:", run.Stdout, StringComparison.Ordinal);
    }

    private async Task<JsonNode?> StatusAsync(string id)
    {
        using var response = await _server.Http.GetAsync(new Uri("uploads/" + Uri.EscapeDataString(id), UriKind.Relative));
        return response.StatusCode == HttpStatusCode.OK ? JsonNode.Parse(await response.Content.ReadAsStringAsync()) : null;
    }

    private string CreateFile(string name, int size) => TestFiles.Create(_work, name, size);

    // upload.sh logs "created <upload URL>" once the tus upload exists; the id is the URL's last segment.
    private static string? CreatedId(string stderr) =>
        Regex.Match(stderr, "created \\S*/tus/([0-9a-f]+)") is { Success: true } m ? m.Groups[1].Value : null;

    // The ids upload.sh derives from the file, as each protocol's clients do (the modification time in milliseconds, as
    // File.lastModified): google's /upload/NAME is size-time-name, nginx's Session-ID resumable.js's size-name (only
    // [0-9a-zA-Z_-]) plus -time, append's X-File-Id javascript.info's name-size-lastModified.
    private static string ExpectedId(string protocol, string path)
    {
        var name = Path.GetFileName(path);
        var size = new FileInfo(path).Length;
        var time = new DateTimeOffset(File.GetLastWriteTimeUtc(path)).ToUnixTimeMilliseconds();
        return protocol switch
        {
            "google" => $"{size}-{time}-{name}",
            "nginx" => $"{size}-{Regex.Replace(name, "[^0-9a-zA-Z_-]", "")}-{time}",
            "append" => $"{name}-{size}-{time}",
            _ => throw new ArgumentOutOfRangeException(nameof(protocol), protocol, "no derived id"),
        };
    }

    private string[] StateFiles()
    {
        var directory = ScriptRun.StateDirectory(_work);
        return Directory.Exists(directory) ? Directory.GetFiles(directory) : [];
    }

    private static string Sha256(string path) => TestFiles.Sha256(path);
}
