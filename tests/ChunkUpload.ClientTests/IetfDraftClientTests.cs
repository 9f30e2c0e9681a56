using ChunkUpload.ClientTests.Infrastructure;
using Xunit.Abstractions;

namespace ChunkUpload.ClientTests;

/// <summary>
/// tus-js-client 4.3.1's IETF modes (protocol 'ietf-draft-03', interop version 5, and 'ietf-draft-05', interop version
/// 6) in Node against the real server at /rufh/: an empty creation request (Upload-Complete: ?0), then PATCHes, the
/// last with Upload-Complete: ?1. The source is a Buffer: with a file stream these modes never send ?1 (PROTOCOLS.md
/// 11). Each scenario ends with the server's side: complete with the source's SHA-256, GET /files/{id} byte-identical.
/// </summary>
[Collection(TusServerCollection.Name)]
public sealed class IetfDraftClientTests(TusServerFixture fixture, ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;

    [Theory]
    [InlineData("ietf-draft-03", "5", null)]
    [InlineData("ietf-draft-05", "6", "application/partial-upload")]
    public async Task Whole_file_is_an_empty_creation_then_one_PATCH_that_completes_it(string protocol, string interop, string? patchType)
    {
        const string name = "ietf 東京 ✓.bin";
        long size = (8 * MiB) + 321;
        string file = fixture.CreateFile("ietf-whole.bin", size);

        var result = await NodeScenario.RunAsync("whole-file.mjs", new { endpoint = fixture.RufhEndpoint, file, name, protocol, buffer = true }, output);

        Assert.Equal("success", result.Outcome);
        Assert.All(result.Requests, r => Assert.Equal(interop, r.InteropVersion));
        var post = Assert.Single(result.Requests, r => r.Method == "POST");
        Assert.Equal("?0", post.UploadComplete);
        Assert.Equal(size, post.UploadLength);
        Assert.Equal(0, post.SentBytes);
        Assert.Equal(201, post.Status);
        Assert.Equal("?0", post.ResponseComplete);
        var patch = Assert.Single(result.Patches);
        Assert.Equal(0, patch.UploadOffset);
        Assert.Equal("?1", patch.UploadComplete);
        Assert.Equal(patchType, patch.ContentType);
        Assert.Equal(size, patch.SentBytes);
        Assert.Equal(201, patch.Status); // interop 5 and 6: every success is 201
        Assert.Equal(size, patch.ResponseOffset);
        Assert.Equal("?1", patch.ResponseComplete);

        var status = await fixture.AssertStoredAsync(result.UploadId, file);
        Assert.Equal("ietf", status.GetProperty("protocol").GetString());
        Assert.Equal(name, status.GetProperty("fileName").GetString());
        Assert.StartsWith("/rufh/", new Uri(result.Url!).AbsolutePath, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ietf-draft-03")]
    [InlineData("ietf-draft-05")]
    public async Task Upload_aborted_half_way_is_resumed_from_its_stored_URL_sending_only_the_rest(string protocol)
    {
        long size = 16 * MiB;
        const long chunkSize = 5 * MiB; // no chunk ends at the half: the abort cuts a PATCH
        string file = fixture.CreateFile("ietf-abort.bin", size);
        var arguments = new
        {
            endpoint = fixture.RufhEndpoint,
            file,
            name = "ietf-abort.bin",
            chunkSize,
            protocol,
            buffer = true,
            urlStorage = Path.Combine(fixture.WorkDirectory, Guid.NewGuid().ToString("N") + ".json"),
        };

        var first = await NodeScenario.RunAsync("abort-half.mjs", arguments, output);
        Assert.Equal("aborted", first.Outcome);
        long sentBefore = first.Patches.Sum(p => p.SentBytes);
        Assert.InRange(sentBefore, size / 2, (size / 2) + (256 * 1024));
        Assert.Contains(first.Patches, p => p.Status is null); // the PATCH in flight was cut by abort()
        Assert.All(first.Patches.Where(p => p.Status is not null), p => Assert.Equal("?0", p.ResponseComplete));
        var before = await fixture.StatusAsync(first.UploadId);
        Assert.Equal("receiving", before!.Value.GetProperty("state").GetString());

        var second = await NodeScenario.RunAsync("resume-stored.mjs", arguments, output);

        Assert.Equal("success", second.Outcome);
        Assert.Equal(first.Url, second.ResumedUrl);
        Assert.Equal(first.Url, second.Url);
        Assert.DoesNotContain(second.Requests, r => r.Method == "POST"); // resumed, not created anew
        var head = second.Requests[0];
        Assert.Equal("HEAD", head.Method);
        Assert.Equal("?0", head.ResponseComplete);
        long offset = head.ResponseOffset!.Value;
        output.WriteLine($"acknowledged before the abort {first.Acknowledged}, sent {sentBefore}, server offset after it {offset}");
        Assert.InRange(offset, first.Acknowledged, sentBefore); // everything acknowledged is kept; nothing invented
        Assert.Equal(offset, second.Patches.First().UploadOffset);
        Assert.All(second.Patches, p => Assert.Equal(201, p.Status));
        Assert.Equal("?1", second.Patches.Last().UploadComplete);
        Assert.All(second.Patches.SkipLast(1), p => Assert.Equal("?0", p.UploadComplete));
        Assert.Equal(size - offset, second.Patches.Sum(p => p.SentBytes)); // only the rest was sent
        await fixture.AssertStoredAsync(second.UploadId, file);
    }

    [Theory]
    [InlineData("ietf-draft-03")]
    [InlineData("ietf-draft-05")]
    public async Task Connection_cut_mid_PATCH_resumes_from_the_offset_the_server_reports(string protocol)
    {
        long size = 24 * MiB;
        string file = fixture.CreateFile("ietf-cut.bin", size);
        await using var proxy = new CuttingProxy(fixture.Server.BaseUri, cutAfter: 10 * MiB);
        proxy.Start();

        var result = await NodeScenario.RunAsync("whole-file.mjs", new { endpoint = new Uri(proxy.BaseUri, "/rufh/"), file, name = "ietf-cut.bin", protocol, buffer = true }, output);

        Assert.True(proxy.Cut.IsCompleted, "the proxy never cut the connection");
        long forwarded = await proxy.Cut;
        Assert.Equal("success", result.Outcome);
        var cut = Assert.Single(result.Requests, r => r.Error is not null);
        Assert.Equal("PATCH", cut.Method);
        Assert.Equal(0, cut.UploadOffset);
        Assert.Equal("?1", cut.UploadComplete);
        var after = result.Requests.SkipWhile(r => r != cut).Skip(1).ToList();
        var head = after.First();
        Assert.Equal("HEAD", head.Method); // tus-js-client's retry asks the server for the offset ...
        Assert.Equal("?0", head.ResponseComplete); // ... of an upload a broken ?1 request did not complete
        long offset = head.ResponseOffset!.Value;
        output.WriteLine($"bytes through the cut connection {forwarded}, offset the server reported {offset}");
        Assert.InRange(offset, 1, forwarded); // the server kept the durable prefix, never more than arrived
        var resume = after.Last();
        Assert.Equal("PATCH", resume.Method);
        Assert.Equal(201, resume.Status);
        Assert.Equal(offset, resume.UploadOffset);
        Assert.Equal("?1", resume.UploadComplete);
        Assert.Equal(size - offset, resume.SentBytes);
        await fixture.AssertStoredAsync(result.UploadId, file);
    }
}
