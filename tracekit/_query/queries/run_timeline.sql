-- Every decision of one run in order: prompts, outputs, tool calls and results, guard decisions.
-- param: run_id text
SELECT seq, step, ts, kind, name, call_id, status, cost_usd, args, output, error
FROM events
WHERE run_id = $run_id
ORDER BY seq
