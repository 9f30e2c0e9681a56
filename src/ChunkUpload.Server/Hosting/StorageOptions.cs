using System.ComponentModel.DataAnnotations;

namespace ChunkUpload.Server.Hosting;

/// <summary>
/// Which stores hold an upload's state and bytes, section <c>Storage</c> (environment: <c>Storage__Data</c>,
/// <c>Storage__Metadata</c>, <c>Storage__Nodes</c>). Local disk for both is the default: <c>dotnet run</c> needs
/// nothing else. Several nodes share uploads through PostgreSQL metadata and S3-compatible data.
/// </summary>
public sealed class StorageOptions
{
    public const string SectionName = "Storage";

    public DataStoreKind Data { get; set; } = DataStoreKind.Local;

    public MetadataStoreKind Metadata { get; set; } = MetadataStoreKind.Local;

    /// <summary>How many nodes serve the same uploads (behind one load balancer). More than one needs shared stores.</summary>
    [Range(1, 1000)]
    public int Nodes { get; set; } = 1;

    /// <summary>The start-up check: a combination that several nodes cannot share is refused with a sentence saying what to set.</summary>
    public string? Problem(string? connectionString)
    {
        if (Metadata == MetadataStoreKind.PostgreSQL && string.IsNullOrWhiteSpace(connectionString))
            return "Storage:Metadata=PostgreSQL needs ConnectionStrings:Uploads (an Npgsql connection string, e.g. ConnectionStrings__Uploads=\"Host=db;Username=chunkupload;Password=...;Database=chunkupload\").";
        if (Nodes > 1 && Metadata != MetadataStoreKind.PostgreSQL)
            return $"Storage:Nodes={Nodes}: several nodes share uploads only through one metadata store; set Storage__Metadata=PostgreSQL (node-local metadata would give each node its own uploads).";
        if (Nodes > 1 && Data != DataStoreKind.S3)
            return $"Storage:Nodes={Nodes}: several nodes share bytes only through object storage; set Storage__Data=S3 (local disk is one node's).";
        if (Data == DataStoreKind.S3 && Metadata == MetadataStoreKind.Local && Nodes > 1)
            return "S3 data with node-local metadata cannot be shared by several nodes; set Storage__Metadata=PostgreSQL.";
        return null;
    }
}

public enum DataStoreKind
{
    Local,
    S3,
}

public enum MetadataStoreKind
{
    Local,
    PostgreSQL,
}
