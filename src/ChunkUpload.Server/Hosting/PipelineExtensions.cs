using ChunkUpload.Server.Http;

namespace ChunkUpload.Server.Hosting;

public static class PipelineExtensions
{
    public static WebApplication UseChunkUploadErrorHandling(this WebApplication app)
    {
        app.UseMiddleware<ErrorHandlingMiddleware>();
        // Bare statuses from routing (no such path, wrong method) become problem+json with a code too.
        app.UseStatusCodePages(context =>
        {
            var error = HttpErrors.ForStatus(context.HttpContext.Response.StatusCode);
            Diagnostics.UploadMetrics.Rejected(context.HttpContext, error);
            return Problems.From(error, $"{context.HttpContext.Request.Method} {context.HttpContext.Request.Path} is not part of this server's API"
                + (HostingExtensions.SwaggerEnabled(app.Configuration) ? "; see /swagger." : ".")).ExecuteAsync(context.HttpContext);
        });
        return app;
    }
}
