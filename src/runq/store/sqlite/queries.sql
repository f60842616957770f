-- Named queries of the SQLite store. Each block starts with "-- name: NAME".

-- name: insert
INSERT INTO jobs (task, args, queue, priority, state, max_attempts, run_at, timeout, key,
                  submitted_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING;

-- name: insert_plain
INSERT INTO jobs (task, args, queue, priority, state, max_attempts, run_at, timeout, key,
                  submitted_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: id_by_key
SELECT id FROM jobs WHERE key = ?;

-- name: ready_in_queue
SELECT id, priority, run_at FROM jobs
WHERE state = 'queued' AND queue = ?
ORDER BY priority DESC, run_at, id
LIMIT ?;

-- name: claim_queue
UPDATE jobs
SET state = 'running', worker = ?, fence = fence + 1, attempts = attempts + 1,
    lease_until = ?, started_at = ?, finished_at = NULL
WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND queue = ?
             ORDER BY priority DESC, run_at, id LIMIT ?)
RETURNING id, fence, task, args, attempts, max_attempts, timeout, priority, run_at;

-- name: claim_ids
UPDATE jobs
SET state = 'running', worker = ?, fence = fence + 1, attempts = attempts + 1,
    lease_until = ?, started_at = ?, finished_at = NULL
WHERE state = 'queued' AND id IN (SELECT value FROM json_each(?))
RETURNING id, fence, task, args, attempts, max_attempts, timeout, priority, run_at;

-- name: succeed
UPDATE jobs
SET state = 'succeeded', result = ?, error = NULL, finished_at = ?, lease_until = NULL
WHERE id = ? AND fence = ? AND worker = ? AND state = 'running';

-- name: running_attempt
SELECT attempts, max_attempts, queue FROM jobs
WHERE id = ? AND fence = ? AND worker = ? AND state = 'running';

-- name: fail_attempt
UPDATE jobs
SET state = ?, run_at = coalesce(?, run_at), error = ?, lease_until = NULL,
    finished_at = CASE WHEN ? = 'failed' THEN ? ELSE NULL END
WHERE id = ? AND fence = ? AND state = 'running';

-- name: extend_lease
UPDATE jobs SET lease_until = ?
WHERE id = ? AND fence = ? AND worker = ? AND state = 'running';

-- name: requeue_worker
UPDATE jobs
SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
    error = ?, lease_until = NULL,
    finished_at = CASE WHEN attempts >= max_attempts THEN ? ELSE NULL END
WHERE state = 'running' AND worker = ?
RETURNING id, queue, state;

-- name: requeue_expired
UPDATE jobs
SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
    error = ?, lease_until = NULL,
    finished_at = CASE WHEN attempts >= max_attempts THEN ? ELSE NULL END
WHERE state = 'running' AND lease_until < ?
RETURNING id, queue, state;

-- name: promote
UPDATE jobs SET state = 'queued'
WHERE state = 'scheduled' AND run_at <= ?
RETURNING queue;

-- name: cancel
UPDATE jobs
SET state = 'cancelled', finished_at = ?, lease_until = NULL
WHERE id = ? AND state IN ('queued', 'scheduled', 'running');

-- name: get
SELECT * FROM jobs WHERE id = ?;

-- name: counts
SELECT queue, state, count(*) FROM jobs GROUP BY state, queue;
