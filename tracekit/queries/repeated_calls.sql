-- The same tool called with the same arguments again and again in one run (tight loops).
-- param: min_repeats int = 3
SELECT run_id, tenant, name AS tool, count(*) AS calls, min(step) AS first_step,
       max(step) AS last_step, min(ts) AS first_call, max(ts) AS last_call, any_value(args) AS args
FROM events
WHERE kind = 'tool_call'
GROUP BY run_id, tenant, name, args
HAVING count(*) >= $min_repeats
ORDER BY calls DESC, run_id, tool
