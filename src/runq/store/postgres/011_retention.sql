-- runq PostgreSQL schema, version 11: per-queue settings (a retention that overrides
-- the broker's --retention) and finished jobs by queue and finish time, for its purge
CREATE TABLE queue_settings (
    name        TEXT PRIMARY KEY,
    retention   DOUBLE PRECISION,  -- seconds finished jobs are kept; NULL: kept forever
    updated_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX jobs_finished_queue ON jobs (queue, finished_at) WHERE finished_at IS NOT NULL;
