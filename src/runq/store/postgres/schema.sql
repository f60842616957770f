-- runq PostgreSQL schema as a fresh database has it (all migrations applied)
CREATE TABLE jobs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task          TEXT             NOT NULL,
    args          BYTEA            NOT NULL,  -- msgpack [args, kwargs]
    queue         TEXT             NOT NULL,
    priority      INTEGER          NOT NULL DEFAULT 0,
    state         TEXT             NOT NULL,
    attempts      INTEGER          NOT NULL DEFAULT 0,
    max_attempts  INTEGER          NOT NULL,
    run_at        DOUBLE PRECISION NOT NULL,  -- epoch seconds
    timeout       DOUBLE PRECISION,
    key           TEXT,
    result        BYTEA,                      -- msgpack
    error         BYTEA,                      -- msgpack ErrorInfo
    worker        TEXT,
    fence         BIGINT           NOT NULL DEFAULT 0,
    lease_until   DOUBLE PRECISION,
    submitted_at  DOUBLE PRECISION NOT NULL,
    started_at    DOUBLE PRECISION,
    finished_at   DOUBLE PRECISION,
    backoff       DOUBLE PRECISION            -- base of the retry back-off, seconds (NULL: default)
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- claim order inside a queue: priority desc, run_at, id (only ready jobs are indexed)
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = 'scheduled';
CREATE INDEX jobs_running ON jobs (lease_until) WHERE state = 'running';
-- the dead-letter set, newest first (no index on state alone: it would tempt the
-- planner away from jobs_ready while a freshly filled table has no statistics)
CREATE INDEX jobs_failed ON jobs (id) WHERE state = 'failed';
CREATE UNIQUE INDEX jobs_key ON jobs (key) WHERE key IS NOT NULL;

CREATE TABLE attempts (
    job_id       BIGINT           NOT NULL,
    fence        BIGINT           NOT NULL,
    attempt      INTEGER          NOT NULL,
    worker       TEXT             NOT NULL,
    started_at   DOUBLE PRECISION NOT NULL,
    finished_at  DOUBLE PRECISION,
    outcome      TEXT,              -- succeeded, failed, worker_lost, lease_expired,
                                    -- cancelled, released
    error        BYTEA,             -- msgpack ErrorInfo
    PRIMARY KEY (job_id, fence)
);

-- wake-ups for other brokers (see 002_notify.sql)
CREATE FUNCTION runq_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    channel TEXT := 'runq.' || TG_TABLE_SCHEMA;
    payload TEXT;
BEGIN
    SELECT json_agg(DISTINCT queue)::text INTO payload FROM changed WHERE state = 'queued';
    IF payload IS NOT NULL THEN
        PERFORM pg_notify(channel, 'r' || CASE WHEN length(payload) > 7000 THEN '*' ELSE payload END);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT json_agg(id)::text INTO payload FROM changed
            WHERE state IN ('succeeded', 'failed', 'cancelled');
        IF payload IS NOT NULL THEN
            PERFORM pg_notify(channel, 'f' || CASE WHEN length(payload) > 7000 THEN '*' ELSE payload END);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION runq_notify();
CREATE TRIGGER jobs_notify_update AFTER UPDATE ON jobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION runq_notify();

-- finished jobs by finish time, for the retention purge
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- each broker's connected workers, for a view of the whole cluster
CREATE TABLE brokers (
    id        TEXT PRIMARY KEY,
    snapshot  BYTEA NOT NULL,  -- msgpack list of its workers as `runq workers` shows them
    seen_at   DOUBLE PRECISION NOT NULL
);

-- queues whose dispatch is paused
CREATE TABLE paused_queues (
    name       TEXT PRIMARY KEY,
    paused_at  DOUBLE PRECISION NOT NULL
);

-- what running jobs write (lines and progress)
CREATE TABLE job_logs (
    job_id   BIGINT           NOT NULL,
    seq      BIGINT           NOT NULL,  -- 1, 2, ... over all the job's attempts
    fence    BIGINT           NOT NULL,  -- the attempt that wrote it
    attempt  INTEGER          NOT NULL,
    at       DOUBLE PRECISION NOT NULL,
    stream   TEXT             NOT NULL,  -- stdout, stderr, log, runq
    text     TEXT             NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE job_progress (
    job_id    BIGINT PRIMARY KEY,
    fence     BIGINT           NOT NULL,  -- the attempt it belongs to
    progress  DOUBLE PRECISION NOT NULL,  -- 0.0 to 1.0
    message   TEXT             NOT NULL,
    at        DOUBLE PRECISION NOT NULL
);

-- periodic schedules (cron); each tick is fired once
CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    cron        TEXT             NOT NULL,
    tz          TEXT             NOT NULL,
    job         BYTEA            NOT NULL,  -- msgpack JobSpec of each tick's job
    catch_up    TEXT             NOT NULL,  -- none, last, all
    paused      BOOLEAN          NOT NULL DEFAULT false,
    next_at     DOUBLE PRECISION NOT NULL,  -- the next tick to fire (epoch seconds)
    last_at     DOUBLE PRECISION,           -- the last tick fired
    created_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_at) WHERE NOT paused;

