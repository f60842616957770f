-- Files (013_files.sql): blobs and their bytes in chunks, the input files of jobs, their
-- purge and their sweep. Each block starts with "-- name: NAME". See blobs.py.

-- name: create_blob
INSERT INTO blobs (id, name, size, sha256, kind, job_id, fence, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
ON CONFLICT (id) DO NOTHING;

-- name: blob
SELECT id, name, size, sha256, kind, created_at, received, complete, job_id, fence
FROM blobs WHERE id = $1;

-- name: write_blob
-- $1 blob, $2 offset, $3 data, $4 now: the chunk is stored if $2 is what the blob holds
-- so far and it fits the declared size (a broker storing the same offset at the same
-- time waits for the row, then finds received moved on). Returns the bytes now stored;
-- no row: refused.
WITH b AS (
    UPDATE blobs SET received = received + length($3::bytea), updated_at = $4
    WHERE id = $1 AND NOT complete AND received = $2 AND received + length($3::bytea) <= size
    RETURNING id, received
), chunk AS (
    INSERT INTO blob_chunks (blob_id, "offset", data)
    SELECT id, $2, $3 FROM b WHERE length($3::bytea) > 0
)
SELECT received FROM b;

-- name: blob_pieces
-- $1 blob, $2 from offset, $3 how many: its chunks in order (to recompute a digest).
SELECT "offset", data FROM blob_chunks
WHERE blob_id = $1 AND "offset" >= $2 ORDER BY "offset" LIMIT $3;

-- name: blob_finished
UPDATE blobs SET complete = true, updated_at = $2
WHERE id = $1 AND NOT complete AND received = size
RETURNING id, name, size, sha256, kind, created_at, received, complete, job_id, fence;

-- name: blob_dropped
WITH b AS (
    UPDATE blobs SET received = 0, updated_at = $2 WHERE id = $1 AND NOT complete
    RETURNING id
)
DELETE FROM blob_chunks WHERE blob_id IN (SELECT id FROM b);

-- name: read_blob
-- $1 blob, $2 from, $3 to (exclusive): the bytes of a complete blob in that range, cut
-- from the chunks that overlap it (stored uncompressed, so only those slices are read).
SELECT substring(c.data FROM (greatest($2 - c."offset", 0) + 1)::int
                 FOR ($3 - greatest($2, c."offset"))::int)
FROM blob_chunks AS c
WHERE c.blob_id = $1 AND c."offset" < $3
  AND c."offset" >= (SELECT coalesce(max("offset"), 0) FROM blob_chunks
                     WHERE blob_id = $1 AND "offset" <= $2)
  AND EXISTS (SELECT 1 FROM blobs WHERE id = $1 AND complete)
ORDER BY c."offset";

-- name: stored_bytes
SELECT coalesce(sum(size), 0)::bigint FROM blobs;

-- name: lock_inputs
-- $1 blob ids: the complete inputs among them, locked in one order until the submit
-- commits (a sweep or purge that comes for one meanwhile skips it or waits).
SELECT id, size, sha256 FROM blobs
WHERE id = ANY($1::text[]) AND kind = 'input' AND complete
ORDER BY id FOR UPDATE;

-- name: keep_inputs
UPDATE blobs SET kept = true WHERE id = ANY($1::text[]) AND NOT kept;

-- name: set_files
-- $1 files (JSON), $2 job ids
UPDATE jobs AS j SET files = f.files
FROM unnest($1::text[], $2::bigint[]) AS f(files, id) WHERE j.id = f.id;

-- name: link_files
INSERT INTO job_files (job_id, blob_id)
SELECT * FROM unnest($1::bigint[], $2::text[])
ON CONFLICT DO NOTHING;

-- name: lock_blobs
SELECT id FROM blobs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE;

-- name: drop_unnamed
-- $1 inputs whose jobs were purged (locked first, so this sees every committed link):
-- those no job names any more go, with their bytes.
WITH gone AS (
    DELETE FROM blobs AS b
    WHERE id = ANY($1::text[]) AND kind = 'input'
      AND NOT EXISTS (SELECT 1 FROM job_files AS f WHERE f.blob_id = b.id)
    RETURNING id
), bytes AS (
    DELETE FROM blob_chunks WHERE blob_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone;

-- name: keep_artifacts
-- Complete artifacts of finished jobs whose attempt's report was accepted are kept. Both
-- statements start from the blobs not kept (few) and look each one's job up by id.
UPDATE blobs AS b SET kept = true
WHERE NOT b.kept AND b.kind = 'artifact' AND b.complete
  AND (SELECT j.state FROM jobs AS j WHERE j.id = b.job_id)
      IN ('succeeded', 'failed', 'cancelled')
  AND EXISTS (SELECT 1 FROM attempts AS a
              WHERE a.job_id = b.job_id AND a.fence = b.fence
                AND a.outcome IN ('succeeded', 'failed'));

-- name: sweep_blobs
-- $1 cutoff (now - grace), $2 limit: blobs nobody needs, with their bytes. Uploads left
-- unfinished, inputs no job named, artifacts of jobs that are gone (purged with their
-- attempts), and of attempts whose report was not accepted once their job finished. A
-- blob a submit holds is skipped; one it marked kept since this statement began is seen
-- kept and left.
WITH doomed AS (
    SELECT b.id FROM blobs AS b
    WHERE NOT b.kept
      AND (((b.kind = 'input' OR NOT b.complete) AND b.updated_at < $1)
           OR (b.kind = 'artifact'
               AND coalesce((SELECT j.state FROM jobs AS j WHERE j.id = b.job_id), 'gone')
                   IN ('gone', 'succeeded', 'failed', 'cancelled')
               AND NOT EXISTS (SELECT 1 FROM attempts AS a
                               WHERE a.job_id = b.job_id AND a.fence = b.fence
                                 AND a.outcome IN ('succeeded', 'failed'))))
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM blobs WHERE id IN (SELECT id FROM doomed) RETURNING id
), bytes AS (
    DELETE FROM blob_chunks WHERE blob_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone;
