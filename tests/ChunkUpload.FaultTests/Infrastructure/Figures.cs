using System.Text;
using Xunit.Abstractions;

namespace ChunkUpload.FaultTests.Infrastructure;

/// <summary>Collects a test's figures and writes them to the test output and to TestResults/{name} at the repository root.</summary>
public sealed class Figures(ITestOutputHelper output)
{
    private readonly StringBuilder _text = new();

    public void Line(string line)
    {
        lock (_text)
            _text.AppendLine(line);
        try
        {
            output.WriteLine(line);
        }
        catch (InvalidOperationException)
        {
            // the test has finished (a late line from a background task)
        }
    }

    public override string ToString()
    {
        lock (_text)
            return _text.ToString();
    }

    /// <summary>Writes the collected lines to TestResults/{fileName} under the folder holding ChunkUpload.sln.</summary>
    public string Save(string fileName)
    {
        string root = RepositoryRoot();
        string folder = Path.Combine(root, "TestResults");
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, fileName);
        File.WriteAllText(path, ToString());
        output.WriteLine($"(figures written to {path})");
        return path;
    }

    /// <summary>
    /// The repository root: recorded at build time (the build may put its output anywhere, e.g. --artifacts-path),
    /// else the nearest folder above the test assembly or the working directory that holds ChunkUpload.sln.
    /// </summary>
    public static string RepositoryRoot()
    {
        string? recorded = typeof(Figures).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .OfType<System.Reflection.AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "ChunkUploadRepositoryRoot")?.Value;
        if (recorded is not null && File.Exists(Path.Combine(recorded, "ChunkUpload.sln")))
            return recorded;
        foreach (string start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "ChunkUpload.sln")))
                    return dir.FullName;
            }
        }

        return Directory.GetCurrentDirectory();
    }
}
