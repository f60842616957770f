-- runq SQLite schema, version 10: dependencies between jobs (JobSpec.after)
CREATE TABLE job_deps (
    job_id        INTEGER NOT NULL,  -- the dependent job (state 'waiting' until settled)
    parent_id     INTEGER NOT NULL,  -- a job it waits for
    pos           INTEGER NOT NULL,  -- the parent's place in JobSpec.after
    after_any     INTEGER NOT NULL,  -- 1: run once every parent ended, however it ended
    pass_results  INTEGER NOT NULL,  -- 1: kwargs["previous"] gets the parents' results
    PRIMARY KEY (job_id, parent_id)
) WITHOUT ROWID;
CREATE INDEX job_deps_parent ON job_deps (parent_id);
