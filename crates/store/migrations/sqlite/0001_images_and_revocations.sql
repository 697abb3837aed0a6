-- Timestamps are TEXT in sqlx's own chrono encoding (RFC 3339, UTC, "+00:00"), always
-- bound from Rust and never defaulted by SQLite: one fixed format keeps the lexical
-- order equal to the time order, which the range deletes and their indexes rely on.

CREATE TABLE images (
    name        TEXT    NOT NULL PRIMARY KEY,
    mime        TEXT    NOT NULL,
    size        BIGINT  NOT NULL CHECK (size >= 0),
    data_base64 TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

CREATE INDEX images_created_at ON images (created_at);

CREATE TABLE revoked_tokens (
    jti        TEXT NOT NULL PRIMARY KEY,
    revoked_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
