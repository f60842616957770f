-- runq SQLite schema, version 6: periodic schedules (cron); each tick is fired once
CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    cron        TEXT    NOT NULL,
    tz          TEXT    NOT NULL,
    job         BLOB    NOT NULL,  -- msgpack JobSpec of each tick's job
    catch_up    TEXT    NOT NULL,  -- none, last, all
    paused      INTEGER NOT NULL DEFAULT 0,
    next_at     REAL    NOT NULL,  -- the next tick to fire (epoch seconds)
    last_at     REAL,              -- the last tick fired
    created_at  REAL    NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_at) WHERE paused = 0;
