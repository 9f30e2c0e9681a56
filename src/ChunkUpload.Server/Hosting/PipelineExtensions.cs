using ChunkUpload.Server.Http;

namespace ChunkUpload.Server.Hosting;

public static class PipelineExtensions
{
    public static WebApplication UseChunkUploadErrorHandling(this WebApplication app)
    {
        app.UseMiddleware<ErrorHandlingMiddleware>();
        app.UseStatusCodePages(); // bare 404/405 from routing become problem+json too
        return app;
    }
}
