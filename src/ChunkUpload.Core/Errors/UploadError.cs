namespace ChunkUpload.Core.Errors;

/// <summary>One entry of the error catalog: a stable machine-readable code, the HTTP status it maps to, and a title.</summary>
/// <remarks>
/// Statuses follow how the real clients react (../shared/PROTOCOLS.md 2.6 and 3.4): 400 and 409 abort the file in
/// resumable.js and flow.js (permanent), 503 and 507 are retried (transient). 413 is deliberately not used for
/// over-limit declarations: resumable.js would retry it a hundred times.
/// </remarks>
public sealed record UploadError(string Code, int Status, string Title)
{
    public bool IsTransient => Status is 423 or 429 or 503 or 507;
}

/// <summary>The catalog: every rejection the engine and its protocol adapters produce, declared once.</summary>
public static class UploadErrors
{
    public static readonly UploadError MissingParameter = new("missing_parameter", 400, "A required parameter is missing");
    public static readonly UploadError InvalidParameter = new("invalid_parameter", 400, "A parameter has an invalid value");
    public static readonly UploadError ConflictingParameter = new("conflicting_parameter", 400, "A parameter was sent twice with different values");
    public static readonly UploadError InvalidIdentifier = new("invalid_identifier", 400, "The upload identifier is not acceptable");
    public static readonly UploadError InvalidFileName = new("invalid_file_name", 400, "The file name or relative path is not acceptable");
    public static readonly UploadError FileTooLarge = new("file_too_large", 400, "The file is larger than this server accepts");
    public static readonly UploadError ChunkSizeTooLarge = new("chunk_size_too_large", 400, "The chunk size is larger than this server accepts");
    public static readonly UploadError TooManyChunks = new("too_many_chunks", 400, "The file would have more chunks than this server accepts");
    public static readonly UploadError ChunkOutOfRange = new("chunk_out_of_range", 400, "The chunk number is outside the file");
    public static readonly UploadError ChunkCountMismatch = new("chunk_count_mismatch", 400, "The total chunk count does not match the file and chunk size");
    public static readonly UploadError ChunkSizeMismatch = new("chunk_size_mismatch", 400, "The declared chunk length does not match the chunk's place in the file");
    public static readonly UploadError ChunkLengthMismatch = new("chunk_length_mismatch", 400, "The chunk body length does not match the expected length");
    public static readonly UploadError PartOffsetMismatch = new("part_offset_mismatch", 400, "The part's byte offset does not match its index and the part size");
    public static readonly UploadError PartsMissing = new("parts_missing", 409, "Parts of the file never arrived");
    public static readonly UploadError MalformedMultipart = new("malformed_multipart", 400, "The multipart body could not be read");
    public static readonly UploadError TooManyFields = new("too_many_fields", 400, "The multipart body has more fields, or more field data, than this server accepts");
    public static readonly UploadError IncompleteBody = new("incomplete_body", 400, "The request body ended before the chunk was complete");
    public static readonly UploadError MissingFilePart = new("missing_file_part", 400, "The multipart body has no file part");
    public static readonly UploadError SessionMismatch = new("session_mismatch", 409, "The chunk does not belong to the upload with this identifier");
    public static readonly UploadError UploadFailed = new("upload_failed", 409, "This upload failed on the server and must be deleted and started again");
    public static readonly UploadError UploadNotFound = new("upload_not_found", 404, "No upload with this identifier");
    public static readonly UploadError FileNotReady = new("file_not_ready", 404, "The file is not complete yet");
    public static readonly UploadError InsufficientStorage = new("insufficient_storage", 507, "The server does not have room for this file now");
    public static readonly UploadError StorageUnavailable = new("storage_unavailable", 503, "The server could not store the data now");
    public static readonly UploadError UploadBusy = new("upload_busy", 503, "The upload is being changed by another request");
    public static readonly UploadError TooManyUploads = new("too_many_uploads", 429, "Too many unfinished uploads");
    public static readonly UploadError UploadRefused = new("upload_refused", 403, "The application refused this upload");
    public static readonly UploadError Unauthenticated = new("unauthenticated", 401, "Credentials are required");
    // Permanent (403): the same credentials will never be allowed this; resumable.js, tus-js-client and Fine Uploader stop.
    public static readonly UploadError OutOfScope = new("token_scope", 403, "The credentials do not allow this");
    public static readonly UploadError AuthorizationUnavailable = new("authorization_unavailable", 503, "The application could not be asked whether this upload may go on");
    public static readonly UploadError InternalError = new("internal_error", 500, "The server failed unexpectedly");

