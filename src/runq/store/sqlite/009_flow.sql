-- runq SQLite schema, version 9: flow control (concurrency keys and rate limits)
ALTER TABLE jobs ADD COLUMN concurrency_key TEXT;     -- jobs sharing it run at most
ALTER TABLE jobs ADD COLUMN max_concurrent INTEGER;   -- this many at a time
-- the queued and the running jobs with a concurrency key (most jobs have none)
CREATE INDEX jobs_keyed_queued ON jobs (queue)
    WHERE concurrency_key IS NOT NULL AND state = 'queued';
CREATE INDEX jobs_keyed_running ON jobs (concurrency_key)
    WHERE concurrency_key IS NOT NULL AND state = 'running';
-- token buckets: claims take a token per job started from a limited queue or task
CREATE TABLE rate_limits (
    scope       TEXT NOT NULL,  -- queue, task
    name        TEXT NOT NULL,
    count       REAL NOT NULL,  -- jobs a period, as given
    per         TEXT NOT NULL,  -- the period: s, m or h
    rate        REAL NOT NULL,  -- tokens added per second (count / period)
    burst       REAL NOT NULL,  -- the most tokens the bucket holds
    tokens      REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;
