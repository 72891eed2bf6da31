-- Fan-out trees: for each root run, how many sub-agent runs, how deep and how wide.
-- param: min_sub_runs int = 1
WITH RECURSIVE tree AS (
    SELECT run_id, root_run_id, 0 AS depth FROM runs WHERE parent_run_id IS NULL
    UNION ALL
    SELECT r.run_id, t.root_run_id, t.depth + 1
    FROM runs AS r JOIN tree AS t ON r.parent_run_id = t.run_id
),
children AS (
    SELECT parent_run_id, count(*) AS n FROM runs
    WHERE parent_run_id IS NOT NULL GROUP BY parent_run_id
)
SELECT t.root_run_id, any_value(r.tenant) AS tenant, count(*) - 1 AS sub_runs,
       max(t.depth) AS depth, coalesce(max(c.n), 0) AS widest,
       round(sum(r.cost_usd), 6) AS cost_usd
FROM tree AS t
JOIN runs AS r ON r.run_id = t.run_id
LEFT JOIN children AS c ON c.parent_run_id = t.run_id
GROUP BY t.root_run_id
HAVING count(*) - 1 >= $min_sub_runs
ORDER BY sub_runs DESC, t.root_run_id
