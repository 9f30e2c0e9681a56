using System.Security.Cryptography;

namespace ChunkUpload.Testing;

/// <summary>Random source files for the browser and script tests (linked into both projects) and their hashes.</summary>
internal static class TestFiles
{
    /// <summary>Writes <paramref name="size"/> random bytes to a file named <paramref name="name"/> in a new folder under <paramref name="workDirectory"/>.</summary>
    public static string Create(string workDirectory, string name, int size)
    {
        var directory = Path.Combine(workDirectory, "in-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, name);
        var bytes = new byte[size];
        RandomNumberGenerator.Fill(bytes);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
