-- runq PostgreSQL schema, version 10: dependencies between jobs (JobSpec.after)
CREATE TABLE job_deps (
    job_id        BIGINT  NOT NULL,  -- the dependent job (state 'waiting' until settled)
    parent_id     BIGINT  NOT NULL,  -- a job it waits for
    pos           INTEGER NOT NULL,  -- the parent's place in JobSpec.after
    after_any     BOOLEAN NOT NULL,  -- run once every parent ended, however it ended
    pass_results  BOOLEAN NOT NULL,  -- kwargs["previous"] gets the parents' results
    PRIMARY KEY (job_id, parent_id)
);
CREATE INDEX job_deps_parent ON job_deps (parent_id);
