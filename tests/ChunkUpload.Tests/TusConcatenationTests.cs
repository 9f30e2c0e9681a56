using System.Net;
using System.Text.Json;
using ChunkUpload.Server.Services;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChunkUpload.Tests;

/// <summary>
/// tus concatenation (tus-js-client's parallelUploads): partial uploads joined by a final upload, in order, with the
/// partials finished first or still in progress (concatenation-unfinished); the webhook announces the final once.
/// </summary>
public sealed class TusConcatenationTests : IDisposable
{
    private static readonly string[] ConcatenationCodes = ["invalid_concatenation", "invalid_parameter"];
    private readonly TempDirectory _dir = new();
    private readonly WebhookTests.Receiver _webhook = new(failFirst: 0);
    private readonly ChunkUploadApplication _app;
    private readonly TusClient _tus;
    private readonly UploadClient _uploads;

    public TusConcatenationTests()
    {
        _app = new ChunkUploadApplication(
            _dir.StorageRoot,
            new Dictionary<string, string?> { ["Webhook:Url"] = "http://app.test/uploads/completed", ["Webhook:InitialRetryDelay"] = "00:00:00.010" },
            services => services.AddHttpClient<WebhookService>().ConfigurePrimaryHttpMessageHandler(() => _webhook));
        _tus = TusClient.Of(_app);
        _uploads = new UploadClient(_tus.Http);
    }