-- unique jobs (JobSpec.unique_for; see 008_unique.sql)
ALTER TABLE jobs ADD COLUMN unique_key TEXT;                -- the identity twins share
ALTER TABLE jobs ADD COLUMN unique_until DOUBLE PRECISION;  -- twins before then are merged
-- the unfinished unique jobs by identity (most jobs are not unique: not indexed)
CREATE INDEX jobs_unique ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running');

-- flow control: concurrency keys and rate limits (see 009_flow.sql)
ALTER TABLE jobs ADD COLUMN concurrency_key TEXT;     -- jobs sharing it run at most
ALTER TABLE jobs ADD COLUMN max_concurrent INTEGER;   -- this many at a time
-- the queued and the running jobs with a concurrency key (most jobs have none)
CREATE INDEX jobs_keyed_queued ON jobs (queue)
    WHERE concurrency_key IS NOT NULL AND state = 'queued';
CREATE INDEX jobs_keyed_running ON jobs (concurrency_key)
    WHERE concurrency_key IS NOT NULL AND state = 'running';
-- token buckets: claims take a token per job started from a limited queue or task
CREATE TABLE rate_limits (
    scope       TEXT             NOT NULL,  -- queue, task
    name        TEXT             NOT NULL,
    count       DOUBLE PRECISION NOT NULL,  -- jobs a period, as given
    per         TEXT             NOT NULL,  -- the period: s, m or h
    rate        DOUBLE PRECISION NOT NULL,  -- tokens added per second (count / period)
    burst       DOUBLE PRECISION NOT NULL,  -- the most tokens the bucket holds
    tokens      DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, name)
);

-- dependencies between jobs (JobSpec.after; see 010_deps.sql)
CREATE TABLE job_deps (
    job_id        BIGINT  NOT NULL,  -- the dependent job (state 'waiting' until settled)
    parent_id     BIGINT  NOT NULL,  -- a job it waits for
    pos           INTEGER NOT NULL,  -- the parent's place in JobSpec.after
    after_any     BOOLEAN NOT NULL,  -- run once every parent ended, however it ended
    pass_results  BOOLEAN NOT NULL,  -- kwargs["previous"] gets the parents' results
    PRIMARY KEY (job_id, parent_id)
);
CREATE INDEX job_deps_parent ON job_deps (parent_id);

-- per-queue settings: retention overrides (see 011_retention.sql)
CREATE TABLE queue_settings (
    name        TEXT PRIMARY KEY,
    retention   DOUBLE PRECISION,  -- seconds finished jobs are kept; NULL: kept forever
    updated_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX jobs_finished_queue ON jobs (queue, finished_at) WHERE finished_at IS NOT NULL;

-- access tokens (see 012_tokens.sql)
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,  -- the token's public id (12 hex digits)
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,     -- hex SHA-256 of the secret
    scopes      TEXT NOT NULL,     -- JSON list: admin, read, submit:QUEUE, work:QUEUE
    created_at  DOUBLE PRECISION NOT NULL,
    expires_at  DOUBLE PRECISION,  -- NULL: never
    revoked_at  DOUBLE PRECISION   -- NULL: in force
);

-- files: inputs, artifacts and their blobs (see 013_files.sql)
ALTER TABLE jobs ADD COLUMN files TEXT;  -- JSON list of FileRef (JobSpec.files); NULL: none
CREATE TABLE blobs (
    id          TEXT PRIMARY KEY,           -- 32 hex digits
    name        TEXT             NOT NULL,
    size        BIGINT           NOT NULL,  -- declared when the upload opened
    sha256      TEXT             NOT NULL,  -- declared when the upload opened
    kind        TEXT             NOT NULL,  -- input, artifact
    job_id      BIGINT,                     -- an artifact's job (NULL for inputs)
    fence       BIGINT,                     -- the attempt that made an artifact
    received    BIGINT           NOT NULL DEFAULT 0,      -- bytes stored, in order
    complete    BOOLEAN          NOT NULL DEFAULT false,  -- size and SHA-256 checked
    kept        BOOLEAN          NOT NULL DEFAULT false,  -- needed (an input a job names,
                                                          -- an artifact of an accepted attempt)
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL   -- created, finished or last written
);
-- the blobs the sweep looks at (most blobs are kept)
CREATE INDEX blobs_unkept ON blobs (updated_at) WHERE NOT kept;
-- the artifacts of a job, for the purge
CREATE INDEX blobs_job ON blobs (job_id) WHERE job_id IS NOT NULL;
-- the input blobs each job names
CREATE TABLE job_files (
    job_id   BIGINT NOT NULL,
    blob_id  TEXT   NOT NULL,
    PRIMARY KEY (job_id, blob_id)
);
CREATE INDEX job_files_blob ON job_files (blob_id);
-- the bytes: each chunk as it was written, at its offset in the blob
CREATE TABLE blob_chunks (
    blob_id   TEXT   NOT NULL,
    "offset"  BIGINT NOT NULL,
    data      BYTEA  NOT NULL,
    PRIMARY KEY (blob_id, "offset")
);
-- files are often compressed already: stored out of line without compression
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
