using ChunkUpload.Server.Endpoints;
using ChunkUpload.Server.Hosting;

// Settings files live beside the binary; the storage root (default "data") is resolved against the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });

builder.AddChunkUploadLogging();
builder.AddChunkUploadForwardedHeaders();
builder.AddChunkUploadStorage();
builder.AddChunkUploadRequestLimits();
builder.AddChunkUploadCors();
builder.AddChunkUploadSecurity();
builder.AddChunkUploadApiDocs();
builder.AddChunkUploadDiagnostics();

var app = builder.Build();

app.UseChunkUploadForwardedHeaders();
app.UseChunkUploadRequestLogging();
app.UseChunkUploadErrorHandling();
app.UseCors();
app.UseChunkUploadSecurity();
app.UseChunkUploadWebPage();
app.UseChunkUploadApiDocs();

app.MapResumableApi(app.Configuration);
app.MapTusApi(app.Configuration);
app.MapFineUploaderApi(app.Configuration);
app.MapGoogleApi(app.Configuration);
app.MapNginxUploadApi(app.Configuration);
app.MapAppendApi(app.Configuration);
app.MapResumableUploadsApi(app.Configuration);
app.MapUploadsApi(app.Configuration);
app.MapServiceApi();

app.Run();

/// <summary>Entry point, visible to the integration tests' application factory.</summary>
public partial class Program;
