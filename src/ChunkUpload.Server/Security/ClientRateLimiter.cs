using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace ChunkUpload.Server.Security;

/// <summary>
/// The request-rate budget of each client (token bucket, section <c>RateLimit</c>), on the injected
/// <see cref="TimeProvider"/>. A bucket is refilled lazily when its client comes back, so nothing runs per client;
/// a bucket that has refilled to the brim is the same as no bucket, so such entries are dropped by a prune that runs
/// at most once per <see cref="PruneInterval"/>: the table holds only clients seen within about one refill time.
/// </summary>
public sealed class ClientRateLimiter(IOptions<RateLimitOptions> options, TimeProvider time)
{
    /// <summary>Least time between two prunes (each walks the table once).</summary>
    public static readonly TimeSpan PruneInterval = TimeSpan.FromSeconds(10);

    private readonly Dictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private DateTimeOffset _lastPrune = time.GetUtcNow();

    public bool Enabled => options.Value.TokensPerPeriod > 0;

    /// <summary>Clients with a bucket that is not full (tests: idle clients do not stay).</summary>
    public int TrackedClients
    {
        get
        {
            lock (_lock)
                return _buckets.Count;
        }
    }

    /// <summary>Takes one request from the client's budget; false with the time until the next refill when it is spent.</summary>
    public bool TryAcquire(string client, out TimeSpan retryAfter)
    {
        var limits = options.Value;
        var now = time.GetUtcNow();
        lock (_lock)
        {
            if (now - _lastPrune >= PruneInterval)
            {
                Prune(limits, now);
                _lastPrune = now;
            }

            if (!_buckets.TryGetValue(client, out var bucket))
                bucket = new Bucket(limits.BurstLimit, now);
            else
                bucket = Refill(bucket, limits, now);

            if (bucket.Tokens > 0)
            {
                _buckets[client] = bucket with { Tokens = bucket.Tokens - 1 };
                retryAfter = TimeSpan.Zero;
                return true;
            }

            _buckets[client] = bucket;
            retryAfter = bucket.Since + limits.Period - now;
            return false;
        }
    }

    private void Prune(RateLimitOptions limits, DateTimeOffset now)
    {
        List<string>? full = null;
        foreach (var (client, bucket) in _buckets)
        {
            if (Refill(bucket, limits, now).Tokens >= limits.BurstLimit)
                (full ??= []).Add(client);
        }

        foreach (string client in full ?? [])
            _buckets.Remove(client);
    }

    private static Bucket Refill(Bucket bucket, RateLimitOptions limits, DateTimeOffset now)
    {
        if (now <= bucket.Since || limits.Period <= TimeSpan.Zero)
            return bucket;
        long periods = (now - bucket.Since).Ticks / limits.Period.Ticks;
        if (periods == 0)
            return bucket;
        long tokens = Math.Min(limits.BurstLimit, bucket.Tokens + (periods * (long)limits.TokensPerPeriod));
        return new Bucket((int)tokens, tokens >= limits.BurstLimit ? now : bucket.Since + (limits.Period * periods));
    }

    /// <param name="Tokens">Requests left.</param>
    /// <param name="Since">When the current refill period began.</param>
    private readonly record struct Bucket(int Tokens, DateTimeOffset Since);
}

/// <summary>
/// The key an anonymous client counts against: its address, with an IPv4 client seen as IPv4-mapped IPv6 counted
/// as the IPv4 client, and an IPv6 client counted by its /64 network (one subscriber's prefix: a host picks any of
/// its 2^64 addresses at will, so counting addresses would give it as many budgets).
/// </summary>
public static class ClientAddress
{
    public static string KeyOf(IPAddress? address)
    {
        if (address is null)
            return "unknown";
        if (address.IsIPv4MappedToIPv6)
            address = address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
            return address.ToString();
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes).ToString() + "/64";
    }
}
