-- Spend per tenant per time window (the guard's short-window spend bound, seen afterwards).
-- param: window_minutes int = 5
SELECT tenant, time_bucket(to_minutes($window_minutes), ts) AS window_start,
       round(sum(cost_usd), 6) AS spend_usd,
       count(*) FILTER (WHERE kind = 'model_output') AS model_outputs,
       count(DISTINCT run_id) AS runs
FROM events
WHERE cost_usd IS NOT NULL
GROUP BY ALL
ORDER BY spend_usd DESC, tenant, window_start
