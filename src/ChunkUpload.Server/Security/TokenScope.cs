using System.Security.Claims;
using ChunkUpload.Core.Errors;

namespace ChunkUpload.Server.Security;

/// <summary>What a request does with uploads, as its route declares it (<see cref="TokenScope.Performs{TBuilder}(TBuilder, UploadOperation)"/>).</summary>
public enum UploadOperation
{
    /// <summary>Creates an upload or sends its bytes (every protocol's writes, completion requests included).</summary>
    Upload,

    /// <summary>Reads one upload's state: tus and IETF HEAD, the resumable.js test GET, GET /append/status, GET /uploads/{id}.</summary>
    Status,

    /// <summary>Reads a finished file: GET /files/{id}, GET /tus/{id}.</summary>
    Download,

    /// <summary>Removes an upload: DELETE on /uploads/{id}, /tus/{id}, /rufh/{id}, /fineuploader/{uuid}.</summary>
    Delete,

    /// <summary>Lists the caller's uploads: GET /uploads.</summary>
    List,
}

/// <summary>
/// The operations an upload token allows (its <c>ops</c> claim; see <see cref="UploadTokens"/>), checked once per request
/// by a filter that every credentialed route gets with the operation it declares. Which upload a token names
/// (<c>upl</c>) and what an expired token may still finish are checked by the engine, where every protocol's name for
/// the upload arrives (<see cref="Core.Uploads.Caller.OnlyUpload"/>, <see cref="Core.Uploads.Caller.ExpiredAt"/>).
/// Refusals are permanent, in the protocol's own error shape: 403 <c>token_scope</c> (resumable.js, tus-js-client and
/// Fine Uploader stop on it: retrying cannot help), 401 <c>unauthenticated</c> for an expired token.
/// </summary>
public static class TokenScope
{
    public const string OperationsClaim = "chunkupload:ops";
    public const string UploadClaim = "chunkupload:upload";
    public const string ExpiredAtClaim = "chunkupload:expired_at";

    /// <summary>The operation names a token's <c>ops</c> may hold.</summary>
    public static readonly IReadOnlyList<string> OperationNames = ["upload", "download", "delete", "list"];

    /// <summary>Declares what the route does; a token whose <c>ops</c> do not allow it is refused before the handler runs.</summary>
    public static TBuilder Performs<TBuilder>(this TBuilder builder, UploadOperation operation)
        where TBuilder : IEndpointConventionBuilder => builder.Performs(_ => operation);

    /// <summary>For a route whose operation depends on the request (tus X-HTTP-Method-Override).</summary>
    public static TBuilder Performs<TBuilder>(this TBuilder builder, Func<HttpRequest, UploadOperation> operation)
        where TBuilder : IEndpointConventionBuilder
    {
        builder.WithMetadata(new OperationMetadata(operation));
        // An endpoint filter, not a middleware: it runs inside the protocol's own filter, so the refusal has its shape.
        return builder.AddEndpointFilter((invocation, next) =>
        {
            Check(invocation.HttpContext, operation(invocation.HttpContext.Request));
            return next(invocation);
        });
    }

    /// <summary>Refuses the operation when the request's credentials do not allow it; credentials without a scope allow everything.</summary>
    public static void Check(HttpContext context, UploadOperation operation)
    {
        var user = context.User;
        if (user.Identity is not { IsAuthenticated: true })
            return; // access control off
        if (user.HasClaim(c => c.Type == ExpiredAtClaim) && operation is not (UploadOperation.Upload or UploadOperation.Status))
            throw new UploadException(SecurityErrors.Unauthenticated,
                ChunkUploadAuthenticationHandler.InvalidTokenMessage + " An expired token can only finish an upload it began before it expired.");

        var allowed = OperationsOf(user);
        if (allowed is null || Allows(allowed, operation))
            return;
        throw new UploadException(SecurityErrors.TokenScope, operation == UploadOperation.Status
            ? $"Your token allows {string.Join(", ", allowed)}; reading an upload's state needs upload, download or list."
            : $"Your token allows {string.Join(", ", allowed)}; this request needs {NameOf(operation)}.");
    }

    /// <summary>The operations the credentials name, or null when they do not limit them (API keys, tokens without <c>ops</c>).</summary>
    public static IReadOnlyList<string>? OperationsOf(ClaimsPrincipal user) =>
        user.FindFirst(OperationsClaim)?.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    private static bool Allows(IReadOnlyList<string> allowed, UploadOperation operation) => operation == UploadOperation.Status
        ? allowed.Contains("upload") || allowed.Contains("download") || allowed.Contains("list")
        : allowed.Contains(NameOf(operation));

    private static string NameOf(UploadOperation operation) => operation switch
    {
        UploadOperation.Upload => "upload",
        UploadOperation.Download => "download",
        UploadOperation.Delete => "delete",
        UploadOperation.List => "list",
        _ => "status",
    };

    /// <summary>Endpoint metadata: what the route does (tests check that every credentialed route says).</summary>
    public sealed class OperationMetadata(Func<HttpRequest, UploadOperation> operation)
    {
        public UploadOperation Of(HttpRequest request) => operation(request);
    }
}