    // Byte-range protocols (tus, the IETF draft, Google-style, nginx, append).
    public static readonly UploadError OffsetMismatch = new("offset_mismatch", 409, "The offset does not match what the server has stored");
    public static readonly UploadError BeyondLength = new("beyond_length", 400, "The data goes past the upload's length");
    public static readonly UploadError LengthConflict = new("length_conflict", 400, "The length disagrees with what the upload already declared or stored");
    public static readonly UploadError LengthRequired = new("length_required", 400, "The upload's length is needed here");
    public static readonly UploadError ChecksumMismatch = new("checksum_mismatch", 400, "The data does not match its checksum; nothing of it was kept");
    public static readonly UploadError UnsupportedChecksum = new("unsupported_checksum", 400, "The checksum algorithm is not supported");
    public static readonly UploadError WrongProtocol = new("wrong_protocol", 409, "The upload belongs to another protocol");
    public static readonly UploadError UploadLocked = new("upload_locked", 423, "Another request is writing to this upload");
    public static readonly UploadError Superseded = new("request_superseded", 409, "A newer request for this upload took over");
    public static readonly UploadError UploadComplete = new("upload_complete", 409, "The upload is already complete");
    public static readonly UploadError UploadNotWritable = new("upload_not_writable", 403, "This upload cannot be written to");
    public static readonly UploadError InvalidConcatenation = new("invalid_concatenation", 400, "The concatenation names uploads that cannot be joined");
    public static readonly UploadError PartInUse = new("part_in_use", 409, "A partial upload already belongs to another concatenation");
    public static readonly UploadError QuotaExceeded = new("quota_exceeded", 403, "The file is larger than your credentials allow");
    public static readonly UploadError StorageQuotaExceeded = new("storage_quota_exceeded", 507, "You hold as much unfinished data as you may");
    // Permanent (403): retrying frees nothing; deleting finished files (or their retention) does.
    public static readonly UploadError CompletedFilesQuotaExceeded = new("completed_files_quota_exceeded", 403, "You keep as many finished files as you may");
    public static readonly UploadError CompletedBytesQuotaExceeded = new("completed_bytes_quota_exceeded", 403, "You keep as many bytes in files as you may");
    public static readonly UploadError UnsupportedMediaType = new("unsupported_media_type", 415, "The request body has the wrong Content-Type");
    public static readonly UploadError UnsupportedVersion = new("unsupported_version", 412, "The protocol version is not supported");
    public static readonly UploadError MethodNotAllowed = new("method_not_allowed", 405, "The method is not allowed here");
    public static readonly UploadError UploadExpired = new("upload_expired", 410, "The upload expired and was removed");
}

/// <summary>Thrown by the engine for every refusal; carries a catalog entry and a sentence a person can act on.</summary>
public sealed class UploadException : Exception
{
    public UploadException(UploadError error, string detail, Exception? inner = null)
        : base(detail, inner)
    {
        Error = error;
    }

    public UploadError Error { get; }

    /// <summary>Seconds a client should wait before retrying, for transient errors.</summary>
    public int? RetryAfterSeconds { get; init; }

    /// <summary>The offset the server has stored, for <c>offset_mismatch</c> and the like (protocols report it).</summary>
    public long? Offset { get; init; }
}
