-- Named queries of flow control (concurrency keys, rate limits) in the PostgreSQL store.
-- Each block starts with "-- name: NAME". See store/postgres/flow.py.

-- name: flow_needed
-- $1 queues: does a claim from them meet a concurrency key or a rate limit? Most claims
-- meet neither and take the plain claim (which skips jobs with a key all the same).
SELECT EXISTS (SELECT 1 FROM jobs
               WHERE concurrency_key IS NOT NULL AND state = 'queued' AND queue = ANY($1::text[]))
    OR EXISTS (SELECT 1 FROM rate_limits
               WHERE scope = 'task' OR (scope = 'queue' AND name = ANY($1::text[])));

-- name: set_keys
-- $1 ids, $2 keys, $3 bounds
UPDATE jobs AS j SET concurrency_key = f.k, max_concurrent = f.m
FROM unnest($1::bigint[], $2::text[], $3::int[]) AS f(id, k, m)
WHERE j.id = f.id;

-- name: buckets
-- $1 queues: the rate limits a claim from them is under, locked (in one order) until
-- the claim commits, so two brokers never spend the same token.
SELECT scope, name, rate, burst, tokens, updated_at FROM rate_limits
WHERE scope = 'task' OR (scope = 'queue' AND name = ANY($1::text[]))
ORDER BY scope, name
FOR UPDATE;

-- name: spend
-- $1 tokens, $2 now, $3 scopes, $4 names
UPDATE rate_limits AS r SET tokens = s.tokens, updated_at = $2
FROM unnest($1::float8[], $3::text[], $4::text[]) AS s(tokens, scope, name)
WHERE r.scope = s.scope AND r.name = s.name;

-- name: flow_candidates
-- $1 queues, $2 tasks out of tokens, $3 limit: each queue's ready jobs in claim order,
-- without those whose concurrency key looks full, locked; rows another broker is
-- claiming are skipped.
SELECT c.id, c.queue, c.task, c.concurrency_key, c.max_concurrent, c.priority, c.run_at
FROM unnest($1::text[]) AS q(name)
CROSS JOIN LATERAL (
    SELECT id, queue, task, concurrency_key, max_concurrent, priority, run_at FROM jobs AS j
    WHERE state = 'queued' AND queue = q.name AND NOT (task = ANY($2::text[]))
      AND (concurrency_key IS NULL
           OR (SELECT count(*) FROM jobs AS r
               WHERE r.concurrency_key = j.concurrency_key AND r.state = 'running')
              < j.max_concurrent)
    ORDER BY priority DESC, run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
) AS c
ORDER BY c.priority DESC, c.run_at, c.id;

-- name: lock_keys
-- $1 keys: the transaction-long lock of each key that is free now (a key another claim
-- holds is left to that claim: nobody waits, so nobody deadlocks).
SELECT k FROM unnest($1::text[]) AS k
WHERE pg_try_advisory_xact_lock(hashtextextended('runq.ckey.' || current_schema() || '.' || k, 0));

-- name: concurrency_of
-- $1 job id: its concurrency key, its bound and how many jobs of the key run now.
SELECT j.concurrency_key, j.max_concurrent,
       (SELECT count(*) FROM jobs AS r
        WHERE r.concurrency_key = j.concurrency_key AND r.state = 'running')
FROM jobs AS j WHERE j.id = $1 AND j.concurrency_key IS NOT NULL;

-- name: running_by_key
-- $1 keys: how many jobs of each run now (read after their locks: claims that started
-- some have committed).
SELECT concurrency_key, count(*) FROM jobs
WHERE concurrency_key = ANY($1::text[]) AND state = 'running'
GROUP BY concurrency_key;

-- name: flow_claim
-- $1 worker, $2 ids, $3 now, $4 lease_until
WITH claimed AS (
    UPDATE jobs AS j
    SET state = 'running', worker = $1, fence = j.fence + 1, attempts = j.attempts + 1,
        lease_until = $4, started_at = $3, finished_at = NULL
    WHERE j.id = ANY($2::bigint[]) AND j.state = 'queued'
    RETURNING j.id, j.fence, j.task, j.args, j.attempts, j.max_attempts, j.timeout,
              j.priority, j.run_at, j.queue, j.files
), started AS (
    INSERT INTO attempts (job_id, fence, attempt, worker, started_at)
    SELECT id, fence, attempts, $1, $3 FROM claimed
)
SELECT * FROM claimed;

-- name: keyed_queues
SELECT DISTINCT queue FROM jobs WHERE concurrency_key IS NOT NULL AND state = 'queued';

-- name: set_rate_limit
INSERT INTO rate_limits (scope, name, count, per, rate, burst, tokens, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (scope, name) DO UPDATE
SET count = excluded.count, per = excluded.per, rate = excluded.rate, burst = excluded.burst,
    tokens = least(rate_limits.tokens, excluded.burst);

-- name: remove_rate_limit
DELETE FROM rate_limits WHERE scope = $1 AND name = $2;

-- name: rate_limits
SELECT scope, name, count, per, burst FROM rate_limits ORDER BY scope, name;
