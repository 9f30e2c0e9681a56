using ChunkUpload.ClientTests.Infrastructure;
using Xunit.Abstractions;

namespace ChunkUpload.ClientTests;

/// <summary>
/// tus-js-client 4.3.1 (the client Uppy wraps) in Node against the real server at /tus: every scenario runs the
/// library itself (node/*.mjs), asserts on the requests it made, and checks the server's side: GET /uploads/{id}
/// complete with the source's SHA-256 and GET /files/{id} byte-identical. See ../shared/PROTOCOLS.md 10.3 and 11.
/// </summary>
[Collection(TusServerCollection.Name)]
public sealed class TusJsClientTests(TusServerFixture fixture, ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public async Task Whole_file_with_the_default_chunk_size_is_one_PATCH_and_keeps_its_unicode_name()
    {
        const string name = "résumé 東京 ✓.bin";
        string file = fixture.CreateFile("whole.bin", (8 * MiB) + 123);

        var result = await NodeScenario.RunAsync("whole-file.mjs", new { endpoint = fixture.TusEndpoint, file, name }, output);

        Assert.Equal("success", result.Outcome);
        var post = Assert.Single(result.Requests, r => r.Method == "POST");
        Assert.Equal(201, post.Status);
        Assert.Equal(new FileInfo(file).Length, post.UploadLength);
        var patch = Assert.Single(result.Patches);
        Assert.Equal(0, patch.UploadOffset);
        Assert.Equal(new FileInfo(file).Length, patch.SentBytes);
        Assert.Equal(204, patch.Status);
        Assert.Equal(new FileInfo(file).Length, patch.ResponseOffset);

        var status = await fixture.AssertStoredAsync(result.UploadId, file);
        Assert.Equal("tus", status.GetProperty("protocol").GetString());
        Assert.Equal(name, status.GetProperty("fileName").GetString());
    }

    [Fact]
    public async Task Upload_aborted_half_way_is_found_by_its_fingerprint_and_resumed_sending_only_the_rest()
    {
        long size = 16 * MiB;
        const long chunkSize = 5 * MiB; // no chunk ends at the half: the abort cuts a PATCH
        string file = fixture.CreateFile("abort-me.bin", size);
        var arguments = new { endpoint = fixture.TusEndpoint, file, name = "abort-me.bin", chunkSize, urlStorage = Path.Combine(fixture.WorkDirectory, Guid.NewGuid().ToString("N") + ".json") };

        var first = await NodeScenario.RunAsync("abort-half.mjs", arguments, output);
        Assert.Equal("aborted", first.Outcome);
        long sentBefore = first.Patches.Sum(p => p.SentBytes);
        Assert.InRange(sentBefore, size / 2, (size / 2) + (256 * 1024)); // aborted at the half, give or take a few reads
        Assert.Contains(first.Patches, p => p.Status is null); // the PATCH in flight was cut by abort()
        var before = await fixture.StatusAsync(first.UploadId);
        Assert.Equal("receiving", before!.Value.GetProperty("state").GetString());

        var second = await NodeScenario.RunAsync("resume-stored.mjs", arguments, output);

        Assert.Equal("success", second.Outcome);
        Assert.Equal(first.Url, second.ResumedUrl);
        Assert.Equal(first.Url, second.Url);
        Assert.DoesNotContain(second.Requests, r => r.Method == "POST"); // resumed, not created anew
        var head = second.Requests[0];
        Assert.Equal("HEAD", head.Method);
        long offset = head.ResponseOffset!.Value;
        output.WriteLine($"acknowledged before the abort {first.Acknowledged}, sent {sentBefore}, server offset after it {offset}");
        Assert.InRange(offset, first.Acknowledged, sentBefore); // everything acknowledged is kept; nothing invented
        Assert.Equal(offset, second.Patches.First().UploadOffset);
        Assert.All(second.Patches, p => Assert.Equal(204, p.Status));
        Assert.Equal(size - offset, second.Patches.Sum(p => p.SentBytes)); // only the rest was sent
        await fixture.AssertStoredAsync(second.UploadId, file);
    }

    [Fact]
    public async Task Parallel_uploads_send_four_partial_uploads_that_the_final_upload_concatenates()
    {
        string file = fixture.CreateFile("parallel.bin", (12 * MiB) + 3);

        var result = await NodeScenario.RunAsync("parallel.mjs", new { endpoint = fixture.TusEndpoint, file, name = "parallel.bin" }, output);

        Assert.Equal("success", result.Outcome);
        var partials = result.Requests.Where(r => r.Method == "POST" && r.UploadConcat == "partial").ToList();
        Assert.Equal(4, partials.Count);
        Assert.All(partials, p => Assert.Equal(201, p.Status));
        Assert.Equal(new FileInfo(file).Length, result.Patches.Sum(p => p.SentBytes));
        Assert.Equal(4, result.Patches.Select(p => p.Url).Distinct().Count());
        var final = Assert.Single(result.Requests, r => r.UploadConcat?.StartsWith("final;", StringComparison.Ordinal) == true);
        Assert.Equal(201, final.Status);
        Assert.Equal(
            partials.Select(p => ScenarioResult.IdOf(new Uri(fixture.TusEndpoint, p.Location).ToString())).Order(),
            final.UploadConcat!["final;".Length..].Split(' ').Select(ScenarioResult.IdOf).Order());

        await fixture.AssertStoredAsync(result.UploadId, file);
    }

    [Fact]
    public async Task Upload_data_during_creation_stores_the_first_chunk_from_the_POST()
    {
        long size = (10 * MiB) + 77;
        const long chunkSize = 4 * MiB;
        string file = fixture.CreateFile("with-creation.bin", size);

        var result = await NodeScenario.RunAsync("creation-with-upload.mjs", new { endpoint = fixture.TusEndpoint, file, name = "with-creation.bin", chunkSize }, output);

        Assert.Equal("success", result.Outcome);
        var post = Assert.Single(result.Requests, r => r.Method == "POST");
        Assert.Equal("application/offset+octet-stream", post.ContentType);
        Assert.Equal(chunkSize, post.SentBytes);
        Assert.Equal(201, post.Status);
        Assert.Equal(chunkSize, post.ResponseOffset);
        Assert.Equal([chunkSize, 2 * chunkSize], result.Patches.Select(p => p.UploadOffset!.Value));
        Assert.Equal(size - chunkSize, result.Patches.Sum(p => p.SentBytes));
        await fixture.AssertStoredAsync(result.UploadId, file);
    }

    [Fact]
    public async Task Wrong_Upload_Checksum_is_refused_with_460_and_nothing_of_that_body_is_kept()
    {
        const long chunkSize = 2 * MiB;
        const long corruptAt = 2 * chunkSize;
        string file = fixture.CreateFile("checksum.bin", (7 * MiB) + 5);

        var failed = await NodeScenario.RunAsync("checksum.mjs", new { endpoint = fixture.TusEndpoint, file, name = "checksum.bin", chunkSize, corruptAt }, output);

        Assert.Equal("error", failed.Outcome);
        Assert.Equal(460, failed.Error!.Status);
        Assert.Contains("\"code\":\"checksum_mismatch\"", failed.Error.Body, StringComparison.Ordinal);
        // The two PATCHes before carried correct digests and were accepted; the corrupt one was not retried.
        Assert.Equal([204, 204, 460], failed.Patches.Select(p => p.Status!.Value));
        Assert.All(failed.Patches, p => Assert.StartsWith("sha1 ", p.UploadChecksum, StringComparison.Ordinal));
        var status = await fixture.StatusAsync(failed.UploadId);
        Assert.Equal(corruptAt, status!.Value.GetProperty("storedBytes").GetInt64());
        Assert.Equal(corruptAt, status.Value.GetProperty("offset").GetInt64());

        var resumed = await NodeScenario.RunAsync("checksum.mjs", new { endpoint = fixture.TusEndpoint, file, name = "checksum.bin", chunkSize, uploadUrl = failed.Url }, output);

        Assert.Equal("success", resumed.Outcome);
        Assert.Equal(corruptAt, resumed.Requests.Single(r => r.Method == "HEAD").ResponseOffset);
        Assert.Equal(corruptAt, resumed.Patches.First().UploadOffset);
        await fixture.AssertStoredAsync(resumed.UploadId, file);
    }

    [Fact]
    public async Task Connection_cut_mid_PATCH_resumes_from_the_offset_the_server_reports()
    {
        long size = 24 * MiB;
        string file = fixture.CreateFile("cut.bin", size);
        await using var proxy = new CuttingProxy(fixture.Server.BaseUri, cutAfter: 10 * MiB);
        proxy.Start();

        var result = await NodeScenario.RunAsync("whole-file.mjs", new { endpoint = new Uri(proxy.BaseUri, "/tus"), file, name = "cut.bin" }, output);

        Assert.True(proxy.Cut.IsCompleted, "the proxy never cut the connection");
        long forwarded = await proxy.Cut;
        Assert.Equal("success", result.Outcome);
        var cut = Assert.Single(result.Requests, r => r.Error is not null);
        Assert.Equal("PATCH", cut.Method);
        Assert.Equal(0, cut.UploadOffset);
        var after = result.Requests.SkipWhile(r => r != cut).Skip(1).ToList();
        var head = after.First();
        Assert.Equal("HEAD", head.Method); // tus-js-client's retry asks the server for the offset ...
        long offset = head.ResponseOffset!.Value;
        output.WriteLine($"bytes through the cut connection {forwarded}, offset the server reported {offset}");
        Assert.InRange(offset, 1, forwarded); // ... the server kept the durable prefix, never more than arrived
        var resume = after.Last();
        Assert.Equal("PATCH", resume.Method);
        Assert.Equal(204, resume.Status);
        Assert.Equal(offset, resume.UploadOffset);
        Assert.Equal(size - offset, resume.SentBytes);
        await fixture.AssertStoredAsync(result.UploadId, file);
    }
}
