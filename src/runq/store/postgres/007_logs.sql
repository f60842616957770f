-- runq PostgreSQL schema, version 7: what running jobs write (lines and progress)
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
