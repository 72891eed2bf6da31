-- Every guard decision: refusals, halts and alerts, with the signal, value and threshold.
-- param: run_id text = null
SELECT ts, run_id, tenant, step, name AS target, status,
       json_extract_string(attrs, '$.signal') AS signal,
       json_extract_string(attrs, '$.level') AS level,
       json_extract(attrs, '$.value') AS value,
       json_extract(attrs, '$.threshold') AS threshold, error AS reason
FROM events
WHERE kind = 'guard' AND ($run_id IS NULL OR run_id = $run_id)
ORDER BY ts, run_id, seq
