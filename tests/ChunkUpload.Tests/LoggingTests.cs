using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using ChunkUpload.Server.Hosting;
using ChunkUpload.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;
using Serilog.Events;

namespace ChunkUpload.Tests;

/// <summary>Serilog: one event per request and the upload id on everything a request for an upload logs; text or JSON console.</summary>
public sealed class LoggingTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Request_Log_And_Engine_Events_Of_An_Upload_Request_Carry_Its_UploadId_And_Other_Providers_Still_See_Events()
    {
        var sink = new CapturingSink();
        using var app = new ChunkUploadApplication(_dir.StorageRoot, services: services => services.AddSingleton<ILogEventSink>(sink));
        var client = new UploadClient(app.CreateClient());
        var file = TestFile.Random("log-scope-1", 2000, 1000);
        using (var first = await client.PostChunkAsync(file, 1))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        // The request's summary is written once the response has gone: wait for it.
        var deadline = DateTime.UtcNow.AddSeconds(15);
        LogEvent? request;
        while ((request = sink.Events.FirstOrDefault(e => e.MessageTemplate.Text.StartsWith("HTTP ", StringComparison.Ordinal)
                   && Scalar(e, "RequestPath") == "/upload" && Scalar(e, "RequestMethod") == "POST")) is null && DateTime.UtcNow < deadline)
            await Task.Delay(20);

        Assert.NotNull(request);
        Assert.Equal(200, request.Properties["StatusCode"] is ScalarValue { Value: int status } ? status : 0);
        Assert.Equal("log-scope-1", Scalar(request, "UploadId"));
        var started = Assert.Single(sink.Events, e => EventName(e) == "UploadStarted");
        Assert.Equal("log-scope-1", Scalar(started, "UploadId"));
        Assert.Equal(1, app.Logs.Count(1001, "log-scope-1")); // the tests' ILoggerProvider still sees the engine's events
    }

    [Fact]
    public void Json_Format_Writes_One_Compact_Json_Object_Per_Event_With_Its_Properties()
    {
        var format = LogFormat.From("json");
        Assert.Equal(LogFormat.Json, format.Name);
        var parser = new Serilog.Parsing.MessageTemplateParser();
        var logEvent = new LogEvent(DateTimeOffset.UtcNow, LogEventLevel.Warning, null, parser.Parse("Rejected {Code}"),
            [new LogEventProperty("Code", new ScalarValue("upload_not_found")), new LogEventProperty("UploadId", new ScalarValue("a\nb"))]);
        using var writer = new StringWriter();
        format.Formatter.Format(logEvent, writer);

        string line = writer.ToString();
        Assert.Equal(1, line.Count(c => c == '\n')); // a newline inside a value cannot start a second record
        using var json = JsonDocument.Parse(line);
        Assert.Equal("Rejected {Code}", json.RootElement.GetProperty("@mt").GetString());
        Assert.Equal("Warning", json.RootElement.GetProperty("@l").GetString());
        Assert.Equal("upload_not_found", json.RootElement.GetProperty("Code").GetString());
        Assert.Equal("a\nb", json.RootElement.GetProperty("UploadId").GetString());
    }

    [Theory]
    [InlineData(null, "text")]
    [InlineData("", "text")]
    [InlineData("TEXT", "text")]
    [InlineData(" json ", "json")]
    public void Log_Format_Setting_Selects_Text_Or_Json(string? setting, string expected) =>
        Assert.Equal(expected, LogFormat.From(setting).Name);

    [Fact]
    public void An_Unknown_Log_Format_Stops_The_Server_With_A_Message()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => LogFormat.From("xml"));
        Assert.Contains("Logging:Format", ex.Message, StringComparison.Ordinal);
    }

    private static string? EventName(LogEvent e) =>
        e.Properties.TryGetValue("EventId", out var id) && id is StructureValue s
            ? s.Properties.FirstOrDefault(p => p.Name == "Name")?.Value is ScalarValue { Value: string name } ? name : null
            : null;

    private static string? Scalar(LogEvent e, string name) =>
        e.Properties.TryGetValue(name, out var value) && value is ScalarValue { Value: var v } ? v?.ToString() : null;

    private sealed class CapturingSink : ILogEventSink
    {
        public ConcurrentQueue<LogEvent> Events { get; } = new();

        public void Emit(LogEvent logEvent) => Events.Enqueue(logEvent);
    }
}
