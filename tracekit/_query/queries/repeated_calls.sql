-- The same tool called with the same arguments again and again in one run (tight loops).
-- param: min_repeats int = 3
-- param: limit int = 1000
WITH loops AS (  -- counted on a hash of the arguments first; the details only for the loops
    SELECT run_id, name, hash(args) AS digest, count(*) AS calls
    FROM events
    WHERE kind = 'tool_call'
    GROUP BY run_id, name, digest
    HAVING count(*) >= $min_repeats
    ORDER BY calls DESC, run_id, name
    LIMIT $limit
)
SELECT l.run_id, any_value(e.tenant) AS tenant, l.name AS tool, l.calls,
       min(e.step) AS first_step, max(e.step) AS last_step, min(e.ts) AS first_call,
       max(e.ts) AS last_call, any_value(e.args) AS args
FROM loops AS l
JOIN events AS e ON e.run_id = l.run_id AND e.kind = 'tool_call' AND e.name = l.name
    AND hash(e.args) = l.digest
GROUP BY l.run_id, l.name, l.digest, l.calls
ORDER BY l.calls DESC, l.run_id, tool
