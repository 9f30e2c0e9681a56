-- How far the nodes have hashed each upload's bytes in order: the offset and the SHA-256 state there (OpenSSL's
-- SHA256_CTX, see ResumableSha256), so that the node holding the next bytes goes on from it. created_at ties a
-- checkpoint to one life of its upload: one deleted and started again under the same id starts without one.
CREATE TABLE upload_hash_checkpoints (
    key_hash   text        PRIMARY KEY REFERENCES uploads (key_hash) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    hashed_to  bigint      NOT NULL,
    state      bytea       NOT NULL
);
