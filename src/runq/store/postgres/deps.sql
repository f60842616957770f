-- Named queries of dependencies between jobs (JobSpec.after; model/deps.py).

-- name: parent_states
-- FOR SHARE: a parent cannot end between this read and the submit's commit, so its end
-- either shows here or finds the new dependents when it settles them.
SELECT id, state FROM jobs WHERE id = ANY($1::bigint[]) ORDER BY id FOR SHARE;

-- name: add_deps
INSERT INTO job_deps (job_id, parent_id, pos, after_any, pass_results)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::boolean[], $5::boolean[]);

-- name: dependents
-- The waiting jobs that depend on any of $1, locked: of two parents that end at once
-- in two transactions, the second to lock sees the first's end (READ COMMITTED).
SELECT id FROM jobs
WHERE id IN (SELECT job_id FROM job_deps WHERE parent_id = ANY($1::bigint[]))
  AND state = 'waiting'
ORDER BY id FOR UPDATE;

-- name: parents_of
-- A purged parent had finished, and had succeeded unless its dependent runs after any.
SELECT d.parent_id, coalesce(p.state, 'succeeded'), d.after_any, d.pass_results, p.result
FROM job_deps d LEFT JOIN jobs p ON p.id = d.parent_id
WHERE d.job_id = $1 ORDER BY d.pos;

-- name: after_of
SELECT parent_id FROM job_deps WHERE job_id = $1 ORDER BY pos;

-- name: args_of
SELECT args FROM jobs WHERE id = $1;

-- name: dep_ready
UPDATE jobs
SET state = CASE WHEN run_at > $1 THEN 'scheduled' ELSE 'queued' END,
    run_at = greatest(run_at, $1), args = coalesce($2, args)
WHERE id = $3 AND state = 'waiting'
RETURNING queue, state;

-- name: dep_cancel
UPDATE jobs SET state = 'cancelled', error = $1, finished_at = $2
WHERE id = $3 AND state = 'waiting';

-- name: purge_deps
DELETE FROM job_deps WHERE job_id = ANY($1::bigint[]);
