-- runq PostgreSQL schema, version 5: queues whose dispatch is paused
CREATE TABLE paused_queues (
    name       TEXT PRIMARY KEY,
    paused_at  DOUBLE PRECISION NOT NULL
);
