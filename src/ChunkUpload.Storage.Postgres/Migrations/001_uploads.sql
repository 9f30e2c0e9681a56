-- Uploads, the journal of their stored ranges, and the completion outbox.
CREATE TABLE uploads (
    key_hash          text        PRIMARY KEY,
    owner             text        NOT NULL,
    client            text        NOT NULL,
    id                text        NOT NULL,
    protocol          text        NOT NULL,
    state             text        NOT NULL,
    length            bigint      NULL,
    stored_bytes      bigint      NOT NULL DEFAULT 0,
    record            jsonb       NOT NULL,
    created_at        timestamptz NOT NULL,
    completed_at      timestamptz NULL,
    last_activity     timestamptz NOT NULL,
    completion_owner  text        NULL,
    completion_until  timestamptz NULL
);
CREATE INDEX uploads_client_state ON uploads (client, state);
CREATE INDEX uploads_owner_created ON uploads (owner, created_at DESC);
CREATE INDEX uploads_state_completed ON uploads (state, completed_at);
CREATE INDEX uploads_state_activity ON uploads (state, last_activity);

CREATE TABLE upload_ranges (
    key_hash text   NOT NULL REFERENCES uploads (key_hash) ON DELETE CASCADE,
    "offset" bigint NOT NULL,
    length   bigint NOT NULL,
    PRIMARY KEY (key_hash, "offset", length)
);

CREATE TABLE outbox (
    id           text        PRIMARY KEY,
    payload      jsonb       NOT NULL,
    completed_at timestamptz NOT NULL,
    locked_until timestamptz NULL
);
