-- runq PostgreSQL schema, version 6: periodic schedules (cron); each tick is fired once
CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    cron        TEXT             NOT NULL,
    tz          TEXT             NOT NULL,
    job         BYTEA            NOT NULL,  -- msgpack JobSpec of each tick's job
    catch_up    TEXT             NOT NULL,  -- none, last, all
    paused      BOOLEAN          NOT NULL DEFAULT false,
    next_at     DOUBLE PRECISION NOT NULL,  -- the next tick to fire (epoch seconds)
    last_at     DOUBLE PRECISION,           -- the last tick fired
    created_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_at) WHERE NOT paused;
