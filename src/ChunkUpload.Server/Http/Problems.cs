using ChunkUpload.Core.Errors;

namespace ChunkUpload.Server.Http;

/// <summary>Turns catalog errors into application/problem+json with the stable <c>code</c> and, when transient, Retry-After.</summary>
public static class Problems
{
    public static IResult From(UploadException exception) => From(exception.Error, exception.Message, exception.RetryAfterSeconds);

    /// <summary>A refusal of this request in its endpoint's own error shape (<see cref="IErrorResponder"/>), else problem+json.</summary>
    public static IResult For(HttpContext context, UploadError error, string detail, int? retryAfterSeconds = null) =>
        context.GetEndpoint()?.Metadata.GetMetadata<IErrorResponder>()?.Reject(context, error, detail, retryAfterSeconds)
        ?? From(error, detail, retryAfterSeconds);

    public static IResult From(UploadError error, string detail, int? retryAfterSeconds = null)
    {
        var problem = TypedResults.Problem(
            detail: detail,
            statusCode: error.Status,
            title: error.Title,
            type: "urn:chunkupload:error:" + error.Code,
            extensions: new Dictionary<string, object?> { ["code"] = error.Code });
        if (!error.IsTransient)
            return problem;
        return new WithRetryAfter(problem, retryAfterSeconds ?? 5);
    }

    private sealed class WithRetryAfter(IResult inner, int seconds) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return inner.ExecuteAsync(httpContext);
        }
    }
}
