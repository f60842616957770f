-- runq SQLite schema, version 4: each broker's connected workers, for a view of the whole cluster
CREATE TABLE brokers (
    id        TEXT PRIMARY KEY,
    snapshot  BLOB NOT NULL,  -- msgpack list of its workers as `runq workers` shows them
    seen_at   REAL NOT NULL
);
