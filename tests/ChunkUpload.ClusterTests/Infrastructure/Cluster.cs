using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Amazon.S3;
using Amazon.S3.Model;
using ChunkUpload.FaultTests.Infrastructure;
using ChunkUpload.Storage.S3;
using ChunkUpload.Tests.Infrastructure;
using Npgsql;

namespace ChunkUpload.ClusterTests.Infrastructure;

/// <summary>
/// Several ChunkUpload nodes as issue 10 runs them: real server processes (<see cref="ServerProcess"/>), each with its
/// own staging root, sharing one fresh PostgreSQL database and one fresh bucket (from <see cref="TestServices"/>), with
/// a webhook receiver in the test. Nodes can be SIGKILLed and restarted (a restarted node listens on a new port: the
/// client's node list follows <see cref="ClusterNode.BaseUri"/>). Every line every node process writes is kept, so
/// that log events can be counted across nodes and lifetimes.
/// </summary>
public sealed class Cluster : IAsyncDisposable
{
    public const string AssembledEventId = "1004";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);
    private readonly List<(string Node, string Line)> _log = [];
    private readonly string _root;

    private Cluster(string root, Dictionary<string, string> settings, WebhookReceiver webhook, string connectionString, Dictionary<string, string> s3)
    {
        _root = root;
        Settings = settings;
        Webhook = webhook;
        ConnectionString = connectionString;
        S3Settings = s3;
        Http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromSeconds(30) })
        {
            Timeout = TimeSpan.FromMinutes(3),
        };
    }

    public IReadOnlyList<ClusterNode> Nodes => _nodes;

    /// <summary>The test's name: every node's log is written to TestResults/cluster-logs/{Name}.log when the cluster is disposed.</summary>
    public string Name { get; private init; } = "";

    private readonly List<ClusterNode> _nodes = [];

    /// <summary>The configuration every node gets (keys in configuration form: <c>Storage:Nodes</c> is <c>Storage__Nodes</c>).</summary>
    public Dictionary<string, string> Settings { get; }

    public WebhookReceiver Webhook { get; }

    /// <summary>The shared database (fresh for this cluster).</summary>
    public string ConnectionString { get; }

    /// <summary>The gateway's S3 settings (S3__ServiceUrl, S3__AccessKey, S3__SecretKey) and this cluster's bucket (S3__Bucket).</summary>
    public Dictionary<string, string> S3Settings { get; }

    public string Bucket => S3Settings["S3__Bucket"];

    /// <summary>One client for every node (requests carry absolute URLs).</summary>
    public HttpClient Http { get; }

    /// <summary>
    /// Starts <paramref name="count"/> nodes with the shared settings plus <paramref name="extra"/>; <paramref name="perNode"/>
    /// may override settings of one node (given its index and the shared settings), e.g. to send its database traffic
    /// through a <see cref="TcpGate"/>.
    /// </summary>
    public static async Task<Cluster> StartAsync(
        int count = 3,
        IReadOnlyDictionary<string, string>? extra = null,
        Func<int, IReadOnlyDictionary<string, string>, IReadOnlyDictionary<string, string>?>? perNode = null,
        [CallerMemberName] string name = "")
    {
        string connection = await TestServices.NewDatabaseAsync();
        var s3 = new Dictionary<string, string>(await TestServices.S3SettingsAsync())
        {
            ["S3__Bucket"] = "cu-" + Guid.NewGuid().ToString("N")[..20],
        };
        var webhook = WebhookReceiver.Start();
        var settings = new Dictionary<string, string>
        {
            ["Storage:Nodes"] = count.ToString(CultureInfo.InvariantCulture),
            ["Storage:Metadata"] = "PostgreSQL",
            ["Storage:Data"] = "S3",
            ["ConnectionStrings:Uploads"] = connection,
            ["Webhook:Url"] = webhook.Url.ToString(),
            ["RateLimit:TokensPerPeriod"] = "0",
        };
        foreach (var (key, value) in s3)
            settings[key.Replace("__", ":", StringComparison.Ordinal)] = value;
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
            settings[key] = value;

        string root = Path.Combine(Path.GetTempPath(), "chunkupload-cluster", Guid.NewGuid().ToString("N")[..12]);
        var cluster = new Cluster(root, settings, webhook, connection, s3) { Name = name };
        try
        {
            for (int i = 0; i < count; i++)
            {
                var own = new Dictionary<string, string>(settings);
                foreach (var (key, value) in perNode?.Invoke(i, settings) ?? new Dictionary<string, string>())
                    own[key] = value;
                cluster._nodes.Add(new ClusterNode(cluster, i, Path.Combine(root, "node" + (i + 1).ToString(CultureInfo.InvariantCulture)), own));
            }

            // One after the other: the first applies the schema migrations, the others find them applied.
            foreach (var node in cluster._nodes)
                await node.StartAsync();
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Command-line arguments for settings (<c>--Key=Value</c>, the same configuration keys as the environment form).</summary>
    public static string[] Arguments(IReadOnlyDictionary<string, string> settings) =>
        [.. settings.Select(kv => "--" + kv.Key + "=" + kv.Value)];

    internal ServerProcess Launch(string storageRoot, IReadOnlyDictionary<string, string> settings, string name)
    {
        Directory.CreateDirectory(storageRoot);
        var process = ServerProcess.Start(storageRoot, Arguments(settings));
        process.LineWritten += line =>
        {
            lock (_log)
                _log.Add((name, line));
        };
        return process;
    }

    internal static TimeSpan NodeStartTimeout => StartTimeout;

    /// <summary>Lines of every node (including killed ones) that satisfy <paramref name="match"/>.</summary>
    public IReadOnlyList<(string Node, string Line)> LogLines(Func<string, bool> match)
    {
        lock (_log)
            return [.. _log.Where(l => match(l.Line))];
    }

    /// <summary>The "Upload {id} assembled" events (event id 1004) for an upload, across every node and lifetime.</summary>
    public IReadOnlyList<(string Node, string Line)> AssembledEvents(string identifier) =>
        LogLines(line => line.Contains("Upload " + identifier + " assembled:", StringComparison.Ordinal)
            && line.Contains("\"Id\": " + AssembledEventId, StringComparison.Ordinal));

    /// <summary>The last lines of every node, for failure messages.</summary>
    public string LogTails() => string.Join("\n", _nodes.Select(n => $"--- {n.Name} ---\n{n.LogTail}"));

    /// <summary>Polls <c>GET /uploads/{id}</c> on live nodes until the upload is complete; returns the status JSON.</summary>
    public async Task<JsonElement> WaitCompleteAsync(string identifier, TimeSpan timeout, Func<HttpRequestMessage, HttpRequestMessage>? authorize = null)
    {
        var deadline = Stopwatch.StartNew();
        string last = "";
        for (int i = 0; deadline.Elapsed < timeout; i++)
        {
            var node = _nodes[i % _nodes.Count];
            if (node.IsAlive)
            {
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, node.Url("/uploads/" + Uri.EscapeDataString(identifier)));
                    using var response = await Http.SendAsync(authorize?.Invoke(request) ?? request);
                    last = $"{node.Name}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                        string? state = json.RootElement.GetProperty("state").GetString();
                        if (state == "complete")
                            return json.RootElement.Clone();
                        if (state == "failed")
                            throw new InvalidOperationException("The upload failed: " + last);
                    }
                }
                catch (HttpRequestException)
                {
                    // A node going down; ask another.
                }
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"Upload {identifier} was not complete after {timeout.TotalSeconds} s; last answer {last}\n{LogTails()}");
    }

    /// <summary>Polls until the outbox is empty and at least <paramref name="deliveries"/> deliveries arrived (then nothing more can come).</summary>
    public async Task WaitWebhookSettledAsync(int deliveries, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            if (Webhook.TotalDeliveries >= deliveries && await OutboxCountAsync() == 0)
                return;
            await Task.Delay(100);
        }

        throw new TimeoutException($"The webhook received {Webhook.TotalDeliveries} deliveries, outbox holds {await OutboxCountAsync()} events after {timeout.TotalSeconds} s.\n{LogTails()}");
    }

    /// <summary>Events recorded in the shared outbox and not yet acknowledged (delivered).</summary>
    public async Task<long> OutboxCountAsync()
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var count = new NpgsqlCommand("SELECT count(*) FROM outbox", connection);
        return (long)(await count.ExecuteScalarAsync())!;
    }

    /// <summary>A client of the cluster's bucket, to see what the nodes left in it.</summary>
    public AmazonS3Client CreateS3Client() => S3DataStore.CreateClient(new S3Options
    {
        ServiceUrl = new Uri(S3Settings["S3__ServiceUrl"]),
        AccessKey = S3Settings["S3__AccessKey"],
        SecretKey = S3Settings["S3__SecretKey"],
        Bucket = Bucket,
    });

    /// <summary>Every object key and every unfinished multipart upload in the cluster's bucket.</summary>
    public async Task<(List<string> Objects, List<string> MultipartUploads)> BucketContentsAsync()
    {
        using var s3 = CreateS3Client();
        var objects = new List<string>();
        string? token = null;
        do
        {
            var page = await s3.ListObjectsV2Async(new ListObjectsV2Request { BucketName = Bucket, ContinuationToken = token });
            objects.AddRange((page.S3Objects ?? []).Select(o => o.Key));
            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
        var uploads = await s3.ListMultipartUploadsAsync(new ListMultipartUploadsRequest { BucketName = Bucket });
        return (objects, [.. (uploads.MultipartUploads ?? []).Select(u => u.Key + " " + u.UploadId)]);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
            node.Dispose();
        string logs = Path.Combine(Figures.RepositoryRoot(), "TestResults", "cluster-logs");
        Directory.CreateDirectory(logs);
        List<string> lines;
        lock (_log)
            lines = [.. _log.Select(l => l.Node + " | " + l.Line)];
        await File.WriteAllLinesAsync(Path.Combine(logs, Name + ".log"), lines);
        await Webhook.DisposeAsync();
        Http.Dispose();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>One node of a <see cref="Cluster"/>: a server process that can be killed and started again over the same staging root.</summary>
public sealed class ClusterNode : IDisposable
{
    private readonly Cluster _cluster;
    private readonly Dictionary<string, string> _settings;
    private ServerProcess? _process;

    internal ClusterNode(Cluster cluster, int index, string storageRoot, Dictionary<string, string> settings)
    {
        _cluster = cluster;
        Index = index;
        StorageRoot = storageRoot;
        _settings = settings;
    }

    public int Index { get; }

    public string Name => "node" + (Index + 1).ToString(CultureInfo.InvariantCulture);

    public string StorageRoot { get; }

    /// <summary>Where the node listens now (a restart picks a new port).</summary>
    public Uri BaseUri => _process?.BaseUri ?? throw new InvalidOperationException($"{Name} was never started.");

    public bool IsAlive => _process is { HasExited: false };

    public int Pid => _process?.Pid ?? 0;

    public string LogTail => _process?.LogTail ?? "";

    public Uri Url(string pathAndQuery) => new(BaseUri, pathAndQuery);

    /// <summary>Starts the node and waits until /healthz answers (a port taken meanwhile is retried, as in <see cref="ServerProcess.StartHealthyAsync"/>).</summary>
    public async Task StartAsync()
    {
        for (int attempt = 1; ; attempt++)
        {
            var process = _cluster.Launch(StorageRoot, _settings, Name);
            if (await process.WaitHealthyAsync(Cluster.NodeStartTimeout))
            {
                _process?.Dispose();
                _process = process;
                return;
            }

            string log = process.LogTail;
            bool exited = process.HasExited;
            process.Dispose();
            if (!exited || attempt >= 3)
                throw new TimeoutException($"{Name} did not become healthy within {Cluster.NodeStartTimeout.TotalSeconds} s (exited: {exited}):\n{log}");
        }
    }

    /// <summary>SIGKILL to this node's process (by its PID).</summary>
    public void Kill() => _process?.Kill();

    public void Dispose() => _process?.Dispose();
}
