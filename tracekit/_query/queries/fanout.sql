-- Fan-out trees: for each root run, how many sub-agent runs, how deep and how wide.
-- param: min_sub_runs int = 1
WITH RECURSIVE starts AS (
    SELECT run_id, parent_run_id, tenant FROM events WHERE kind = 'run_start'
),
tree AS (
    SELECT run_id, run_id AS root_run_id, 0 AS depth FROM starts WHERE parent_run_id IS NULL
    UNION ALL
    SELECT s.run_id, t.root_run_id, t.depth + 1
    FROM starts AS s JOIN tree AS t ON s.parent_run_id = t.run_id
),
children AS (
    SELECT parent_run_id, count(*) AS n FROM starts
    WHERE parent_run_id IS NOT NULL GROUP BY parent_run_id
)
SELECT t.root_run_id, any_value(s.tenant) AS tenant, count(*) - 1 AS sub_runs,
       max(t.depth) AS depth, coalesce(max(c.n), 0) AS widest
FROM tree AS t
JOIN starts AS s ON s.run_id = t.run_id
LEFT JOIN children AS c ON c.parent_run_id = t.run_id
GROUP BY t.root_run_id
HAVING count(*) - 1 >= $min_sub_runs
ORDER BY sub_runs DESC, t.root_run_id
