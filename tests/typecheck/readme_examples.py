"""The README's API examples, checked by mypy (``.ci/run``): every documented option of the
decorators and the configuration is accepted by their types. Not collected by pytest."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import tracekit


def _undo(order_id: str, amount: float) -> None: ...


@tracekit.tool
def lookup_order(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id}


@tracekit.tool(writes=True)
def send_email(to: str, body: str) -> bool:
    return True


@tracekit.tool(
    writes=True,
    destination="payments",
    amount=lambda order_id, amount: amount,
    currency="USD",
    reversible=True,
    compensate=_undo,
    idempotency_key=lambda order_id, amount: f"refund:{order_id}",
    retry_on=(TimeoutError,),
    action="refund",
    bounds={"amount": (0, 200)},
    name="issue_refund",
)
def issue_refund(order_id: str, amount: float) -> dict[str, Any]:
    return {"order_id": order_id, "amount": amount}


@tracekit.model(cost=lambda r: r["cost"], name="gpt-x")
def chat(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"content": "ok", "cost": 0.001}


@tracekit.entrypoint(secrets=("api_key",))
def handle_ticket(tenant: str, ticket: dict[str, Any], api_key: str = "") -> None:
    with tracekit.run(tenant=tenant, ticket=ticket["id"]) as run:
        reply: dict[str, Any] = chat([{"role": "user", "content": "hi"}])
        run.model_output(reply["content"], usage={"input_tokens": 3}, cost_usd=0.001)
        found: dict[str, Any] = lookup_order("O-1")
        refunded: dict[str, Any] = issue_refund(order_id=found["order_id"], amount=20.0)
        run.progress("refund issued", amount=refunded["amount"])
        when: datetime = tracekit.now()
        dice: float = tracekit.random()
        run.event("note", args={"when": when.isoformat(), "dice": dice})


def configure_and_contain() -> None:
    tracekit.configure(
        store="./.tracekit",
        release=tracekit.Release(model="gpt-x", prompt="v14", tools="v3"),
        redact={"keys": [r"x-customer-ssn"], "patterns": [r"\b\d{3}-\d{2}-\d{4}\b"]},
        guard=tracekit.Guard(
            max_steps=50,
            max_cost_usd=2.0,
            max_repeats=3,
            max_tool_error_rate=0.5,
            tenant_tools={"acme": ["lookup_order"]},
        ),
        control="sqlite",
    )
    try:
        handle_ticket("acme", {"id": "T-1"})
    except tracekit.Halted as halt:
        print(halt.level, halt.target, halt.signal, halt.value, halt.threshold)
    switched: tracekit.Switched = tracekit.halt("tenant", "acme", reason="refund loop")
    status: tracekit.Status = tracekit.status()
    print(switched.key, status.halts, tracekit.scope(tenant="acme").rows)
    plan: list[dict[str, Any]] = tracekit.compensate("run_01", execute=False)
    tracekit.unhalt("tenant", "acme")
    verdict: tracekit.Verdict = tracekit.replay("fixtures/incidents/incident-42")
    print(plan, verdict.describe(), tracekit.EventKind.TOOL_CALL, tracekit.LedgerStatus.FIRED)
