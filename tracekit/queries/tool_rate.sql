-- Tool calls per run per minute, busiest first (a runaway calls fast).
-- param: min_calls int = 1
SELECT run_id, tenant, date_trunc('minute', ts) AS minute, count(*) AS tool_calls,
       count(DISTINCT name) AS tools
FROM events
WHERE kind = 'tool_call'
GROUP BY ALL
HAVING count(*) >= $min_calls
ORDER BY tool_calls DESC, run_id, minute
