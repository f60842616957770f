-- Named queries of the SQLite store. Each block starts with "-- name: NAME".
-- Job rows are read with the column list of rows.JOB_COLUMNS, in that order.

-- name: insert
INSERT INTO jobs (task, args, queue, priority, state, max_attempts, run_at, timeout, key,
                  submitted_at, backoff)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING;

-- name: insert_plain
INSERT INTO jobs (task, args, queue, priority, state, max_attempts, run_at, timeout, key,
                  submitted_at, backoff)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: id_by_key
SELECT id FROM jobs WHERE key = ?;

-- name: last_id
SELECT seq FROM sqlite_sequence WHERE name = 'jobs';

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
RETURNING id, fence, task, args, attempts, max_attempts, timeout, priority, run_at, queue;

-- name: claim_ids
UPDATE jobs
SET state = 'running', worker = ?, fence = fence + 1, attempts = attempts + 1,
    lease_until = ?, started_at = ?, finished_at = NULL
WHERE state = 'queued' AND id IN (SELECT value FROM json_each(?))
RETURNING id, fence, task, args, attempts, max_attempts, timeout, priority, run_at, queue;

-- name: attempt_started
INSERT INTO attempts (job_id, fence, attempt, worker, started_at) VALUES (?, ?, ?, ?, ?);

-- name: attempt_ended
UPDATE attempts SET finished_at = ?, outcome = ?, error = ?
WHERE job_id = ? AND fence = ?;

-- name: attempts_of_worker_ended
UPDATE attempts SET finished_at = ?, outcome = ?, error = ?
WHERE (job_id, fence) IN (SELECT id, fence FROM jobs WHERE state = 'running' AND worker = ?);

-- name: attempts_expired_ended
UPDATE attempts SET finished_at = ?, outcome = ?, error = ?
WHERE (job_id, fence) IN (SELECT id, fence FROM jobs
                          WHERE state = 'running' AND lease_until < ?);

-- name: succeed
UPDATE jobs
SET state = 'succeeded', result = ?, error = NULL, finished_at = ?, lease_until = NULL
WHERE id = ? AND fence = ? AND worker = ? AND state = 'running';

-- name: running_attempt
SELECT attempts, max_attempts, queue, backoff FROM jobs
WHERE id = ? AND fence = ? AND worker = ? AND state = 'running';

-- name: fail_attempt
UPDATE jobs
SET state = ?, run_at = coalesce(?, run_at), error = ?, lease_until = NULL,
    finished_at = CASE WHEN ? = 'failed' THEN ? ELSE NULL END
WHERE id = ? AND fence = ? AND state = 'running';

-- name: release
UPDATE jobs
SET state = 'queued', attempts = attempts - 1, lease_until = NULL
WHERE id = ? AND fence = ? AND worker = ? AND state = 'running'
RETURNING queue;

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
RETURNING id, queue, state, worker;

-- name: promote
UPDATE jobs SET state = 'queued'
WHERE state = 'scheduled' AND run_at <= ?
RETURNING queue;

-- name: cancel
UPDATE jobs
SET state = 'cancelled', finished_at = ?, lease_until = NULL
WHERE id = ? AND state IN ('queued', 'scheduled', 'running');

-- name: retry_one
UPDATE jobs
SET state = 'queued', attempts = 0, run_at = ?, finished_at = NULL, lease_until = NULL
WHERE id = ? AND state = 'failed'
RETURNING queue;

-- name: retry_failed
UPDATE jobs
SET state = 'queued', attempts = 0, run_at = :now, finished_at = NULL, lease_until = NULL
WHERE state = 'failed' AND (:queue IS NULL OR queue = :queue)
RETURNING id, queue;

-- name: purge
DELETE FROM jobs
WHERE id IN (SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?
             ORDER BY finished_at LIMIT ?)
RETURNING id;

-- name: purge_attempts
DELETE FROM attempts WHERE job_id IN (SELECT value FROM json_each(?));

-- name: publish_workers
INSERT INTO brokers (id, snapshot, seen_at) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, seen_at = excluded.seen_at;

-- name: withdraw_workers
DELETE FROM brokers WHERE id = ?;

-- name: pause_queue
INSERT INTO paused_queues (name, paused_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING;

-- name: resume_queue
DELETE FROM paused_queues WHERE name = ?;

-- name: paused_queues
SELECT name FROM paused_queues;

-- name: worker_snapshots
SELECT id, snapshot FROM brokers WHERE seen_at >= ? ORDER BY id;

-- name: get
SELECT id, task, args, queue, priority, state, attempts, max_attempts, run_at, timeout, key,
       result, error, worker, fence, lease_until, submitted_at, started_at, finished_at, backoff
FROM jobs WHERE id = ?;

-- name: history
SELECT attempt, worker, fence, started_at, finished_at, outcome, error
FROM attempts WHERE job_id = ? ORDER BY fence;

-- name: counts
SELECT queue, state, count(*) FROM jobs GROUP BY state, queue;
