-- runq SQLite schema, version 12: access tokens. Only a SHA-256 of each secret is kept;
-- once this table has a row, every connection and request must present a token
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,  -- the token's public id (12 hex digits)
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,     -- hex SHA-256 of the secret
    scopes      TEXT NOT NULL,     -- JSON list: admin, read, submit:QUEUE, work:QUEUE
    created_at  REAL NOT NULL,
    expires_at  REAL,              -- NULL: never
    revoked_at  REAL               -- NULL: in force
);
