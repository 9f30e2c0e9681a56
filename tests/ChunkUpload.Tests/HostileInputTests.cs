using System.Net;
using ChunkUpload.Tests.Infrastructure;

namespace ChunkUpload.Tests;

/// <summary>Identifiers, names and numbers are hostile: refused with a clear problem, or kept as data, never used as paths.</summary>
public sealed class HostileInputTests : ServerTest
{
    public static TheoryData<string> PathLikeIdentifiers => new()
    {
        "../../../../tmp/chunkupload-escape",
        "/etc/passwd",
        "..",
        ".",
        "C:\\Windows\\System32\\evil",
        "..\\..\\evil",
        "résumé-東京-🎬",
        "a/b/c",
    };

    [Theory]
    [MemberData(nameof(PathLikeIdentifiers))]
    public async Task Path_Like_Identifiers_And_Names_Stay_Inside_The_Root(string hostile)
    {
        var file = TestFile.Random(hostile, 2500, 1000, name: hostile) with { };
        foreach (var kind in new[] { ClientKind.ResumableMultipart, ClientKind.FlowOctet })
        {
            using var test = await Client.TestChunkAsync(file, 1, kind);
            Assert.True(test.StatusCode is HttpStatusCode.NoContent or HttpStatusCode.OK);
        }

        await Client.UploadAllAsync(file, ClientKind.FlowMultipart);
        using var test2 = await Client.TestChunkAsync(file, 2);
        Assert.Equal(HttpStatusCode.OK, test2.StatusCode);
        AssertNothingOutsideTheRoot();
        Assert.False(File.Exists("/tmp/chunkupload-escape"));
    }

    public static TheoryData<string, string, string> RefusedValues => new()
    {
        { "Identifier", "a\0b", "invalid_identifier" },
        { "Identifier", new string('x', 10_000), "invalid_identifier" },
        { "Identifier", "tab\there", "invalid_identifier" },
        { "Filename", "evil\0.bin", "invalid_file_name" },
        { "Filename", new string('n', 10_000), "invalid_file_name" },
        { "Filename", "line\nbreak.bin", "invalid_file_name" },
        { "RelativePath", "dir/\0/x", "invalid_file_name" },
        { "ChunkNumber", "-1", "invalid_parameter" },
        { "ChunkNumber", "0", "chunk_out_of_range" },
        { "ChunkNumber", "99", "chunk_out_of_range" },
        { "ChunkNumber", "abc", "invalid_parameter" },
        { "ChunkNumber", "1e3", "invalid_parameter" },
        { "ChunkNumber", "99999999999", "invalid_parameter" },
        { "TotalSize", "-5", "invalid_parameter" },
        { "TotalSize", "99999999999999999999999", "invalid_parameter" },
        { "TotalSize", "0x10", "invalid_parameter" },
        { "ChunkSize", "0", "invalid_parameter" },
        { "ChunkSize", " 1000", "invalid_parameter" },
        { "TotalChunks", "7", "chunk_count_mismatch" },
        { "CurrentChunkSize", "999", "chunk_size_mismatch" },
    };

    [Theory]
    [MemberData(nameof(RefusedValues))]
    public async Task Hostile_Values_Are_Refused_With_A_Clear_Problem(string field, string value, string code)
    {
        var file = TestFile.Random("hostile-target", 2500, 1000);
        foreach (var kind in new[] { ClientKind.ResumableMultipart, ClientKind.FlowMultipart })
        {
            var parameters = UploadClient.Parameters(kind, file, 1);
            parameters[(kind == ClientKind.FlowMultipart ? "flow" : "resumable") + field] = value;
            using var post = await Client.PostAsync(parameters, file.Slice(1), kind);
            Assert.Equal(HttpStatusCode.BadRequest, post.StatusCode);
            await ResumableContractTests.AssertProblemAsync(post, code);
        }

        var query = UploadClient.Parameters(ClientKind.FlowOctet, file, 1);
        query["flow" + field] = value;
        if (value.Length < 5000)
        {
            using var test = await Client.Http.GetAsync("/upload?" + UploadClient.Query(query));
            Assert.Equal(HttpStatusCode.BadRequest, test.StatusCode);
        }

        AssertNothingOutsideTheRoot();
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(Dir.StorageRoot, "sessions")));
    }

    [Fact]
    public async Task Conflicting_Duplicate_Parameters_Are_Refused()
    {
        var file = TestFile.Random("dup-param", 2500, 1000);
        var parameters = UploadClient.Parameters(ClientKind.ResumableMultipart, file, 1);
        string url = "/upload?" + UploadClient.Query(parameters) + "&resumableChunkNumber=2";
        var form = new MultipartFormDataContent();
        foreach (var (name, value) in parameters)
            form.Add(new StringContent(value), name);
        form.Add(new ByteArrayContent(file.Slice(1).ToArray()), "file", "x.bin");
        using var response = await Client.Http.PostAsync(url, form);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await ResumableContractTests.AssertProblemAsync(response, "conflicting_parameter");
    }

    [Fact]
    public async Task Status_Of_A_Hostile_Identifier_Is_A_Problem_Not_A_Crash()
    {
        using var huge = await Client.Http.GetAsync("/uploads/" + new string('x', 5000));
        Assert.Equal(HttpStatusCode.BadRequest, huge.StatusCode);
        await ResumableContractTests.AssertProblemAsync(huge, "invalid_identifier");
        using var control = await Client.Http.DeleteAsync("/uploads/a%01b");
        Assert.Equal(HttpStatusCode.BadRequest, control.StatusCode);
        using var traversal = await Client.Http.GetAsync("/files/..%2F..%2Fetc%2Fpasswd");
        Assert.Equal(HttpStatusCode.NotFound, traversal.StatusCode);
        AssertNothingOutsideTheRoot();
    }

    private void AssertNothingOutsideTheRoot() =>
        Assert.Equal([Dir.StorageRoot], Directory.EnumerateFileSystemEntries(Dir.Path));
}
