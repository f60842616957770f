-- Named queries of the PostgreSQL store. Each block starts with "-- name: NAME".
-- Job rows are read with the column list of store/rows.JOB_COLUMNS, in that order.
-- Batches travel as arrays (unnest), so one statement handles a whole batch.

-- name: insert
-- Rows are inserted, and their ids drawn and returned, in the order of the arrays.
INSERT INTO jobs (task, args, queue, priority, state, max_attempts, run_at, timeout, key,
                  submitted_at, backoff)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::int[], $5::text[], $6::int[],
                     $7::float8[], $8::float8[], $9::text[], $10::float8[], $11::float8[])
ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING
RETURNING id, key;

-- name: next_ids
-- $1 how many: fresh job ids in one array, for a batch written with COPY. The sequence
-- is looked up once (OFFSET 0 keeps the planner from doing it again for every id).
SELECT array_agg(nextval(s.seq))
FROM (SELECT pg_get_serial_sequence('jobs', 'id')::regclass AS seq OFFSET 0) AS s
CROSS JOIN generate_series(1, $1);

-- name: insert_plain
-- A batch without idempotency keys skips the conflict check (about 10% faster).
INSERT INTO jobs (task, args, queue, priority, state, max_attempts, run_at, timeout, key,
                  submitted_at, backoff)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::int[], $5::text[], $6::int[],
                     $7::float8[], $8::float8[], $9::text[], $10::float8[], $11::float8[])
RETURNING id, key;

-- name: ids_by_key
SELECT key, id FROM jobs WHERE key = ANY($1::text[]);

-- name: insert_unique
-- A batch with unique jobs: the columns of insert, then each job's identity.
INSERT INTO jobs (task, args, queue, priority, state, max_attempts, run_at, timeout, key,
                  submitted_at, backoff, unique_key, unique_until)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::int[], $5::text[], $6::int[],
                     $7::float8[], $8::float8[], $9::text[], $10::float8[], $11::float8[],
                     $12::text[], $13::float8[])
ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING
RETURNING id, key;

-- name: lock_unique
-- $1 identities: one transaction-long lock each, taken in one order (so two brokers
-- with overlapping batches wait for each other instead of deadlocking). A broker that
-- waited reads the other's committed twin afterwards (unique_held is a new statement).
SELECT count(pg_advisory_xact_lock(h))
FROM (SELECT DISTINCT hashtextextended('runq.unique.' || current_schema() || '.' || k, 0) AS h
      FROM unnest($1::text[]) AS k ORDER BY 1) AS s;

-- name: unique_held
-- $1 identities, $2 now: their unfinished jobs still in their window, oldest first.
SELECT unique_key, id, state FROM jobs
WHERE unique_key = ANY($1::text[])
  AND unique_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running')
  AND unique_until > $2
ORDER BY id;

-- name: claim
-- $1 worker, $2 queues, $3 limit, $4 now, $5 lease_until. Each queue's best jobs come
-- from its own index range; rows another broker is claiming are skipped, not waited for.
WITH picked AS (
    SELECT c.id FROM unnest($2::text[]) AS q(name)
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at FROM jobs
        WHERE state = 'queued' AND queue = q.name
          AND concurrency_key IS NULL  -- a job with one starts only in a flow claim
        ORDER BY priority DESC, run_at, id
        LIMIT $3
        FOR UPDATE SKIP LOCKED
    ) AS c
    ORDER BY c.priority DESC, c.run_at, c.id
    LIMIT $3
), claimed AS (
    UPDATE jobs AS j
    SET state = 'running', worker = $1, fence = j.fence + 1, attempts = j.attempts + 1,
        lease_until = $5, started_at = $4, finished_at = NULL
    FROM picked WHERE j.id = picked.id
    RETURNING j.id, j.fence, j.task, j.args, j.attempts, j.max_attempts, j.timeout,
              j.priority, j.run_at, j.queue, j.files
), started AS (
    INSERT INTO attempts (job_id, fence, attempt, worker, started_at)
    SELECT id, fence, attempts, $1, $4 FROM claimed
)
SELECT * FROM claimed;

-- name: running_for_failure
-- $1 ids, $2 fences, $3 worker: the attempts a failure report may end, locked.
SELECT j.id, j.fence, j.attempts, j.max_attempts, j.queue, j.backoff
FROM jobs AS j JOIN unnest($1::bigint[], $2::bigint[]) AS o(id, fence)
     ON j.id = o.id AND j.fence = o.fence
WHERE j.worker = $3 AND j.state = 'running'
ORDER BY j.id
FOR UPDATE OF j;

