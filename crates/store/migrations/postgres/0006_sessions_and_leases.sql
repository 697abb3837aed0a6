-- Where each session lives (its owner replica holds its sandbox; the others forward
-- to it), and leases: what a replica holds against a limit the replicas share (a
-- function's max_concurrency, a subject's live sessions). A lease counts only while
-- its holder's heartbeat is fresh.
CREATE TABLE sessions (
    id           TEXT NOT NULL PRIMARY KEY,
    owner        TEXT NOT NULL,
    subject      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_owner ON sessions (owner);

CREATE TABLE leases (
    id          TEXT NOT NULL PRIMARY KEY,
    name        TEXT NOT NULL,
    holder      TEXT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX leases_name ON leases (name);
