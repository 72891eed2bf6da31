-- Where each tenant first wrote to each destination, newest first (first-seen destinations).
-- param: tenant text = null
-- param: limit int = 1000
SELECT tenant, destination, min(ts) AS first_write, arg_min(run_id, ts) AS first_run,
       arg_min(tool, ts) AS tool, count(DISTINCT entry_id) AS writes
FROM ledger_history
WHERE destination IS NOT NULL AND status IN ('reserved', 'fired')
  AND ($tenant IS NULL OR tenant = $tenant)
GROUP BY tenant, destination
ORDER BY first_write DESC, tenant, destination
LIMIT $limit
