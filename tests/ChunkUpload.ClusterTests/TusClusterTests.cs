using System.Globalization;
using System.Net;
using System.Text;
using ChunkUpload.Bench;
using ChunkUpload.ClusterTests.Infrastructure;
using ChunkUpload.FaultTests.Infrastructure;
using Microsoft.Win32.SafeHandles;
using Xunit.Abstractions;

namespace ChunkUpload.ClusterTests;

/// <summary>
/// tus 1.0 (POST /tus, PATCH, HEAD; ../shared/PROTOCOLS.md section 10) over three nodes: a sequential upload whose
/// PATCHes go to different nodes, one of them cut mid-body, resumes from the durable offset any node reports.
/// </summary>
public sealed class TusClusterTests(ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;
    private readonly Figures _figures = new(output);

    [Fact]
    public async Task Tus_Patches_Alternating_Between_Nodes_Resume_From_The_Durable_Offset_After_One_Is_Cut()
    {
        const long size = 40 * MiB;
        using var file = ClusterChecks.RandomFile(size);
        await using var cluster = await Cluster.StartAsync();
        var (node1, node2, node3) = (cluster.Nodes[0], cluster.Nodes[1], cluster.Nodes[2]);

        using var create = Tus(HttpMethod.Post, node1.Url("/tus"));
        create.Headers.Add("Upload-Length", size.ToString(CultureInfo.InvariantCulture));
        create.Headers.Add("Upload-Metadata", "filename " + Convert.ToBase64String(Encoding.UTF8.GetBytes("tus.bin")));
        using var created = await cluster.Http.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        string location = created.Headers.Location!.OriginalString;
        string id = location[(location.LastIndexOf('/') + 1)..];
        _figures.Line($"tus across nodes: {size / MiB} MiB, created on {node1.Name} as {id}");

        // PATCH 1 on node1: whole.
        long offset = await PatchAsync(cluster, node1, location, file.Handle, 0, 10 * MiB);
        Assert.Equal(10 * MiB, offset);
        _figures.Line($"  PATCH on {node1.Name}: 0..{offset} -> 204, Upload-Offset {offset}");

        // PATCH 2 on node2: announces the rest, cut after 10 MiB of body.
        long cutAfter = 10 * MiB;
        using (var cut = new CancellationTokenSource())
        {
            using var patch = Tus(HttpMethod.Patch, node2.Url(location));
            patch.Headers.Add("Upload-Offset", offset.ToString(CultureInfo.InvariantCulture));
            patch.Content = new CuttingContent(file.Handle, offset, size - offset, cutAfter, cut);
            patch.Content.Headers.ContentType = new("application/offset+octet-stream");
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cluster.Http.SendAsync(patch, cut.Token));
        }

        // The next HEAD, on another node, reports the durable offset: what every node reports from then on.
        long durable = await HeadAsync(cluster, node3, location);
        _figures.Line($"  PATCH on {node2.Name}: {offset}.. cut after {cutAfter} bytes of body; HEAD on {node3.Name}: Upload-Offset {durable} ({durable - offset} bytes of the cut PATCH kept)");
        Assert.InRange(durable, offset, offset + cutAfter);
        foreach (var node in cluster.Nodes)
            Assert.Equal(durable, await HeadAsync(cluster, node, location));

        // Resume from there, alternating nodes.
        offset = await PatchAsync(cluster, node3, location, file.Handle, durable, 12 * MiB);
        Assert.Equal(durable + (12 * MiB), offset);
        _figures.Line($"  PATCH on {node3.Name}: {durable}..{offset} -> 204");
        long end = await PatchAsync(cluster, node1, location, file.Handle, offset, size - offset);
        Assert.Equal(size, end);
        _figures.Line($"  PATCH on {node1.Name}: {offset}..{size} -> 204, Upload-Offset {end}");

        await ClusterChecks.AssertCompletedOnceAsync(cluster, id, size, file.Sha256, node2, _figures);
        _figures.Save("cluster-tus-figures.txt");
    }

    private static HttpRequestMessage Tus(HttpMethod method, Uri url)
    {
        var request = new HttpRequestMessage(method, url);
        request.Headers.Add("Tus-Resumable", "1.0.0");
        return request;
    }

    private static async Task<long> PatchAsync(Cluster cluster, ClusterNode node, string location, SafeFileHandle file, long offset, long length)
    {
        using var patch = Tus(HttpMethod.Patch, node.Url(location));
        patch.Headers.Add("Upload-Offset", offset.ToString(CultureInfo.InvariantCulture));
        patch.Content = new FileSliceContent(file, offset, length);
        patch.Content.Headers.ContentType = new("application/offset+octet-stream");
        using var response = await cluster.Http.SendAsync(patch);
        Assert.True(response.StatusCode == HttpStatusCode.NoContent,
            $"PATCH on {node.Name} at {offset}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}\n{cluster.LogTails()}");
        return long.Parse(response.Headers.GetValues("Upload-Offset").Single(), CultureInfo.InvariantCulture);
    }

    private static async Task<long> HeadAsync(Cluster cluster, ClusterNode node, string location)
    {
        using var head = Tus(HttpMethod.Head, node.Url(location));
        using var response = await cluster.Http.SendAsync(head);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return long.Parse(response.Headers.GetValues("Upload-Offset").Single(), CultureInfo.InvariantCulture);
    }

    /// <summary>A file range as a body of declared length that stops after <c>cutAfter</c> bytes and cancels its request (the connection is dropped).</summary>
    private sealed class CuttingContent(SafeFileHandle file, long offset, long length, long cutAfter, CancellationTokenSource cut) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            var buffer = new byte[256 * 1024];
            for (long done = 0; done < cutAfter;)
            {
                int want = (int)Math.Min(buffer.Length, cutAfter - done);
                int read = RandomAccess.Read(file, buffer.AsSpan(0, want), offset + done);
                await stream.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                done += read;
            }

            await stream.FlushAsync(cancellationToken);
            await cut.CancelAsync();
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        protected override bool TryComputeLength(out long computed)
        {
            computed = length;
            return true;
        }
    }
}
