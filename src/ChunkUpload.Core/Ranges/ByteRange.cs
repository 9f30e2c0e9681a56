namespace ChunkUpload.Core.Ranges;

/// <summary>A half-open byte range [Offset, Offset+Length) of a file.</summary>
public readonly record struct ByteRange(long Offset, long Length)
{
    public long End => Offset + Length;

    public static ByteRange FromBounds(long start, long end) => new(start, end - start);

    /// <summary>The inclusive form HTTP uses (<c>0-1023</c>).</summary>
    public override string ToString() => Length == 0 ? $"{Offset}-" : $"{Offset}-{End - 1}";
}
