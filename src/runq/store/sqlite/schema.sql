-- runq SQLite schema as a fresh database has it (all migrations applied)
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    task          TEXT    NOT NULL,
    args          BLOB    NOT NULL,  -- msgpack [args, kwargs]
    queue         TEXT    NOT NULL,
    priority      INTEGER NOT NULL DEFAULT 0,
    state         TEXT    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_at        REAL    NOT NULL,
    timeout       REAL,
    key           TEXT,
    result        BLOB,              -- msgpack
    error         BLOB,              -- msgpack ErrorInfo
    worker        TEXT,
    fence         INTEGER NOT NULL DEFAULT 0,
    lease_until   REAL,
    submitted_at  REAL    NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    backoff       REAL               -- base of the retry back-off, seconds (NULL: default)
);

-- claim order inside a queue: priority desc, run_at, id (only ready jobs are indexed)
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = 'scheduled';
CREATE INDEX jobs_running ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_state ON jobs (state, queue);
CREATE UNIQUE INDEX jobs_key ON jobs (key) WHERE key IS NOT NULL;

CREATE TABLE attempts (
    job_id       INTEGER NOT NULL,
    fence        INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    worker       TEXT    NOT NULL,
    started_at   REAL    NOT NULL,
    finished_at  REAL,
    outcome      TEXT,              -- succeeded, failed, worker_lost, lease_expired,
                                    -- cancelled, released
    error        BLOB,              -- msgpack ErrorInfo
    PRIMARY KEY (job_id, fence)
) WITHOUT ROWID;

-- finished jobs by finish time, for the retention purge
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- each broker's connected workers, for a view of the whole cluster
CREATE TABLE brokers (
    id        TEXT PRIMARY KEY,
    snapshot  BLOB NOT NULL,  -- msgpack list of its workers as `runq workers` shows them
    seen_at   REAL NOT NULL
);

-- queues whose dispatch is paused
CREATE TABLE paused_queues (
    name       TEXT PRIMARY KEY,
    paused_at  REAL NOT NULL
);

-- periodic schedules (cron); each tick is fired once
CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    cron        TEXT    NOT NULL,
    tz          TEXT    NOT NULL,
    job         BLOB    NOT NULL,  -- msgpack JobSpec of each tick's job
    catch_up    TEXT    NOT NULL,  -- none, last, all
    paused      INTEGER NOT NULL DEFAULT 0,
    next_at     REAL    NOT NULL,  -- the next tick to fire (epoch seconds)
    last_at     REAL,              -- the last tick fired
    created_at  REAL    NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_at) WHERE paused = 0;

-- what running jobs write (lines and progress)
CREATE TABLE job_logs (
    job_id   INTEGER NOT NULL,
    seq      INTEGER NOT NULL,  -- 1, 2, ... over all the job's attempts
    fence    INTEGER NOT NULL,  -- the attempt that wrote it
    attempt  INTEGER NOT NULL,
    at       REAL    NOT NULL,
    stream   TEXT    NOT NULL,  -- stdout, stderr, log, runq
    text     TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE job_progress (
    job_id    INTEGER PRIMARY KEY,
    fence     INTEGER NOT NULL,  -- the attempt it belongs to
    progress  REAL    NOT NULL,  -- 0.0 to 1.0
    message   TEXT    NOT NULL,
    at        REAL    NOT NULL
);

-- unique jobs (JobSpec.unique_for; see 008_unique.sql)
ALTER TABLE jobs ADD COLUMN unique_key TEXT;    -- the identity twins share (model/unique.py)
ALTER TABLE jobs ADD COLUMN unique_until REAL;  -- twins submitted before then are merged
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

-- dependencies between jobs (JobSpec.after; see 010_deps.sql)
CREATE TABLE job_deps (
    job_id        INTEGER NOT NULL,  -- the dependent job (state 'waiting' until settled)
    parent_id     INTEGER NOT NULL,  -- a job it waits for
    pos           INTEGER NOT NULL,  -- the parent's place in JobSpec.after
    after_any     INTEGER NOT NULL,  -- 1: run once every parent ended, however it ended
    pass_results  INTEGER NOT NULL,  -- 1: kwargs["previous"] gets the parents' results
    PRIMARY KEY (job_id, parent_id)
) WITHOUT ROWID;
CREATE INDEX job_deps_parent ON job_deps (parent_id);

-- per-queue settings: retention overrides (see 011_retention.sql)
CREATE TABLE queue_settings (
    name        TEXT PRIMARY KEY,
    retention   REAL,           -- seconds finished jobs are kept; NULL: kept forever
    updated_at  REAL NOT NULL
);
CREATE INDEX jobs_finished_queue ON jobs (queue, finished_at) WHERE finished_at IS NOT NULL;

-- access tokens (see 012_tokens.sql)
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,  -- the token's public id (12 hex digits)
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,     -- hex SHA-256 of the secret
    scopes      TEXT NOT NULL,     -- JSON list: admin, read, submit:QUEUE, work:QUEUE
    created_at  REAL NOT NULL,
    expires_at  REAL,              -- NULL: never
    revoked_at  REAL               -- NULL: in force
);

-- files: inputs, artifacts and their blobs (see 013_files.sql)
ALTER TABLE jobs ADD COLUMN files TEXT;  -- JSON list of FileRef (JobSpec.files); NULL: none
CREATE TABLE blobs (
    id          TEXT PRIMARY KEY,   -- 32 hex digits
    name        TEXT    NOT NULL,
    size        INTEGER NOT NULL,   -- declared when the upload opened
    sha256      TEXT    NOT NULL,   -- declared when the upload opened
    kind        TEXT    NOT NULL,   -- input, artifact
    job_id      INTEGER,            -- an artifact's job (NULL for inputs)
    fence       INTEGER,            -- the attempt that made an artifact
    received    INTEGER NOT NULL DEFAULT 0,  -- set when the upload finishes (the .part
                                             -- file's size tells it before)
    complete    INTEGER NOT NULL DEFAULT 0,  -- 1: size and SHA-256 checked, readable
    kept        INTEGER NOT NULL DEFAULT 0,  -- 1: needed (an input a job names, an
                                             -- artifact of an accepted attempt)
    created_at  REAL    NOT NULL,
    updated_at  REAL    NOT NULL    -- created, finished or last written (within a minute)
);
-- the blobs the sweep looks at (most blobs are kept)
CREATE INDEX blobs_unkept ON blobs (updated_at) WHERE kept = 0;
-- the artifacts of a job, for the purge
CREATE INDEX blobs_job ON blobs (job_id) WHERE job_id IS NOT NULL;
-- the input blobs each job names
CREATE TABLE job_files (
    job_id   INTEGER NOT NULL,
    blob_id  TEXT    NOT NULL,
    PRIMARY KEY (job_id, blob_id)
) WITHOUT ROWID;
CREATE INDEX job_files_blob ON job_files (blob_id);
