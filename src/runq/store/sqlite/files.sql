-- Files (013_files.sql): blobs, the input files of jobs, their purge and their sweep.
-- Each block starts with "-- name: NAME". The bytes are files (store/sqlite/blobdir.py).

-- name: create_blob
INSERT INTO blobs (id, name, size, sha256, kind, job_id, fence, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
ON CONFLICT (id) DO NOTHING;

-- name: blob
SELECT id, name, size, sha256, kind, created_at, received, complete, job_id, fence
FROM blobs WHERE id = ?;

-- name: touch_blob
-- An upload in progress, written to lately (at most once a minute: the sweep's clock).
UPDATE blobs SET updated_at = ? WHERE id = ? AND complete = 0;

-- name: blob_finished
UPDATE blobs SET complete = 1, received = size, updated_at = ? WHERE id = ? AND complete = 0;

-- name: blob_dropped
UPDATE blobs SET received = 0, updated_at = ? WHERE id = ? AND complete = 0;

-- name: stored_bytes
SELECT coalesce(sum(size), 0) FROM blobs;

-- name: named_inputs
-- ? blob ids (JSON array): the complete inputs among them, with their size and SHA-256.
SELECT id, size, sha256 FROM blobs
WHERE id IN (SELECT value FROM json_each(?)) AND kind = 'input' AND complete = 1;

-- name: keep_inputs
UPDATE blobs SET kept = 1 WHERE id IN (SELECT value FROM json_each(?)) AND kept = 0;

-- name: set_files
UPDATE jobs SET files = ? WHERE id = ?;

-- name: link_file
INSERT INTO job_files (job_id, blob_id) VALUES (?, ?) ON CONFLICT DO NOTHING;

-- name: purge_links
-- ? purged jobs (JSON array): their links go; returns the inputs they named.
DELETE FROM job_files WHERE job_id IN (SELECT value FROM json_each(?)) RETURNING blob_id;

-- name: purge_artifacts
DELETE FROM blobs WHERE job_id IN (SELECT value FROM json_each(?)) RETURNING id;

-- name: drop_unnamed
-- ? inputs (JSON array) whose jobs were purged: those no job names any more go.
DELETE FROM blobs
WHERE id IN (SELECT value FROM json_each(?)) AND kind = 'input'
  AND NOT EXISTS (SELECT 1 FROM job_files AS f WHERE f.blob_id = blobs.id)
RETURNING id;

-- name: keep_artifacts
-- Complete artifacts of finished jobs whose attempt's report was accepted are kept. Both
-- statements start from the blobs not kept (few) and look each one's job up by id.
UPDATE blobs SET kept = 1
WHERE id IN (SELECT b.id FROM blobs AS b INDEXED BY blobs_unkept
             WHERE b.kept = 0 AND b.kind = 'artifact' AND b.complete = 1
               AND (SELECT j.state FROM jobs AS j WHERE j.id = b.job_id)
                   IN ('succeeded', 'failed', 'cancelled')
               AND EXISTS (SELECT 1 FROM attempts AS a
                           WHERE a.job_id = b.job_id AND a.fence = b.fence
                             AND a.outcome IN ('succeeded', 'failed')));

-- name: sweep_blobs
-- ?1 cutoff (now - grace), ?2 uploads written since then (JSON array), ?3 limit: blobs
-- nobody needs. Uploads left unfinished, inputs no job named, artifacts of jobs that
-- are gone (purged with their attempts), and of attempts whose report was not accepted
-- once their job finished.
DELETE FROM blobs
WHERE id IN (SELECT b.id FROM blobs AS b INDEXED BY blobs_unkept
             WHERE b.kept = 0 AND b.id NOT IN (SELECT value FROM json_each(?2))
               AND (((b.kind = 'input' OR b.complete = 0) AND b.updated_at < ?1)
                    OR (b.kind = 'artifact'
                        AND coalesce((SELECT j.state FROM jobs AS j WHERE j.id = b.job_id),
                                     'gone') IN ('gone', 'succeeded', 'failed', 'cancelled')
                        AND NOT EXISTS (SELECT 1 FROM attempts AS a
                                        WHERE a.job_id = b.job_id AND a.fence = b.fence
                                          AND a.outcome IN ('succeeded', 'failed'))))
             LIMIT ?3)
RETURNING id;

-- name: blob_ids
-- ? blob ids (JSON array): those that have a row.
SELECT id FROM blobs WHERE id IN (SELECT value FROM json_each(?));
