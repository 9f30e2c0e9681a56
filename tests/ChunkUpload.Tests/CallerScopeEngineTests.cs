using ChunkUpload.Core.Engine;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Uploads;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>
/// The engine's side of scoped credentials, without HTTP: a caller limited to one upload names no other in any
/// operation, and expired credentials in their grace only go on with uploads created before they expired.
/// </summary>
public sealed class CallerScopeEngineTests : IDisposable
{
    private const string Protocol = EngineHarness.Protocol;
    private static readonly CancellationToken None = CancellationToken.None;
    private readonly TempDirectory _dir = new();
    private readonly EngineHarness _harness;

    public CallerScopeEngineTests() => _harness = new EngineHarness(_dir.StorageRoot);

    public void Dispose()
    {
        _harness.Dispose();
        _dir.Dispose();
    }

    private UploadEngine Engine => _harness.Engine;

    private static Caller Alice => new("alice", "user:alice");

    private static WriteOptions Chunk(long length) => new() { Protocol = Protocol, ExpectedLength = length };

    private static async Task AssertRefusedAsync(string code, Func<Task> operation) =>
        Assert.Equal(code, (await Assert.ThrowsAsync<UploadException>(operation)).Error.Code);

    [Fact]
    public async Task A_Caller_Scoped_To_One_Upload_Can_Name_No_Other_And_Creates_Server_Named_Uploads_Under_Its_Id()
    {
        var scoped = Alice with { OnlyUpload = "mine" };
        var other = TestFile.Random("theirs", 2000, 1000);
        await Engine.GetOrCreateAsync(Alice, EngineHarness.Spec(other), None);

        // tus and IETF creation name no id: the upload gets the one the credentials are for.
        var created = await Engine.CreateAsync(scoped, new UploadSpec { Protocol = Protocol, Length = 1000, FileName = "f.bin" }, None);
        Assert.Equal("mine", created.Id);
        await Engine.WriteAsync(scoped, "mine", 0, new MemoryStream(new byte[1000]), Chunk(1000), None);
        Assert.True((await Engine.WaitForCompletionAsync(scoped, "mine", TimeSpan.FromSeconds(30), None))!.IsComplete);

        const string Scope = "token_scope";
        await AssertRefusedAsync(Scope, () => Engine.CreateAsync(scoped, new UploadSpec { Protocol = Protocol, Length = 10, FileName = "g.bin" }, None));
        await AssertRefusedAsync(Scope, () => Engine.FindAsync(scoped, "theirs", None));
        await AssertRefusedAsync(Scope, () => Engine.FindSettledAsync(scoped, "theirs", None));
        await AssertRefusedAsync(Scope, () => Engine.WaitForCompletionAsync(scoped, "theirs", TimeSpan.Zero, None));
        await AssertRefusedAsync(Scope, () => Engine.GetOrCreateAsync(scoped, EngineHarness.Spec(other), None));
        await AssertRefusedAsync(Scope, () => Engine.GetOrCreateAsync(scoped, EngineHarness.Spec(TestFile.Random("new", 10, 10)), None));
        await AssertRefusedAsync(Scope, () => Engine.WriteAsync(scoped, "theirs", 0, new MemoryStream(other.Slice(1).ToArray()), Chunk(1000), None));
        await AssertRefusedAsync(Scope, () => Engine.DeclareLengthAsync(scoped, "theirs", 2000, None));
        await AssertRefusedAsync(Scope, () => Engine.DeleteAsync(scoped, "theirs", None));
        await AssertRefusedAsync(Scope, () => Engine.OpenCompletedAsync(scoped, "theirs", None));
        await AssertRefusedAsync(Scope, () => Engine.ListAsync(scoped, null, null, 10, None));
        await AssertRefusedAsync(Scope, () => Engine.ConcatenateAsync(scoped, new UploadSpec { Protocol = Protocol }, ["theirs"], None));
        Assert.Equal(Scope, Assert.Throws<UploadException>(() => Engine.Validate(EngineHarness.Spec(other), scoped)).Error.Code);

        // The other upload is untouched, and the scoped caller's own is whole.
        Assert.Equal(0, (await Engine.FindAsync(Alice, "theirs", None))!.StoredBytes);
        Assert.True(await Engine.DeleteAsync(scoped, "mine", None));
    }

    [Fact]
    public async Task Expired_Credentials_Only_Go_On_With_Uploads_Created_Before_They_Expired()
    {
        var before = await Engine.CreateAsync(Alice, new UploadSpec { Id = "before", Protocol = Protocol, Length = 2000, FileName = "a.bin" }, None);
        await Engine.WriteAsync(Alice, "before", 0, new MemoryStream(new byte[1000]), Chunk(1000), None);
        var after = await Engine.CreateAsync(Alice, new UploadSpec { Id = "after", Protocol = Protocol, Length = 1000, FileName = "b.bin" }, None);
        Assert.True(before.Record.CreatedAt < after.Record.CreatedAt);
        var expired = Alice with { ExpiredAt = after.Record.CreatedAt };

        // The upload under way goes on to the end: status, the rest of its bytes, completion.
        Assert.Equal(1000, (await Engine.FindAsync(expired, "before", None))!.StoredBytes);
        Assert.Equal(1000, (await Engine.FindSettledAsync(expired, "before", None))!.StoredBytes);
        Assert.False((await Engine.GetOrCreateAsync(expired, new UploadSpec { Id = "before", Protocol = Protocol, Length = 2000, FileName = "a.bin" }, None)).Created);
        await Engine.WriteAsync(expired, "before", 1000, new MemoryStream(new byte[1000]), Chunk(1000), None);
        Assert.True((await Engine.WaitForCompletionAsync(expired, "before", TimeSpan.FromSeconds(30), None))!.IsComplete);
        Assert.True((await Engine.FindAsync(expired, "before", None))!.IsComplete);

        const string Expired = "unauthenticated";
        await AssertRefusedAsync(Expired, () => Engine.FindAsync(expired, "after", None));
        await AssertRefusedAsync(Expired, () => Engine.WriteAsync(expired, "after", 0, new MemoryStream(new byte[1000]), Chunk(1000), None));
        await AssertRefusedAsync(Expired, () => Engine.DeclareLengthAsync(expired, "after", 1000, None));
        await AssertRefusedAsync(Expired, () => Engine.FindAsync(expired, "unknown", None));
        await AssertRefusedAsync(Expired, () => Engine.GetOrCreateAsync(expired, new UploadSpec { Id = "new", Protocol = Protocol, Length = 10, FileName = "n.bin" }, None));
        await AssertRefusedAsync(Expired, () => Engine.CreateAsync(expired, new UploadSpec { Protocol = Protocol, Length = 10, FileName = "n.bin" }, None));
        await AssertRefusedAsync(Expired, () => Engine.DeleteAsync(expired, "before", None));
        await AssertRefusedAsync(Expired, () => Engine.OpenCompletedAsync(expired, "before", None));
        await AssertRefusedAsync(Expired, () => Engine.ListAsync(expired, null, null, 10, None));
        Assert.Null(await Engine.FindAsync(Alice, "new", None));
        Assert.NotNull(await Engine.OpenCompletedAsync(Alice, "before", None));
        Assert.Equal(0, (await Engine.FindAsync(Alice, "after", None))!.StoredBytes);
    }
}
