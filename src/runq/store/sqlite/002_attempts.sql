-- runq SQLite schema, version 2: attempt history and a back-off base per job
ALTER TABLE jobs ADD COLUMN backoff REAL;

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
