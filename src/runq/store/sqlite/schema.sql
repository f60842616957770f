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
