-- Access tokens (012_tokens.sql): made, listed, looked up by id and revoked.

-- name: add_token
INSERT INTO tokens (id, name, digest, scopes, created_at, expires_at)
VALUES (?, ?, ?, ?, ?, ?);

-- name: tokens
SELECT id, name, scopes, created_at, expires_at, revoked_at FROM tokens ORDER BY created_at, id;

-- name: token_by_id
SELECT id, name, scopes, created_at, expires_at, revoked_at, digest FROM tokens WHERE id = ?;

-- name: tokens_named
SELECT id FROM tokens WHERE id = ?1 OR (name = ?1 AND revoked_at IS NULL);

-- name: revoke_token
UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?;

-- name: any_token
SELECT EXISTS (SELECT 1 FROM tokens);
