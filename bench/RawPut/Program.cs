// The benchmark's raw limit: the least an ASP.NET Core app can do to move a request body to disk.
// PUT /raw/{name} copies the body straight from Kestrel's pipe into a file under --storage;
// ?fsync=1 flushes the file to disk before answering (the durability ChunkUpload gives each chunk).
// Usage: dotnet RawPut.dll --urls http://127.0.0.1:PORT --storage DIR
using Microsoft.AspNetCore.Http.Features;

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);

var storage = builder.Configuration["storage"]
    ?? throw new InvalidOperationException("--storage DIR is required");
Directory.CreateDirectory(storage);

var app = builder.Build();

app.MapGet("/healthz", () => "ok");

app.MapPut("/raw/{name}", async (HttpContext context, string name, bool? fsync) =>
{
    if (name.Length == 0 || name.AsSpan().IndexOfAnyExcept(NameChars.Allowed) >= 0 || name.StartsWith('.'))
    {
        return Results.BadRequest();
    }

    context.Features.Get<IHttpMaxRequestBodySizeFeature>()!.MaxRequestBodySize = null;
    var path = Path.Combine(storage, name);
    // Kestrel hands the body over in 4 KiB pipe segments; a 1 MiB file buffer turns them into large writes
    // (unbuffered, the raw limit measured markedly lower here, and it must be the fastest honest copy).
    await using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1024 * 1024, FileOptions.None))
    {
        await context.Request.BodyReader.CopyToAsync(file, context.RequestAborted);
        if (fsync == true)
        {
            file.Flush(flushToDisk: true);
        }
    }

    return Results.Text(new FileInfo(path).Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
});

await app.RunAsync();

internal static class NameChars
{
    public static readonly System.Buffers.SearchValues<char> Allowed =
        System.Buffers.SearchValues.Create("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.");
}
