-- runq SQLite schema, version 13: files (model/files.py). A job's input files, and the
-- blobs that hold the bytes of inputs and artifacts: the rows are here, the bytes in
-- files in the directory next to the database (<db>.files/; store/sqlite/blobdir.py)
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
