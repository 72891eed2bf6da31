-- Runs that went on for steps with no progress mark since the last one (reflection spirals).
-- param: min_steps int = 5
SELECT run_id, any_value(tenant) AS tenant, max(step) AS steps,
       coalesce(max(step) FILTER (WHERE kind = 'progress'), 0) AS last_progress_step,
       max(step) - coalesce(max(step) FILTER (WHERE kind = 'progress'), 0)
           AS steps_without_progress,
       count(*) FILTER (WHERE kind = 'progress') AS progress_marks,
       round(coalesce(sum(cost_usd), 0), 6) AS cost_usd
FROM events
GROUP BY run_id
HAVING max(step) - coalesce(max(step) FILTER (WHERE kind = 'progress'), 0) >= $min_steps
ORDER BY steps_without_progress DESC, run_id