-- name: report
-- One row per outcome: $1 ids, $2 fences, $3 new states, $4 results, $5 errors,
-- $6 run_at (retries), $7 finished_at; $8 worker, $9 now.
WITH o AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bytea[], $5::bytea[],
                         $6::float8[], $7::float8[])
        AS o(id, fence, state, result, error, run_at, finished_at)
), ended AS (
    UPDATE jobs AS j
    SET state = o.state,
        result = CASE WHEN o.state = 'succeeded' THEN o.result ELSE j.result END,
        error = o.error, run_at = coalesce(o.run_at, j.run_at),
        finished_at = o.finished_at, lease_until = NULL
    FROM o
    WHERE j.id = o.id AND j.fence = o.fence AND j.worker = $8 AND j.state = 'running'
    RETURNING j.id, j.fence, j.state, j.queue, j.error
), history AS (
    UPDATE attempts AS a
    SET finished_at = $9, error = e.error,
        outcome = CASE WHEN e.state = 'succeeded' THEN 'succeeded' ELSE 'failed' END
    FROM ended AS e WHERE a.job_id = e.id AND a.fence = e.fence
)
SELECT id, fence, state, queue FROM ended;

-- name: release
-- $1 worker, $2 ids, $3 fences, $4 now: the attempt does not count.
WITH r AS (
    SELECT * FROM unnest($2::bigint[], $3::bigint[]) AS r(id, fence)
), released AS (
    UPDATE jobs AS j
    SET state = 'queued', attempts = j.attempts - 1, lease_until = NULL
    FROM r
    WHERE j.id = r.id AND j.fence = r.fence AND j.worker = $1 AND j.state = 'running'
    RETURNING j.id, j.fence, j.queue
), history AS (
    UPDATE attempts AS a SET finished_at = $4, outcome = 'released', error = NULL
    FROM released AS x WHERE a.job_id = x.id AND a.fence = x.fence
)
SELECT DISTINCT queue FROM released;

-- name: extend_lease
-- $1 worker, $2 lease_until, $3 ids, $4 fences: returns the (id, fence) still held.
UPDATE jobs AS j SET lease_until = $2
FROM unnest($3::bigint[], $4::bigint[]) AS r(id, fence)
WHERE j.id = r.id AND j.fence = r.fence AND j.worker = $1 AND j.state = 'running'
RETURNING j.id, j.fence;

-- name: requeue_worker
-- $1 error, $2 now, $3 worker
WITH gone AS (
    UPDATE jobs
    SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
        error = $1::bytea, lease_until = NULL,
        finished_at = CASE WHEN attempts >= max_attempts THEN $2::float8 END
    WHERE state = 'running' AND worker = $3
    RETURNING id, fence, queue, state
), history AS (
    UPDATE attempts AS a SET finished_at = $2, outcome = 'worker_lost', error = $1
    FROM gone AS g WHERE a.job_id = g.id AND a.fence = g.fence
)
SELECT id, queue, state FROM gone ORDER BY id;

-- name: requeue_expired
-- $1 error, $2 now. Rows locked by another sweep or a report are left to them.
WITH due AS (
    SELECT id FROM jobs WHERE state = 'running' AND lease_until < $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    UPDATE jobs AS j
    SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END,
        error = $1::bytea, lease_until = NULL,
        finished_at = CASE WHEN j.attempts >= j.max_attempts THEN $2::float8 END
    FROM due WHERE j.id = due.id
    RETURNING j.id, j.fence, j.queue, j.state, j.worker
), history AS (
    UPDATE attempts AS a SET finished_at = $2, outcome = 'lease_expired', error = $1
    FROM gone AS g WHERE a.job_id = g.id AND a.fence = g.fence
)
SELECT id, queue, state, worker FROM gone ORDER BY id;

-- name: publish_workers
INSERT INTO brokers (id, snapshot, seen_at) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, seen_at = excluded.seen_at;

-- name: withdraw_workers
DELETE FROM brokers WHERE id = $1;

