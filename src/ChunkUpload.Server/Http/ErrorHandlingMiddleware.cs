using ChunkUpload.Core;
using ChunkUpload.Core.Errors;
using Microsoft.AspNetCore.Connections;

namespace ChunkUpload.Server.Http;

/// <summary>
/// One place where failures become answers. Catalog errors keep their status; a malformed or oversized request is
/// a 400; a client that went away gets nothing; a storage fault a retry can fix is a 503 (507 for a full disk),
/// never a 500 (resumable.js and flow.js abort the whole file on 500); only a bug is a 500. The body is problem+json
/// unless the endpoint carries an <see cref="IErrorResponder"/>.
/// </summary>
public sealed partial class ErrorHandlingMiddleware(RequestDelegate next, ILogger<ErrorHandlingMiddleware> logger)
{
    /// <summary>HttpContext.Items key under which protocol adapters leave the identifier for logging.</summary>
    public const string IdentifierItem = "chunkupload.identifier";

    /// <summary>The status a request log records for a client that went away before the answer (nginx's 499).</summary>
    public const int ClientClosedRequest = 499;

    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (Exception ex) when (context.RequestAborted.IsCancellationRequested || ex is ConnectionResetException)
        {
            LogClientGone(logger, context.Request.Method, context.Request.Path.Value, context.Items[IdentifierItem] as string);
            if (!context.Response.HasStarted)
                context.Response.StatusCode = ClientClosedRequest; // never sent; what the request log records
        }
        catch (UploadException ex)
        {
            await RejectAsync(context, ex.Error, ex.Message, ex.RetryAfterSeconds);
        }
        catch (BadHttpRequestException ex)
        {
            var error = ex.StatusCode == StatusCodes.Status413PayloadTooLarge ? HttpErrors.RequestTooLarge : HttpErrors.BadRequest;
            await RejectAsync(context, error, ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? "The request body is larger than any chunk this server accepts."
                : "The request could not be read: " + ex.Message, null);
        }
        catch (InvalidDataException ex)
        {
            await RejectAsync(context, UploadErrors.MalformedMultipart, "The multipart body could not be read: " + ex.Message, null);
        }
        catch (IOException ex) when (Core.StorageFaults.IsDiskFull(ex))
        {
            await RejectAsync(context, UploadErrors.InsufficientStorage, "The server's disk is full. Try again later.", 60);
        }
        catch (Exception ex) when (Core.StorageFaults.IsTransient(ex) || ex is Amazon.Runtime.AmazonServiceException or Amazon.Runtime.AmazonClientException)
        {
            LogStorageFault(logger, ex, context.Request.Method, context.Request.Path.Value);
            await RejectAsync(context, UploadErrors.StorageUnavailable, "The server could not reach its storage. Try again in a few seconds.", 5);
        }
        catch (Exception ex)
        {
            LogUnexpected(logger, ex, context.Request.Method, context.Request.Path.Value);
            await RejectAsync(context, UploadErrors.InternalError, "The server failed unexpectedly; the failure is logged.", null);
        }
    }

    /// <summary>Logs a refusal that a protocol adapter answers in its own shape.</summary>
    public static void LogRejection(HttpContext context, UploadError error, string detail)
    {
        var logger = context.RequestServices.GetRequiredService<ILogger<ErrorHandlingMiddleware>>();
        LogRejected(logger, error.Code, error.Status, context.Request.Method, context.Request.Path.Value, context.Items[IdentifierItem] as string, detail);
        Diagnostics.UploadMetrics.Rejected(context, error);
    }

    private async Task RejectAsync(HttpContext context, UploadError error, string detail, int? retryAfter)
    {
        LogRejected(logger, error.Code, error.Status, context.Request.Method, context.Request.Path.Value, context.Items[IdentifierItem] as string, detail);
        Diagnostics.UploadMetrics.Rejected(context, error);
        if (context.Response.HasStarted)
            return;
        context.Response.Clear();
        await Problems.For(context, error, detail, retryAfter).ExecuteAsync(context);
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Warning, Message = "Rejected {Method} {Path} for upload {Identifier}: {Code} ({Status}) {Detail}")]
    private static partial void LogRejected(ILogger logger, string code, int status, LogText method, LogText path, LogText identifier, LogText detail);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "Client went away during {Method} {Path} for upload {Identifier}; nothing of the request was kept")]
    private static partial void LogClientGone(ILogger logger, LogText method, LogText path, LogText identifier);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Error, Message = "Storage fault during {Method} {Path}")]
    private static partial void LogStorageFault(ILogger logger, Exception exception, LogText method, LogText path);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Error, Message = "Unexpected failure during {Method} {Path}")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, LogText method, LogText path);
}

/// <summary>
/// Endpoint metadata for a protocol whose clients read errors in a shape of their own (Fine Uploader's JSON): the
/// middleware answers that endpoint's refusals through it instead of problem+json, whatever threw them.
/// </summary>
public interface IErrorResponder
{
    IResult Reject(HttpContext context, UploadError failure, string detail, int? retryAfterSeconds);
}

/// <summary>Errors that only the HTTP layer produces.</summary>
public static class HttpErrors
{
    public static readonly UploadError BadRequest = new("bad_request", 400, "The request could not be read");
    public static readonly UploadError RequestTooLarge = new("request_too_large", 400, "The request body is too large");
    public static readonly UploadError RouteNotFound = new("route_not_found", 404, "No such resource");
    public static readonly UploadError MethodNotAllowed = new("method_not_allowed", 405, "The method is not allowed here");
    public static readonly UploadError RangeNotSatisfiable = new("range_not_satisfiable", 416, "No byte of the requested range is in the file");

    public static UploadError ForStatus(int status) => status switch
    {
        404 => RouteNotFound,
        405 => MethodNotAllowed,
        _ => new UploadError("http_" + status.ToString(System.Globalization.CultureInfo.InvariantCulture), status, "The request was not accepted"),
    };
}
