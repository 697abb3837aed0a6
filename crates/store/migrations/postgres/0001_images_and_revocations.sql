CREATE TABLE images (
    name        TEXT        NOT NULL PRIMARY KEY,
    mime        TEXT        NOT NULL,
    size        BIGINT      NOT NULL CHECK (size >= 0),
    data_base64 TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX images_created_at ON images (created_at);

CREATE TABLE revoked_tokens (
    jti        TEXT        NOT NULL PRIMARY KEY,
    revoked_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