-- name: pause_queue
INSERT INTO paused_queues (name, paused_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING;

-- name: resume_queue
DELETE FROM paused_queues WHERE name = $1;

-- name: paused_queues
SELECT name FROM paused_queues;

-- name: worker_snapshots
SELECT id, snapshot FROM brokers WHERE seen_at >= $1 ORDER BY id;

-- name: old_transactions
-- $1 seconds: transactions of this database open longer than that, oldest first.
SELECT pid, extract(epoch FROM now() - xact_start)::float8 AS age, coalesce(state, '?') AS state
FROM pg_stat_activity
WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
  AND now() - xact_start > make_interval(secs => $1)
ORDER BY xact_start
LIMIT 3;

-- name: server_time
SELECT extract(epoch FROM clock_timestamp())::float8;

-- name: promote
WITH due AS (
    SELECT id FROM jobs WHERE state = 'scheduled' AND run_at <= $1
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j SET state = 'queued' FROM due WHERE j.id = due.id
RETURNING j.queue;

-- name: lock_job
SELECT id, task, args, queue, priority, state, attempts, max_attempts, run_at, timeout, key,
       result, error, worker, fence, lease_until, submitted_at, started_at, finished_at, backoff
FROM jobs WHERE id = $1 FOR UPDATE;

-- name: cancel
UPDATE jobs
SET state = 'cancelled', finished_at = $1, lease_until = NULL
WHERE id = $2 AND state IN ('waiting', 'queued', 'scheduled', 'running');

-- name: attempt_ended
UPDATE attempts SET finished_at = $1, outcome = $2, error = $3
WHERE job_id = $4 AND fence = $5;

-- name: retry_one
UPDATE jobs
SET state = 'queued', attempts = 0, run_at = $1, finished_at = NULL, lease_until = NULL
WHERE id = $2 AND state = 'failed'
RETURNING queue;

-- name: retry_failed
UPDATE jobs
SET state = 'queued', attempts = 0, run_at = $1, finished_at = NULL, lease_until = NULL
WHERE state = 'failed' AND ($2::text IS NULL OR queue = $2)
RETURNING id;

-- name: get
-- The job once per attempt (once with NULL attempt columns before its first claim):
-- one statement, so the row and its history come from one snapshot.
SELECT j.id, j.task, j.args, j.queue, j.priority, j.state, j.attempts, j.max_attempts,
       j.run_at, j.timeout, j.key, j.result, j.error, j.worker, j.fence, j.lease_until,
       j.submitted_at, j.started_at, j.finished_at, j.backoff, j.files,
       a.attempt, a.worker, a.fence, a.started_at, a.finished_at, a.outcome, a.error
FROM jobs AS j LEFT JOIN attempts AS a ON a.job_id = j.id
WHERE j.id = $1
ORDER BY a.fence;

-- name: counts
SELECT queue, state, count(*) FROM jobs GROUP BY state, queue;

-- name: schema_version
SELECT version FROM schema_version;

-- name: append_logs
-- $1 worker; $2 ids, $3 fences, $4 times, $5 streams, $6 texts: one element a line, each
-- job's lines in order. Lines of attempts the worker no longer holds are left out; the
-- rest are numbered on from the job's last line.
WITH line AS (
    SELECT l.job_id, l.fence, l.at, l.stream, l.text,
           row_number() OVER (PARTITION BY l.job_id ORDER BY l.n) AS k
    FROM unnest($2::bigint[], $3::bigint[], $4::float8[], $5::text[], $6::text[])
         WITH ORDINALITY AS l(job_id, fence, at, stream, text, n)
)
INSERT INTO job_logs (job_id, seq, fence, attempt, at, stream, text)
SELECT line.job_id,
       coalesce((SELECT max(seq) FROM job_logs AS o WHERE o.job_id = line.job_id), 0) + line.k,
       line.fence, j.attempts, line.at, line.stream, line.text
FROM line JOIN jobs AS j ON j.id = line.job_id AND j.fence = line.fence AND j.worker = $1
RETURNING job_id;

-- name: set_progress
-- $1 worker, $2 ids, $3 fences, $4 fractions, $5 messages, $6 now
INSERT INTO job_progress (job_id, fence, progress, message, at)
SELECT p.id, p.fence, p.progress, p.message, $6
FROM unnest($2::bigint[], $3::bigint[], $4::float8[], $5::text[])
     AS p(id, fence, progress, message)
JOIN jobs AS j ON j.id = p.id AND j.fence = p.fence AND j.worker = $1
ON CONFLICT (job_id) DO UPDATE SET fence = excluded.fence, progress = excluded.progress,
                                   message = excluded.message, at = excluded.at
RETURNING job_id;

-- name: read_logs
SELECT seq, attempt, at, stream, text FROM job_logs
WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3;

-- name: progress_of
SELECT fence, progress, message FROM job_progress WHERE job_id = $1;

-- name: add_schedule
INSERT INTO schedules (name, cron, tz, job, catch_up, next_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO NOTHING;

-- name: upsert_schedule
-- A schedule declared again keeps its next tick unless its cron or zone changed.
INSERT INTO schedules AS s (name, cron, tz, job, catch_up, next_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO UPDATE SET
    next_at = CASE WHEN s.cron = excluded.cron AND s.tz = excluded.tz
                   THEN s.next_at ELSE excluded.next_at END,
    cron = excluded.cron, tz = excluded.tz, job = excluded.job, catch_up = excluded.catch_up
WHERE s.cron <> excluded.cron OR s.tz <> excluded.tz OR s.job <> excluded.job
      OR s.catch_up <> excluded.catch_up;

-- name: schedules
SELECT name, cron, tz, job, catch_up, paused, next_at, last_at, created_at
FROM schedules ORDER BY name;

-- name: schedule
SELECT name, cron, tz, job, catch_up, paused, next_at, last_at, created_at
FROM schedules WHERE name = $1 FOR UPDATE;

-- name: remove_schedule
DELETE FROM schedules WHERE name = $1
RETURNING name, cron, tz, job, catch_up, paused, next_at, last_at, created_at;

-- name: pause_schedule
UPDATE schedules SET paused = true WHERE name = $1;

-- name: resume_schedule
-- Ticks that passed while it was paused are skipped: it goes on from the next one.
UPDATE schedules SET paused = false, next_at = $1 WHERE name = $2 AND paused;

-- name: due_schedules
-- A schedule another broker is firing is locked: skipped here, and advanced there.
SELECT name, cron, tz, job, catch_up, next_at FROM schedules
WHERE NOT paused AND next_at <= $1
ORDER BY next_at LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: advance_schedule
-- Guarded by the tick read: a schedule is advanced (and its ticks fired) once.
UPDATE schedules SET next_at = $1, last_at = coalesce($2, last_at)
WHERE name = $3 AND next_at = $4 AND NOT paused;

-- -- per-queue retention and the purge by hand (011_retention.sql; retention_ops.py) --

-- name: purge_queue
-- $1 before, $2 limit, $3 queue, $4 states: oldest finished first, with their history
-- and their artifacts; rows someone else holds are left for the next round. Returns how
-- many went and the input blobs they named (store/postgres/blobs.py drops those no job
-- names any more).
WITH gone AS (
    DELETE FROM jobs
    WHERE id IN (SELECT id FROM jobs WHERE queue = $3 AND finished_at IS NOT NULL
                 AND finished_at < $1 AND state = ANY($4::text[])
                 ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING id
), history AS (
    DELETE FROM attempts WHERE job_id IN (SELECT id FROM gone)
), logs AS (
    DELETE FROM job_logs WHERE job_id IN (SELECT id FROM gone)
), progress AS (
    DELETE FROM job_progress WHERE job_id IN (SELECT id FROM gone)
), deps AS (
    DELETE FROM job_deps WHERE job_id IN (SELECT id FROM gone)
), links AS (
    DELETE FROM job_files WHERE job_id IN (SELECT id FROM gone) RETURNING blob_id
), artifacts AS (
    DELETE FROM blobs WHERE job_id IN (SELECT id FROM gone) RETURNING id
), artifact_bytes AS (
    DELETE FROM blob_chunks WHERE blob_id IN (SELECT id FROM artifacts)
)
SELECT (SELECT count(*) FROM gone), (SELECT array_agg(DISTINCT blob_id) FROM links);

-- name: purge_except
-- $1 before, $2 limit, $3 queues left out, $4 states: as purge_queue, over every other
-- queue.
WITH gone AS (
    DELETE FROM jobs
    WHERE id IN (SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1
                 AND NOT (queue = ANY($3::text[])) AND state = ANY($4::text[])
                 ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING id
), history AS (
    DELETE FROM attempts WHERE job_id IN (SELECT id FROM gone)
), logs AS (
    DELETE FROM job_logs WHERE job_id IN (SELECT id FROM gone)
), progress AS (
    DELETE FROM job_progress WHERE job_id IN (SELECT id FROM gone)
), deps AS (
    DELETE FROM job_deps WHERE job_id IN (SELECT id FROM gone)
), links AS (
    DELETE FROM job_files WHERE job_id IN (SELECT id FROM gone) RETURNING blob_id
), artifacts AS (
    DELETE FROM blobs WHERE job_id IN (SELECT id FROM gone) RETURNING id
), artifact_bytes AS (
    DELETE FROM blob_chunks WHERE blob_id IN (SELECT id FROM artifacts)
)
SELECT (SELECT count(*) FROM gone), (SELECT array_agg(DISTINCT blob_id) FROM links);

-- name: retention_overrides
SELECT name, retention FROM queue_settings ORDER BY name;

-- name: set_retention
INSERT INTO queue_settings (name, retention, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET retention = excluded.retention,
                                 updated_at = excluded.updated_at;

-- name: reset_retention
DELETE FROM queue_settings WHERE name = $1;

-- name: count_ahead
-- $1 queue, $2 priority, $3 run_at, $4 id: queued jobs claimed before this one (the
-- claim order of jobs_ready: priority first, then run_at, then id).
SELECT count(*) FROM jobs
WHERE state = 'queued' AND queue = $1
  AND (priority > $2 OR (priority = $2 AND (run_at < $3 OR (run_at = $3 AND id < $4))));
