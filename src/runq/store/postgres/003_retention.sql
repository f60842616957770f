-- runq PostgreSQL schema, version 3: finished jobs by finish time, for the retention purge
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
