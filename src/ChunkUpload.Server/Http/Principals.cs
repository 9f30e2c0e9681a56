namespace ChunkUpload.Server.Http;

/// <summary>
/// Who owns an upload. Sessions are keyed by (owner, identifier), so two principals uploading the same file never
/// share chunks. Without authentication every request belongs to the anonymous owner "".
/// </summary>
public static class Principals
{
    public static string OwnerOf(HttpContext context) =>
        context.User.Identity is { IsAuthenticated: true, Name: { Length: > 0 } name } ? name : "";
}
