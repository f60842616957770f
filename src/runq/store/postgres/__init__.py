"""The PostgreSQL store: asyncpg, ``FOR UPDATE SKIP LOCKED`` claims, batch statements."""
