using ChunkUpload.Core.Integrity;

namespace ChunkUpload.Core.Engine;

/// <summary>How a protocol wants one request body written.</summary>
public sealed record WriteOptions
{
    /// <summary>The protocol writing; an upload created by another protocol refuses the write (409).</summary>
    public required string Protocol { get; init; }

    /// <summary>
    /// The body's length when the request states it. With <see cref="KeepPartial"/> off the body must be exactly this
    /// long; with it on, this is the most it may carry.
    /// </summary>
    public long? ExpectedLength { get; init; }

    /// <summary>
    /// A sequential write (tus, the IETF draft, append, Google-style): it takes the upload's writer lock (taking over
    /// from an earlier request that still holds it) and its offset must equal the stored end, else
    /// <c>offset_mismatch</c> with the stored offset.
    /// </summary>
    public bool Append { get; init; }

    /// <summary>
    /// Keep the pieces that arrived when the body breaks off (streaming protocols). Off for chunk protocols: a chunk
    /// is stored whole or not at all. Forced off when a <see cref="Verifier"/> is given.
    /// </summary>
    public bool KeepPartial { get; init; }

    /// <summary>A digest the body must match before anything of it is kept (all or nothing).</summary>
    public IBodyVerifier? Verifier { get; init; }

    /// <summary>This body ends the file: when it arrives whole, the upload's length is its end (IETF <c>Upload-Complete: ?1</c>).</summary>
    public bool CompletesUpload { get; init; }
}
