-- runq SQLite schema, version 7: what running jobs write (lines and progress)
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
