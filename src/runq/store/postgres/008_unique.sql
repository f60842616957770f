-- runq PostgreSQL schema, version 8: unique jobs (JobSpec.unique_for)
ALTER TABLE jobs ADD COLUMN unique_key TEXT;                -- the identity twins share
ALTER TABLE jobs ADD COLUMN unique_until DOUBLE PRECISION;  -- twins before then are merged
-- the unfinished unique jobs by identity (most jobs are not unique: not indexed)
CREATE INDEX jobs_unique ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running');
