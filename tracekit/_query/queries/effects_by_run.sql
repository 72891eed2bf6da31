-- Side effects (latest ledger state) joined to the tool calls that made them, by run.
-- param: run_id text = null
-- param: limit int = 1000
WITH calls AS (
    SELECT run_id, call_id, step, args, ts AS called FROM events
    WHERE kind = 'tool_call' AND ($run_id IS NULL OR run_id = $run_id)
)
SELECT l.run_id, l.tenant, c.step, l.call_id, l.tool, l.destination, l.action, l.status,
       l.amount, l.currency, l.reversible, c.args, c.called, l.ts AS settled
FROM ledger AS l
LEFT JOIN calls AS c ON c.run_id = l.run_id AND c.call_id = l.call_id
WHERE $run_id IS NULL OR l.run_id = $run_id
ORDER BY l.run_id, c.step NULLS LAST, l.ts
LIMIT $limit
