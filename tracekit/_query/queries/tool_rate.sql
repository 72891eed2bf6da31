-- Tool calls per run per minute, busiest first (a runaway calls fast).
-- param: min_calls int = 10
-- param: limit int = 1000
SELECT run_id, any_value(tenant) AS tenant, date_trunc('minute', ts) AS minute,
       count(*) AS tool_calls
FROM events
WHERE kind = 'tool_call'
GROUP BY run_id, minute
HAVING count(*) >= $min_calls
ORDER BY tool_calls DESC, run_id, minute
LIMIT $limit
