"""tracekit.testing: what a user's own agent tests use."""

from __future__ import annotations

from pathlib import Path

import tracekit
from tracekit._capture.state import PROCESS
from tracekit.testing import recording


def test_recording_sees_what_the_agent_did_and_restores_settings(tmp_path: Path) -> None:
    before = tracekit.configure(store=tmp_path / "outer")

    @tracekit.tool(writes=True)
    def refund(order_id: str, amount: float) -> str:
        return "ok"

    with recording(tmp_path / "inner") as rec:
        with tracekit.run(tenant="t1") as run:
            run.model_output("refunding", cost_usd=0.5)
            refund("O-1", 10.0)
            refund("O-1", 10.0)
        assert rec.count("SELECT count(*) FROM tool_calls WHERE tool = 'refund'") == 2
        assert rec.count("SELECT count(*) FROM tool_calls WHERE writes") == 2
        [summary] = rec.runs()
        assert summary["tenant"] == "t1" and summary["cost_usd"] == 0.5
        kinds = [e["kind"] for e in rec.events(run.run_id)]
        assert kinds == ["run_start", "model_output", "tool_call", "tool_result", "tool_call",
                         "tool_result", "run_end"]
    assert PROCESS.settings().store == before.store
    tracekit.shutdown()
