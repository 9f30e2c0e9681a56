using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>Records log events so tests can count what the server did (e.g. exactly one assembly).</summary>
public sealed class LogCapture : ILoggerProvider
{
    public ConcurrentQueue<(EventId Id, string Message)> Events { get; } = new();

    /// <summary>The same events with the category (logger name) that wrote them.</summary>
    public ConcurrentQueue<LogEntry> Entries { get; } = new();

    public int Count(int eventId, string contains) => Events.Count(e => e.Id.Id == eventId && e.Message.Contains(contains, StringComparison.Ordinal));

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            string message = formatter(state, exception);
            owner.Events.Enqueue((eventId, message));
            owner.Entries.Enqueue(new LogEntry(category, logLevel, eventId, message));
        }
    }
}

public sealed record LogEntry(string Category, LogLevel Level, EventId Id, string Message);
