-- Timestamps are TEXT in sqlx's chrono encoding, as in 0001.

-- Stored functions: one row per name, one row per version. PUT adds a version and
-- keeps the old ones; calls use the latest.
CREATE TABLE functions (
    name           TEXT        NOT NULL PRIMARY KEY,
    latest_version BIGINT      NOT NULL CHECK (latest_version >= 1),
    created_at     TEXT        NOT NULL,
    updated_at     TEXT        NOT NULL
);

CREATE TABLE function_versions (
    name            TEXT        NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    version         BIGINT      NOT NULL CHECK (version >= 1),
    code            TEXT        NOT NULL,
    description     TEXT        NOT NULL,
    dependencies    TEXT        NOT NULL, -- JSON array of normalised requirements
    args            TEXT        NOT NULL, -- JSON array of argument specs
    parameters      TEXT        NOT NULL, -- JSON: the signature the code check reported
    max_concurrency BIGINT      NULL CHECK (max_concurrency >= 1),
    timeout_ms      BIGINT      NULL CHECK (timeout_ms >= 1),
    created_by      TEXT        NOT NULL,
    created_at      TEXT        NOT NULL,
    PRIMARY KEY (name, version)
);

-- Dependency environments, keyed by the hash of the dependency set (and the sandbox
-- image they extend). The image itself lives in the Docker engine.
CREATE TABLE environments (
    hash         TEXT        NOT NULL PRIMARY KEY,
    image        TEXT        NOT NULL,
    dependencies TEXT        NOT NULL, -- JSON array
    status       TEXT        NOT NULL CHECK (status IN ('building', 'ready', 'failed')),
    log          TEXT        NOT NULL,
    builder      TEXT        NOT NULL, -- the instance that builds or built it
    build_ms     BIGINT      NULL,
    updated_at   TEXT        NOT NULL
);

CREATE TABLE tasks (
    id               TEXT        NOT NULL PRIMARY KEY,
    function_name    TEXT        NOT NULL,
    function_version BIGINT      NOT NULL,
    status           TEXT        NOT NULL CHECK (status IN
                         ('QUEUED', 'RUNNING', 'DONE', 'FAILED', 'TIMEOUT', 'CANCELLED')),
    args             TEXT        NOT NULL, -- JSON object
    result           TEXT        NULL,     -- JSON: the result object
    reason           TEXT        NULL,
    subject          TEXT        NOT NULL,
    runner           TEXT        NOT NULL, -- the instance that runs it
    created_at       TEXT        NOT NULL,
    started_at       TEXT        NULL,
    finished_at      TEXT        NULL
);

CREATE INDEX tasks_function_created ON tasks (function_name, created_at);
CREATE INDEX tasks_subject_created ON tasks (subject, created_at);
CREATE INDEX tasks_runner_status ON tasks (runner, status);
CREATE INDEX tasks_finished_at ON tasks (finished_at);
