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

-- name: insert_unique
-- A unique job (or a job in a batch with one): the columns of insert, then its identity.
INSERT INTO jobs (task, args, queue, priority, state, max_attempts, run_at, timeout, key,
                  submitted_at, backoff, unique_key, unique_until)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING;

-- name: unique_held
-- ? identities (JSON array), ? now: their unfinished jobs still in their window, oldest
-- first. The conditions repeat the partial index's, word for word, so it may serve them;
-- INDEXED BY keeps the planner off jobs_state (every queued job).
SELECT unique_key, id, state FROM jobs INDEXED BY jobs_unique
WHERE unique_key IN (SELECT value FROM json_each(?))
  AND unique_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running')
  AND unique_until > ?
ORDER BY id;

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
RETURNING id, fence, task, args, attempts, max_attempts, timeout, priority, run_at, queue,
          files;

-- name: claim_ids
UPDATE jobs
SET state = 'running', worker = ?, fence = fence + 1, attempts = attempts + 1,
    lease_until = ?, started_at = ?, finished_at = NULL
WHERE state = 'queued' AND id IN (SELECT value FROM json_each(?))
RETURNING id, fence, task, args, attempts, max_attempts, timeout, priority, run_at, queue,
          files;

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
WHERE id = ? AND state IN ('waiting', 'queued', 'scheduled', 'running');

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
       result, error, worker, fence, lease_until, submitted_at, started_at, finished_at, backoff,
       files
FROM jobs WHERE id = ?;

-- name: history
SELECT attempt, worker, fence, started_at, finished_at, outcome, error
FROM attempts WHERE job_id = ? ORDER BY fence;

-- name: counts
SELECT queue, state, count(*) FROM jobs GROUP BY state, queue;

-- name: output_attempt
-- the attempt number of a job's current attempt, if (fence, worker) still hold it
SELECT attempts FROM jobs WHERE id = ? AND fence = ? AND worker = ?;

-- name: last_log_seq
SELECT coalesce(max(seq), 0) FROM job_logs WHERE job_id = ?;

-- name: append_log
INSERT INTO job_logs (job_id, seq, fence, attempt, at, stream, text)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: set_progress
INSERT INTO job_progress (job_id, fence, progress, message, at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (job_id) DO UPDATE SET fence = excluded.fence, progress = excluded.progress,
                                   message = excluded.message, at = excluded.at;

-- name: read_logs
SELECT seq, attempt, at, stream, text FROM job_logs
WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?;

-- name: progress_of
SELECT fence, progress, message FROM job_progress WHERE job_id = ?;

-- name: purge_logs
DELETE FROM job_logs WHERE job_id IN (SELECT value FROM json_each(?));

-- name: purge_progress
DELETE FROM job_progress WHERE job_id IN (SELECT value FROM json_each(?));

-- name: add_schedule
INSERT INTO schedules (name, cron, tz, job, catch_up, next_at, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO NOTHING;

-- name: upsert_schedule
-- A schedule declared again keeps its next tick unless its cron or zone changed.
INSERT INTO schedules (name, cron, tz, job, catch_up, next_at, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    next_at = CASE WHEN cron = excluded.cron AND tz = excluded.tz
                   THEN next_at ELSE excluded.next_at END,
    cron = excluded.cron, tz = excluded.tz, job = excluded.job, catch_up = excluded.catch_up
WHERE cron <> excluded.cron OR tz <> excluded.tz OR job <> excluded.job
      OR catch_up <> excluded.catch_up;

-- name: schedules
SELECT name, cron, tz, job, catch_up, paused, next_at, last_at, created_at
FROM schedules ORDER BY name;

-- name: schedule
SELECT name, cron, tz, job, catch_up, paused, next_at, last_at, created_at
FROM schedules WHERE name = ?;

-- name: remove_schedule
DELETE FROM schedules WHERE name = ?
RETURNING name, cron, tz, job, catch_up, paused, next_at, last_at, created_at;

-- name: pause_schedule
UPDATE schedules SET paused = 1 WHERE name = ?;

-- name: resume_schedule
-- Ticks that passed while it was paused are skipped: it goes on from the next one.
UPDATE schedules SET paused = 0, next_at = ? WHERE name = ? AND paused = 1;

-- name: due_schedules
SELECT name, cron, tz, job, catch_up, next_at FROM schedules
WHERE paused = 0 AND next_at <= ?
ORDER BY next_at LIMIT ?;

-- name: advance_schedule
-- Guarded by the tick read: a schedule is advanced (and its ticks fired) once.
UPDATE schedules SET next_at = ?, last_at = coalesce(?, last_at)
WHERE name = ? AND next_at = ? AND paused = 0;

-- -- per-queue retention and the purge by hand (011_retention.sql; retention_ops.py) --

-- name: purge_queue
-- ?1 before, ?2 limit, ?3 queue, ?4 states (a JSON list): oldest finished first.
DELETE FROM jobs
WHERE id IN (SELECT id FROM jobs WHERE queue = ?3 AND finished_at IS NOT NULL
             AND finished_at < ?1 AND state IN (SELECT value FROM json_each(?4))
             ORDER BY finished_at LIMIT ?2)
RETURNING id;

-- name: purge_except
-- ?1 before, ?2 limit, ?3 queues left out (a JSON list), ?4 states (a JSON list).
DELETE FROM jobs
WHERE id IN (SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?1
             AND queue NOT IN (SELECT value FROM json_each(?3))
             AND state IN (SELECT value FROM json_each(?4))
             ORDER BY finished_at LIMIT ?2)
RETURNING id;

-- name: retention_overrides
SELECT name, retention FROM queue_settings ORDER BY name;

-- name: set_retention
INSERT INTO queue_settings (name, retention, updated_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET retention = excluded.retention,
                                 updated_at = excluded.updated_at;

-- name: reset_retention
DELETE FROM queue_settings WHERE name = ?;

-- name: count_ahead
-- ?1 queue, ?2 priority, ?3 run_at, ?4 id: queued jobs claimed before this one (the
-- claim order of jobs_ready: priority first, then run_at, then id).
SELECT count(*) FROM jobs
WHERE state = 'queued' AND queue = ?1
  AND (priority > ?2 OR (priority = ?2 AND (run_at < ?3 OR (run_at = ?3 AND id < ?4))));
