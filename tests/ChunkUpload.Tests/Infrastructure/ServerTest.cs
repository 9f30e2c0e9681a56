namespace ChunkUpload.Tests.Infrastructure;

/// <summary>A test class with its own storage root and an in-process server over it, disposed after each test.</summary>
public abstract class ServerTest : IDisposable
{
    protected ServerTest()
    {
        Dir = new TempDirectory();
        App = new ChunkUploadApplication(Dir.StorageRoot);
        Client = new UploadClient(App.CreateClient());
    }

    protected TempDirectory Dir { get; }

    protected ChunkUploadApplication App { get; }

    protected UploadClient Client { get; }

    public void Dispose()
    {
        App.Dispose();
        Dir.Dispose();
        GC.SuppressFinalize(this);
    }
}
