-- What replicas of one service share beyond their data: settings made once for all of
-- them (the JWT secret), and the registry of replicas with their load and heartbeat.
CREATE TABLE settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE replicas (
    id           TEXT    NOT NULL PRIMARY KEY,
    address      TEXT    NOT NULL,
    instance     TEXT    NOT NULL,
    capacity     BIGINT  NOT NULL,
    running      BIGINT  NOT NULL,
    available    BOOLEAN NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
