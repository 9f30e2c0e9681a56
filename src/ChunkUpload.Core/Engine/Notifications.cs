using ChunkUpload.Core.Hooks;
using Microsoft.Extensions.Logging;

namespace ChunkUpload.Core.Engine;

/// <summary>
/// Calls the hooks' notifications so that an observer's fault never becomes the upload's: it is logged and the work
/// goes on. The state parameter keeps the calls on hot paths free of closures.
/// </summary>
internal static class Notifications
{
    public static void Notify<TState>(this IUploadHooks hooks, ILogger logger, string identifier, TState state, Action<IUploadHooks, TState> notify)
    {
        try
        {
            notify(hooks, state);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            EngineLog.NotificationFailed(logger, ex, identifier);
        }
    }

    /// <summary>A logging scope naming the upload, so that every line the engine logs while working on it carries its id.</summary>
    public static IDisposable? UploadScope(this ILogger logger, string identifier) =>
        logger.BeginScope(new UploadLogScope(identifier));

    // Read by structured loggers as the property UploadId (the same name the HTTP layer's request scope uses).
    private sealed class UploadLogScope(string identifier) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        public int Count => 1;

        public KeyValuePair<string, object?> this[int index] =>
            index == 0 ? new KeyValuePair<string, object?>("UploadId", identifier) : throw new ArgumentOutOfRangeException(nameof(index));

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
        {
            yield return this[0];
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

        public override string ToString() => "Upload " + identifier;
    }
}
