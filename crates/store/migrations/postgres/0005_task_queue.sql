-- Tasks as a queue shared by the replicas: a task is accepted QUEUED with no runner
-- (runner = ''), a replica with room claims it (runner = its replica id, RUNNING), a
-- cancel asked anywhere is recorded for the replica that runs it, and a task keeps the
-- isolation its caller's token asked for, so that any replica runs it the same way.
ALTER TABLE tasks ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tasks ADD COLUMN isolation TEXT NOT NULL DEFAULT '';

-- The claim's search: the oldest queued task nobody owns.
CREATE INDEX tasks_queue ON tasks (created_at, id) WHERE status = 'QUEUED';
