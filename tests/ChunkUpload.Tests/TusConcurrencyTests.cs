using System.Net;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// A PATCH whose connection hangs or drops: what the server received is kept and reported, and the client's next
/// request (HEAD, then PATCH from the offset it reports, as tus-js-client resumes) is never blocked by it.
/// </summary>
public sealed class TusConcurrencyTests : ServerTest
{
    private const int Piece = 8 * 1024 * 1024;
    private const int TransportSlack = 96 * 1024;

    public TusConcurrencyTests()
    {
        Tus = TusClient.Of(App);
    }

    private TusClient Tus { get; }

    [Theory]
    [InlineData(200 * 1024)]          // less than a piece (and than the engine's read buffer): only a tail
    [InlineData(Piece + 300 * 1024)]  // a whole piece and a tail
    public async Task A_Second_Patch_Takes_Over_From_A_Stalled_One_At_The_Offset_Head_Reports(int sentBeforeStall)
    {
        byte[] data = UploadClient.RandomBytes(sentBeforeStall + 100_000, 31);
        string location = await Tus.CreateUploadAsync(data.Length);
        using var stalled = new StallingContent(data[..sentBeforeStall], data[sentBeforeStall..]);
        stalled.Headers.ContentType = new(TusClient.OffsetOctetStream);
        var first = Tus.PatchAsync(location, "0", stalled);
        await stalled.Stalled.WaitAsync(TimeSpan.FromSeconds(30));

        // tus-js-client resuming: HEAD, then PATCH from the offset it reported.
        long offset = await Step(Tus.OffsetAsync(location), "HEAD");
        using (var firstResponse = await Step(first, "the stalled PATCH"))
        {
            Assert.Equal(HttpStatusCode.Conflict, firstResponse.StatusCode);
            await ResumableContractTests.AssertProblemAsync(firstResponse, "request_superseded");
            Assert.Equal(offset, TusClient.OffsetOf(firstResponse));
        }

        // The transport held back at most its buffer (64 KiB in the test server's pipe): the rest was kept.
        Assert.InRange(offset, sentBeforeStall - TransportSlack, sentBeforeStall);
        if (sentBeforeStall > Piece)
            Assert.True(offset >= Piece, $"Only {offset} bytes kept of {sentBeforeStall}.");

        using (var second = await Tus.PatchAsync(location, offset, data[(int)offset..]))
        {
            Assert.Equal(HttpStatusCode.NoContent, second.StatusCode);
            Assert.Equal(data.Length, TusClient.OffsetOf(second));
        }

        var status = await Client.WaitForCompleteAsync(TusClient.IdOf(location));
        Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task A_Second_Patch_Without_A_Head_Ends_The_Stalled_One_And_Learns_The_Offset_From_409()
    {
        byte[] data = UploadClient.RandomBytes(400 * 1024, 32);
        string location = await Tus.CreateUploadAsync(data.Length);
        using var stalled = new StallingContent(data[..(300 * 1024)]);
        stalled.Headers.ContentType = new(TusClient.OffsetOctetStream);
        var first = Tus.PatchAsync(location, "0", stalled);
        await stalled.Stalled.WaitAsync(TimeSpan.FromSeconds(30));

        using var second = await Tus.PatchAsync(location, 0, data);
        long kept = TusClient.OffsetOf(second);
        if (second.StatusCode == HttpStatusCode.Conflict)
        {
            await ResumableContractTests.AssertProblemAsync(second, "offset_mismatch");
            Assert.True(kept > 0);
            using var resumed = await Tus.PatchAsync(location, kept, data[(int)kept..]);
            Assert.Equal(HttpStatusCode.NoContent, resumed.StatusCode);
        }
        else
        {
            Assert.Equal(HttpStatusCode.NoContent, second.StatusCode); // the first had kept nothing
        }

        using (var firstResponse = await first.WaitAsync(TimeSpan.FromSeconds(30)))
            Assert.Equal(HttpStatusCode.Conflict, firstResponse.StatusCode);
        var status = await Client.WaitForCompleteAsync(TusClient.IdOf(location));
        Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());
    }

    [Theory]
    [InlineData(200 * 1024)]
    [InlineData(Piece + 300 * 1024)]
    public async Task A_Patch_Whose_Client_Vanishes_Keeps_What_Arrived_And_Never_Blocks_The_Next(int sentBeforeStall)
    {
        byte[] data = UploadClient.RandomBytes(sentBeforeStall + 100_000, 33);
        string location = await Tus.CreateUploadAsync(data.Length);
        using var stalled = new StallingContent(data[..sentBeforeStall]);
        stalled.Headers.ContentType = new(TusClient.OffsetOctetStream);
        using var vanish = new CancellationTokenSource();
        var first = Tus.PatchAsync(location, "0", stalled, cancellationToken: vanish.Token);
        await stalled.Stalled.WaitAsync(TimeSpan.FromSeconds(30));
        await vanish.CancelAsync();
        try
        {
            // The client is gone: what it would have been told does not matter (the test server still hands the
            // cancelled client whatever the pipeline ended with), only that the request ends.
            (await Step(first, "the cancelled PATCH")).Dispose();
        }
        catch (OperationCanceledException)
        {
        }

        long offset = await Step(Tus.OffsetAsync(location), "HEAD");
        Assert.InRange(offset, sentBeforeStall - TransportSlack, sentBeforeStall);
        if (sentBeforeStall > Piece)
            Assert.True(offset >= Piece, $"Only {offset} bytes kept of {sentBeforeStall}.");

        using (var response = await Step(Tus.PatchAsync(location, offset, data[(int)offset..]), "the next PATCH", seconds: 5))
            Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        var status = await Client.WaitForCompleteAsync(TusClient.IdOf(location));
        Assert.Equal(UploadClient.Sha256Hex(data), status.GetProperty("sha256").GetString());
    }

    // A step that must end in time; when it does not, the server's last log events say where it stands.
    private async Task<T> Step<T>(Task<T> task, string what, int seconds = 30)
    {
        try
        {
            return await task.WaitAsync(TimeSpan.FromSeconds(seconds));
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{what} did not end within {seconds} s. Server log:\n" + string.Join('\n', App.Logs.Events.TakeLast(40).Select(e => $"{e.Id}: {e.Message}")));
            throw;
        }
    }

    [Fact]
    public async Task Deleting_An_Upload_With_A_Stalled_Patch_Removes_It()
    {
        byte[] data = UploadClient.RandomBytes(300 * 1024, 34);
        string location = await Tus.CreateUploadAsync(data.Length * 2);
        using var stalled = new StallingContent(data);
        stalled.Headers.ContentType = new(TusClient.OffsetOctetStream);
        var first = Tus.PatchAsync(location, "0", stalled);
        await stalled.Stalled.WaitAsync(TimeSpan.FromSeconds(30));

        using (var delete = await Tus.DeleteAsync(location).WaitAsync(TimeSpan.FromSeconds(10)))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using (var firstResponse = await first.WaitAsync(TimeSpan.FromSeconds(30)))
            Assert.True(firstResponse.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.NotFound, $"{(int)firstResponse.StatusCode}");
        using (var head = await Tus.HeadAsync(location))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Dir.StorageRoot, "parts")));
    }
}
