-- Runs by release triple (model, prompt, tool contracts): volume, failures, halts and cost.
-- param: since_hours int = null
SELECT release_id, any_value(model_version) AS model, any_value(prompt_version) AS prompt,
       any_value(tools_version) AS tools, count(DISTINCT run_id) AS runs,
       count(*) FILTER (WHERE kind = 'run_end' AND status <> 'ok') AS runs_not_ok,
       count(*) FILTER (WHERE kind = 'guard' AND status = 'halted') AS guard_halts,
       round(coalesce(sum(cost_usd), 0), 4) AS cost_usd, min(ts) AS first_seen,
       max(ts) AS last_seen
FROM events
WHERE $since_hours IS NULL OR ts >= now() - to_hours($since_hours)
GROUP BY release_id
ORDER BY last_seen DESC