    public void Dispose()
    {
        _app.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task Final_Upload_Is_Its_Finished_Parts_In_Order_And_Completes_Once()
    {
        byte[][] parts = [UploadClient.RandomBytes(3000, 1), UploadClient.RandomBytes(1, 2), UploadClient.RandomBytes(2500, 3)];
        var locations = new List<string>();
        foreach (var part in parts)
        {
            string location = await _tus.CreateUploadAsync(part.Length, concat: "partial");
            using (var head = await _tus.HeadAsync(location))
                Assert.Equal("partial", TusClient.Header(head, "Upload-Concat"));
            using var patch = await _tus.PatchAsync(location, 0, part);
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
            locations.Add(location);
        }

        // The parts complete, but a partial upload is not a file of its own: no announcement yet.
        foreach (var location in locations)
            await _uploads.WaitForCompleteAsync(TusClient.IdOf(location));

        // tus-js-client names the parts with absolute URLs.
        string concat = "final;" + string.Join(' ', locations.Select(l => "http://localhost" + l));
        string final;
        using (var created = await _tus.CreateAsync(null, TusClient.Metadata(("filename", "joined.bin")), concat: concat))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            final = created.Headers.Location!.OriginalString;
        }

        byte[] expected = [.. parts.SelectMany(p => p)];
        var status = await _uploads.WaitForCompleteAsync(TusClient.IdOf(final));
        Assert.Equal(UploadClient.Sha256Hex(expected), status.GetProperty("sha256").GetString());
        Assert.Equal("joined.bin", status.GetProperty("fileName").GetString());
        Assert.Equal(expected, await _tus.Http.GetByteArrayAsync("/files/" + TusClient.IdOf(final)));

        using (var head = await _tus.HeadAsync(final))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal("final;" + string.Join(' ', locations), TusClient.Header(head, "Upload-Concat"));
            Assert.Equal(expected.Length, TusClient.OffsetOf(head));
            Assert.Equal(expected.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), TusClient.Header(head, "Upload-Length"));
        }

        using (var patch = await _tus.PatchAsync(final, expected.Length, [1]))
        {
            Assert.Equal(HttpStatusCode.Forbidden, patch.StatusCode);
            await ResumableContractTests.AssertProblemAsync(patch, "upload_not_writable");
        }

        // The parts are removed once the final is complete; the webhook announces the final, once.
        await WaitForRemovalAsync(locations);

        var delivery = await _webhook.WaitForAsync(1);
        var body = JsonDocument.Parse(delivery.Body).RootElement;
        Assert.Equal(TusClient.IdOf(final), body.GetProperty("identifier").GetString());
        Assert.Equal(expected.Length, body.GetProperty("size").GetInt64());
        await WaitForEmptyOutboxAsync();
        Assert.Single(_webhook.Deliveries);
    }

    [Fact]
    public async Task Final_Created_Before_Its_Parts_Finish_Completes_When_They_Do()
    {
        byte[] a = UploadClient.RandomBytes(4000, 4), b = UploadClient.RandomBytes(3000, 5);
        string partA = await _tus.CreateUploadAsync(a.Length, concat: "partial");
        string partB = await _tus.CreateUploadAsync(null, defer: true, concat: "partial");
        using (var patch = await _tus.PatchAsync(partA, 0, a[..1000]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);

        string final = await _tus.CreateUploadAsync(null, concat: $"final;{partA} {partB}");
        using (var head = await _tus.HeadAsync(final))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal($"final;{partA} {partB}", TusClient.Header(head, "Upload-Concat"));
            Assert.Null(TusClient.Header(head, "Upload-Length")); // not known while a part's length is not
            Assert.Null(TusClient.Header(head, "Upload-Offset")); // not reported before the concatenation finished
        }

        using (var patch = await _tus.PatchAsync(final, 0, [1]))
            Assert.Equal(HttpStatusCode.Forbidden, patch.StatusCode);
        Assert.Equal("receiving", (await _uploads.StatusAsync(TusClient.IdOf(final))).GetProperty("state").GetString());

        using (var patch = await _tus.PatchAsync(partB, 0, b, [("Upload-Length", "3000")]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        using (var patch = await _tus.PatchAsync(partA, 1000, a[1000..]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);

        byte[] expected = [.. a, .. b];
        var status = await _uploads.WaitForCompleteAsync(TusClient.IdOf(final));
        Assert.Equal(UploadClient.Sha256Hex(expected), status.GetProperty("sha256").GetString());
        Assert.Equal(expected, await _tus.Http.GetByteArrayAsync(final));
        await _webhook.WaitForAsync(1);
        await WaitForEmptyOutboxAsync();
        Assert.Single(_webhook.Deliveries);
        await WaitForRemovalAsync([partA, partB]);
    }

    [Fact]
    public async Task Final_Naming_Unusable_Parts_Is_400_And_Creates_Nothing()
    {
        string partial = await _tus.CreateUploadAsync(10, concat: "partial");
        string plain = await _tus.CreateUploadAsync(10);
        string[] refused =
        [
            "final;/tus/0123456789abcdef0123456789abcdef",           // unknown
            $"final;{partial} {partial}",                              // named twice
            $"final;{plain}",                                          // not a partial upload
            $"final;http://evil.example{partial}",                    // another host
            "final;/files/" + TusClient.IdOf(partial),                // another path of this server
            $"final;/tus/../tus/{TusClient.IdOf(partial)}",          // dot segments
            "final;../" + TusClient.IdOf(partial),
            $"final;{partial}/extra",
            "final;",
            "final; ",
            "final",
            "partial;" + partial,
            "something",
        ];
        int before = Directory.EnumerateDirectories(Path.Combine(_dir.StorageRoot, "sessions")).Count();
        foreach (string concat in refused)
        {
            using var response = await _tus.CreateAsync(null, concat: concat);
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{concat}: {(int)response.StatusCode}");
            var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            Assert.Contains(problem.GetProperty("code").GetString(), ConcatenationCodes);
        }

        using (var withLength = await _tus.CreateAsync(10, concat: $"final;{partial}"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, withLength.StatusCode);
            await ResumableContractTests.AssertProblemAsync(withLength, "invalid_parameter");
        }

        Assert.Equal(before, Directory.EnumerateDirectories(Path.Combine(_dir.StorageRoot, "sessions")).Count());

        // None of the refusals claimed the partial upload: a valid final may still use it.
        using var valid = await _tus.CreateAsync(null, concat: "final;" + partial);
        Assert.Equal(HttpStatusCode.Created, valid.StatusCode);
    }

    [Fact]
    public async Task A_Partial_Upload_Belongs_To_One_Final_Only()
    {
        string partial = await _tus.CreateUploadAsync(10, concat: "partial");
        string final = await _tus.CreateUploadAsync(null, concat: "final;" + partial);
        using var second = await _tus.CreateAsync(null, concat: "final;" + partial);
        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
        await ResumableContractTests.AssertProblemAsync(second, "part_in_use");
        using (var patch = await _tus.PatchAsync(partial, 0, new byte[10]))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        await _uploads.WaitForCompleteAsync(TusClient.IdOf(final));
    }

    // Parts are removed right after the final completes (not before it reads as complete).
    private async Task WaitForRemovalAsync(IEnumerable<string> locations)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        foreach (var location in locations)
        {
            while (true)
            {
                using var head = await _tus.HeadAsync(location);
                if (head.StatusCode == HttpStatusCode.NotFound)
                    break;
                Assert.Equal(HttpStatusCode.OK, head.StatusCode);
                Assert.True(DateTime.UtcNow < deadline, $"The part {location} was not removed.");
                await Task.Delay(10);
            }
        }

        // Their data went with them: the final's file is the only finished file.
        Assert.Single(Directory.EnumerateFiles(Path.Combine(_dir.StorageRoot, "completed")));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_dir.StorageRoot, "parts")));
    }

    private async Task WaitForEmptyOutboxAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Directory.EnumerateFiles(Path.Combine(_dir.StorageRoot, "outbox"), "*.json").Any())
        {
            Assert.True(DateTime.UtcNow < deadline, "The outbox was not emptied.");
            await Task.Delay(10);
        }
    }
}
