namespace ChunkUpload.Core;

/// <summary>What one sweep removed.</summary>
public sealed record SweepResult(int ExpiredUploads, int RetiredFiles, int OrphanedFiles)
{
    public int Total => ExpiredUploads + RetiredFiles + OrphanedFiles;
}
