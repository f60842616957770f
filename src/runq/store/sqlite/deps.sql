-- Named queries of dependencies between jobs (JobSpec.after; model/deps.py).

-- name: parent_states
SELECT id, state FROM jobs WHERE id IN (SELECT value FROM json_each(?));

-- name: add_dep
INSERT INTO job_deps (job_id, parent_id, pos, after_any, pass_results) VALUES (?, ?, ?, ?, ?);

-- name: dependents
-- the waiting jobs that depend on any of ? (JSON array of ids)
SELECT DISTINCT d.job_id FROM job_deps d JOIN jobs j ON j.id = d.job_id
WHERE d.parent_id IN (SELECT value FROM json_each(?)) AND j.state = 'waiting'
ORDER BY d.job_id;

-- name: parents_of
-- A purged parent had finished, and had succeeded unless its dependent runs after any.
SELECT d.parent_id, coalesce(p.state, 'succeeded'), d.after_any, d.pass_results, p.result
FROM job_deps d LEFT JOIN jobs p ON p.id = d.parent_id
WHERE d.job_id = ? ORDER BY d.pos;

-- name: after_of
SELECT parent_id FROM job_deps WHERE job_id = ? ORDER BY pos;

-- name: args_of
SELECT args FROM jobs WHERE id = ?;

-- name: dep_ready
UPDATE jobs
SET state = CASE WHEN run_at > ? THEN 'scheduled' ELSE 'queued' END,
    run_at = max(run_at, ?), args = coalesce(?, args)
WHERE id = ? AND state = 'waiting'
RETURNING queue, state;

-- name: dep_cancel
UPDATE jobs SET state = 'cancelled', error = ?, finished_at = ?
WHERE id = ? AND state = 'waiting';

-- name: purge_deps
DELETE FROM job_deps WHERE job_id IN (SELECT value FROM json_each(?));
