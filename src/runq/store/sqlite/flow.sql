-- Named queries of flow control (concurrency keys, rate limits) in the SQLite store.
-- Each block starts with "-- name: NAME". See store/sqlite/flow.py.

-- name: flow_needed
-- ? queues (JSON array), twice: does a claim from them meet a concurrency key or a rate
-- limit? Most claims meet neither and take the plain claim.
SELECT EXISTS (SELECT 1 FROM jobs INDEXED BY jobs_keyed_queued
               WHERE concurrency_key IS NOT NULL AND state = 'queued'
                 AND queue IN (SELECT value FROM json_each(?)))
    OR EXISTS (SELECT 1 FROM rate_limits
               WHERE scope = 'task' OR (scope = 'queue' AND name IN (SELECT value FROM json_each(?))));

-- name: set_keys
UPDATE jobs SET concurrency_key = ?, max_concurrent = ? WHERE id = ?;

-- name: buckets
-- ? queues (JSON array): the rate limits a claim from them is under.
SELECT scope, name, rate, burst, tokens, updated_at FROM rate_limits
WHERE scope = 'task' OR (scope = 'queue' AND name IN (SELECT value FROM json_each(?)));

-- name: spend
UPDATE rate_limits SET tokens = ?, updated_at = ? WHERE scope = ? AND name = ?;

-- name: flow_candidates
-- ? queue, ? tasks out of tokens (JSON array), ? limit: ready jobs in claim order,
-- without those whose concurrency key is already full.
SELECT id, queue, task, concurrency_key, max_concurrent, priority, run_at FROM jobs AS j
WHERE state = 'queued' AND queue = ?
  AND task NOT IN (SELECT value FROM json_each(?))
  AND (concurrency_key IS NULL
       OR (SELECT count(*) FROM jobs AS r INDEXED BY jobs_keyed_running
           WHERE r.concurrency_key = j.concurrency_key AND r.concurrency_key IS NOT NULL
             AND r.state = 'running') < j.max_concurrent)
ORDER BY priority DESC, run_at, id
LIMIT ?;

-- name: running_by_key
-- ? keys (JSON array): how many jobs of each run now.
SELECT concurrency_key, count(*) FROM jobs INDEXED BY jobs_keyed_running
WHERE concurrency_key IS NOT NULL AND state = 'running'
  AND concurrency_key IN (SELECT value FROM json_each(?))
GROUP BY concurrency_key;

-- name: concurrency_of
-- ? job id: its concurrency key, its bound and how many jobs of the key run now.
SELECT j.concurrency_key, j.max_concurrent,
       (SELECT count(*) FROM jobs AS r INDEXED BY jobs_keyed_running
        WHERE r.concurrency_key = j.concurrency_key AND r.state = 'running')
FROM jobs AS j WHERE j.id = ? AND j.concurrency_key IS NOT NULL;

-- name: keyed_queues
SELECT DISTINCT queue FROM jobs INDEXED BY jobs_keyed_queued
WHERE concurrency_key IS NOT NULL AND state = 'queued';

-- name: set_rate_limit
INSERT INTO rate_limits (scope, name, count, per, rate, burst, tokens, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (scope, name) DO UPDATE
SET count = excluded.count, per = excluded.per, rate = excluded.rate, burst = excluded.burst,
    tokens = min(rate_limits.tokens, excluded.burst), updated_at = rate_limits.updated_at;

-- name: remove_rate_limit
DELETE FROM rate_limits WHERE scope = ? AND name = ?;

-- name: rate_limits
SELECT scope, name, count, per, burst FROM rate_limits ORDER BY scope, name;
