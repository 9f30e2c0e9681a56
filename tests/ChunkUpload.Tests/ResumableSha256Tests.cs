using System.Security.Cryptography;
using ChunkUpload.Core.Integrity;

namespace ChunkUpload.Tests;

/// <summary>
/// The SHA-256 whose state travels between nodes: whatever the cuts, exporting and importing between every two of them
/// gives .NET's own digest; the state of a prefix does not depend on how it was cut (so any node's checkpoint at an
/// offset is THE checkpoint at that offset); a damaged state is refused, never hashed on.
/// </summary>
public sealed class ResumableSha256Tests
{
    [Fact]
    public void Is_Available_On_Linux_With_Libcrypto()
    {
        // Every machine that runs the server here has it: the shared hash chain depends on it, so its absence must show.
        Assert.True(ResumableSha256.IsAvailable);
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 1)]
    [InlineData(3, 63)]
    [InlineData(4, 64)]
    [InlineData(5, 65)]
    [InlineData(6, 1000)]
    [InlineData(7, 3 * 1024 * 1024 + 17)]
    public void Export_And_Import_Between_Random_Cuts_Give_The_Same_Digest_As_SHA256(int seed, int length)
    {
        var random = new Random(seed);
        var data = new byte[length];
        random.NextBytes(data);
        var cuts = Enumerable.Range(0, random.Next(1, 40)).Select(_ => random.Next(0, length + 1)).Append(length).Order().ToList();

        var hash = ResumableSha256.Create();
        int from = 0;
        foreach (int cut in cuts)
        {
            hash.Append(data.AsSpan(from, cut - from));
            hash = ResumableSha256.Import(hash.Export()); // as if another node went on from here
            from = cut;
        }

        Assert.Equal(SHA256.HashData(data), hash.Finish());
    }

    [Fact]
    public void The_State_Of_A_Prefix_Does_Not_Depend_On_How_It_Was_Cut()
    {
        var data = RandomNumberGenerator.GetBytes(10_000);
        var whole = ResumableSha256.Create();
        whole.Append(data);
        var pieces = ResumableSha256.Create();
        foreach (var chunk in data.Chunk(97))
            pieces.Append(chunk);

        Assert.Equal(whole.Export(), pieces.Export());
    }

    [Fact]
    public void Exporting_Does_Not_Change_The_Hash()
    {
        var data = RandomNumberGenerator.GetBytes(5000);
        var hash = ResumableSha256.Create();
        hash.Append(data.AsSpan(0, 1234));
        _ = hash.Export();
        hash.Append(data.AsSpan(1234));

        Assert.Equal(SHA256.HashData(data), hash.Finish());
    }

    [Fact]
    public void The_Current_Hash_Leaves_The_Hash_Going_On()
    {
        var data = RandomNumberGenerator.GetBytes(300);
        var hash = ResumableSha256.Create();
        hash.Append(data.AsSpan(0, 100));
        Assert.Equal(SHA256.HashData(data.AsSpan(0, 100)), hash.GetCurrentHash());
        hash.Append(data.AsSpan(100));

        Assert.Equal(SHA256.HashData(data), hash.Finish());
    }

    [Fact]
    public void A_Damaged_Or_Foreign_State_Is_Refused()
    {
        var hash = ResumableSha256.Create();
        hash.Append(RandomNumberGenerator.GetBytes(100));
        var state = hash.Export();

        Assert.Throws<FormatException>(() => ResumableSha256.Import(state.AsSpan(1)));
        Assert.Throws<FormatException>(() => ResumableSha256.Import([.. state, 0]));
        var wrongFormat = state.ToArray();
        wrongFormat[0] ^= 0xff;
        Assert.Throws<FormatException>(() => ResumableSha256.Import(wrongFormat));
        var wrongVersion = state.ToArray();
        wrongVersion[1]++;
        Assert.Throws<FormatException>(() => ResumableSha256.Import(wrongVersion));
        var wrongFill = state.ToArray();
        wrongFill[2 + 104]++; // bytes waiting in the block buffer no longer match the length hashed
        Assert.Throws<FormatException>(() => ResumableSha256.Import(wrongFill));
    }

    [Fact]
    public void A_Finished_Hash_Cannot_Be_Used_Again()
    {
        var hash = ResumableSha256.Create();
        hash.Append([1, 2, 3]);
        Assert.Equal(SHA256.HashData([1, 2, 3]), hash.Finish());

        Assert.Throws<ObjectDisposedException>(() => hash.Append([4]));
        Assert.Throws<ObjectDisposedException>(() => hash.Export());
        Assert.Throws<ObjectDisposedException>(() => hash.Finish());
    }
}
