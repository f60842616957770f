-- runq PostgreSQL schema, version 13: files (model/files.py). A job's input files, the
-- blobs of inputs and artifacts, and their bytes in chunks (so every broker can serve
-- every file)
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
