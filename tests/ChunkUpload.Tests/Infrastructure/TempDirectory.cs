namespace ChunkUpload.Tests.Infrastructure;

/// <summary>A fresh folder under the system temp folder, removed on dispose. The storage root goes one level below, so
/// tests can prove that nothing was written beside it.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "chunkupload-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string StorageRoot => System.IO.Path.Combine(Path, "root");

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
