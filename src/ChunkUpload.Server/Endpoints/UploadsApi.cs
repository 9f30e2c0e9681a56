using ChunkUpload.Core;
using ChunkUpload.Core.Errors;
using ChunkUpload.Core.Storage;
using ChunkUpload.Server.Hosting;
using ChunkUpload.Server.Http;
using ChunkUpload.Server.Protocol;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Net.Http.Headers;

namespace ChunkUpload.Server.Endpoints;

/// <summary>Protocol-neutral view of uploads: status, deletion, and the finished file.</summary>
public static class UploadsApi
{
    public static IEndpointRouteBuilder MapUploadsApi(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        var uploads = app.MapGroup("/uploads").WithTags("Uploads").RequireUploadCredentials(configuration);
        uploads.MapGet("/{**identifier}", GetStatus)
            .WithName("GetUpload")
            .WithSummary("State of an upload: received and missing chunks, and the SHA-256 once complete.")
            .ProducesProblem(StatusCodes.Status404NotFound);
        uploads.MapDelete("/{**identifier}", Delete)
            .WithName("DeleteUpload")
            .WithSummary("Removes an upload's chunks and any partial or finished file.")
            .ProducesProblem(StatusCodes.Status404NotFound);

        app.MapGet("/files/{**identifier}", Download)
            .WithTags("Uploads")
            .WithName("DownloadFile")
            .WithSummary("The completed file, with Range support; 404 until the upload is complete.")
            .Produces(StatusCodes.Status200OK, contentType: "application/octet-stream")
            .Produces(StatusCodes.Status206PartialContent)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .RequireUploadCredentials(configuration);
        return app;
    }

    public static Ok<UploadStatus> GetStatus(string identifier, HttpContext context, UploadStore store)
    {
        identifier = RouteIdentifier(identifier);
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = identifier;
        var status = store.GetStatus(Principals.OwnerOf(context), identifier) ?? throw NotFound(identifier);
        return TypedResults.Ok(status);
    }

    public static async Task<NoContent> Delete(string identifier, HttpContext context, UploadStore store)
    {
        identifier = RouteIdentifier(identifier);
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = identifier;
        if (!await store.DeleteAsync(Principals.OwnerOf(context), identifier, context.RequestAborted))
            throw NotFound(identifier);
        return TypedResults.NoContent();
    }

    public static PhysicalFileHttpResult Download(string identifier, HttpContext context, UploadStore store)
    {
        identifier = RouteIdentifier(identifier);
        context.Items[ErrorHandlingMiddleware.IdentifierItem] = identifier;
        var file = store.GetCompletedFile(Principals.OwnerOf(context), identifier) ?? throw NotFound(identifier);
        context.Response.Headers.XContentTypeOptions = "nosniff";
        // Always an attachment of type octet-stream: the client-declared type is never trusted to render inline.
        return TypedResults.PhysicalFile(
            file.Path,
            "application/octet-stream",
            fileDownloadName: DownloadNames.Safe(file.FileName),
            entityTag: new EntityTagHeaderValue("\"" + file.Sha256 + "\""),
            enableRangeProcessing: true);
    }

    // Identifiers may contain '/': the route takes the rest of the path, and an encoded slash (%2F, which Kestrel
    // leaves encoded in the path) is decoded here.
    private static string RouteIdentifier(string identifier) =>
        identifier.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);

    private static UploadException NotFound(string identifier) =>
        new(UploadErrors.UploadNotFound, $"There is no upload '{ParameterBag.Truncate(identifier)}' (it may have been deleted or never started).");
}
