using ChunkUpload.Core.Errors;

namespace ChunkUpload.Server.Protocol;

/// <summary>
/// Request parameters gathered from the query string and multipart fields. A name given twice must carry the same
/// value each time (resumable.js repeats every field in the query string); disagreeing duplicates are refused.
/// </summary>
public sealed class ParameterBag
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public static ParameterBag FromQuery(IQueryCollection query)
    {
        var bag = new ParameterBag();
        foreach (var (name, values) in query)
        {
            foreach (var value in values)
                bag.Add(name, value ?? "");
        }

        return bag;
    }

    public void Add(string name, string value)
    {
        if (_values.TryGetValue(name, out var existing))
        {
            if (!string.Equals(existing, value, StringComparison.Ordinal))
                throw new UploadException(UploadErrors.ConflictingParameter,
                    $"The parameter '{Truncate(name)}' was sent more than once with different values.");
            return;
        }

        _values[name] = value;
    }

    public bool TryGet(string name, out string value) => _values.TryGetValue(name, out value!);

    public bool HasAnyWithPrefix(string prefix)
    {
        foreach (var key in _values.Keys)
        {
            if (key.StartsWith(prefix, StringComparison.Ordinal))
                return true;
        }

        return false;
    }

    internal static string Truncate(string value) => value.Length <= 64 ? value : string.Concat(value.AsSpan(0, 64), "…");

}
