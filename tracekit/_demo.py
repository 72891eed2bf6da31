"""The bundled demo: a simulated customer-support agent, a few healthy runs and one runaway.

No network and no model key: the "model" is a script that decides the next tool call from the
conversation so far. The runaway is the classic one — a refund that comes back ``pending`` and a
model that issues the same refund again and again, its context (and so its spend) growing each
step, with no progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from . import _config
from ._config import Release
from ._guard import Guard, Halted
from ._run import Run, run, tool

__all__ = ["DEMO_GUARD", "DEMO_RELEASE", "DemoResult", "run_demo"]

#: the bounds the demo installs: generous for a healthy support run, fatal to a refund loop
DEMO_GUARD = Guard(max_repeats=3, max_steps=25, max_steps_without_progress=10, max_cost_usd=0.05)

DEMO_RELEASE = Release(
    model="support-model-2026-10", prompt="support-v14", tools="support-tools-v3"
)

_PRICE_IN = 3e-6  # USD per input token
_PRICE_OUT = 15e-6  # USD per output token
_PAYMENTS_KEY = "sk-demo" + "0" * 24  # stands in for a real key: it must never reach the store

_TICKETS = (
    ("globex", "T-1001", "Where is my order O-5531?", "O-5531", None),
    ("initech", "T-1002", "My blender arrived broken, order O-7120.", "O-7120", 49.0),
    ("umbrella", "T-1003", "How do I reset my password?", None, None),
    ("globex", "T-1004", "Charged twice for order O-5602.", "O-5602", 19.5),
)
_RUNAWAY = ("acme", "T-4242", "Refund order O-9001, it never arrived.", "O-9001", 120.0)


@dataclass
class DemoResult:
    store: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    runaway: dict[str, Any] = field(default_factory=dict)


@tool
def lookup_order(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "status": "delivered", "total": 120.0, "currency": "USD"}


@tool
def search_kb(query: str) -> list[dict[str, str]]:
    return [{"article": "KB-12", "title": f"How to handle: {query[:40]}"}]


@tool(writes=True, destination="payments-api", currency="USD", reversible=True,
      amount=lambda order_id, amount, headers: amount)
def issue_refund(order_id: str, amount: float, headers: dict[str, str]) -> dict[str, Any]:
    status = "pending" if order_id == _RUNAWAY[3] else "issued"  # the processor never confirms
    return {"order_id": order_id, "amount": amount, "status": status}


@tool(writes=True, destination="customer-email", reversible=False)
def send_reply(ticket_id: str, text: str) -> dict[str, str]:
    return {"ticket_id": ticket_id, "status": "sent"}


def _model_turn(agent: Run, messages: list[dict[str, Any]], call: dict[str, Any] | None) -> None:
    """Record one model turn: the prompt, then an output that asks for ``call`` (or answers)."""
    agent.prompt(list(messages))
    tokens_in = sum(len(str(m["content"])) // 4 + 20 for m in messages)
    tokens_out = 40
    content = None if call else "Your issue is resolved. Anything else?"
    agent.model_output(
        content,
        tool_calls=[call] if call else None,
        usage={"input_tokens": tokens_in, "output_tokens": tokens_out},
        cost_usd=round(tokens_in * _PRICE_IN + tokens_out * _PRICE_OUT, 6),
        latency_ms=350.0,
    )


def _call(agent: Run, messages: list[dict[str, Any]], name: str, fn: Any, **args: Any) -> Any:
    _model_turn(agent, messages, {"name": name, "arguments": args})
    result = fn(**args)
    messages.append({"role": "tool", "name": name, "content": result})
    return result


def _healthy(tenant: str, ticket: str, text: str, order: str | None, refund: float | None) -> Run:
    with run(tenant=tenant, ticket=ticket) as agent:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": text},
        ]
        if order:
            _call(agent, messages, "lookup_order", lookup_order, order_id=order)
            agent.progress("order found")
        _research(agent, text)
        _call(agent, messages, "search_kb", search_kb, query=text)
        if order and refund:
            _call(agent, messages, "issue_refund", issue_refund, order_id=order, amount=refund,
                  headers={"Authorization": f"Bearer {_PAYMENTS_KEY}"})
            agent.progress("refund issued")
        _call(agent, messages, "send_reply", send_reply, ticket_id=ticket, text="Done: see KB-12.")
        agent.progress("customer answered")
        _model_turn(agent, messages, None)
    return agent


def _research(parent: Run, question: str) -> None:
    """A sub-agent run: the policy researcher the support agent consults."""
    with run(tenant=parent.tenant, parent=parent, role="policy-researcher") as sub:
        messages = [{"role": "user", "content": f"Which policy applies? {question}"}]
        _call(sub, messages, "search_kb", search_kb, query="refund policy")
        sub.progress("policy found")
        _model_turn(sub, messages, None)


def _runaway(steps: int) -> tuple[Run, int, Halted | None]:
    tenant, ticket, text, order, amount = _RUNAWAY
    refunds = 0
    agent = run(tenant=tenant, ticket=ticket)
    try:
        with agent:
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": "You are a support agent."},
                {"role": "user", "content": text},
            ]
            _call(agent, messages, "lookup_order", lookup_order, order_id=order)
            for _ in range(steps):  # "pending" reads as "not done yet": the model tries again
                _call(agent, messages, "issue_refund", issue_refund, order_id=order,
                      amount=amount, headers={"Authorization": f"Bearer {_PAYMENTS_KEY}"})
                refunds += 1
            agent.error(f"the demo stopped the loop itself after {steps} refunds (no guard)")
    except Halted as halt:
        return agent, refunds, halt
    return agent, refunds, None


def _summary(con: Any, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = con.execute(
        "SELECT run_id, tenant, status, steps, cost_usd, parent_run_id FROM runs "
        "WHERE run_id IN (SELECT unnest(?))", [run_ids],
    ).fetchall()
    keys = ("run_id", "tenant", "status", "steps", "cost_usd", "parent_run_id")
    return {r[0]: dict(zip(keys, r, strict=True)) for r in rows}


def run_demo(
    store: str | os.PathLike[str] | None = None, runaway_steps: int = 40, guarded: bool = True
) -> DemoResult:
    """Record the demo's runs into ``store`` (default: the configured store) and summarise them.

    With ``guarded`` (the default) every run is under DEMO_GUARD, and the runaway is contained.
    """
    from ._query import connect

    if runaway_steps < 1:
        raise ValueError("runaway_steps must be at least 1")
    settings = _config.configure(store=store, release=DEMO_RELEASE,
                                 guard=DEMO_GUARD if guarded else False, control="sqlite")
    healthy = [_healthy(*ticket) for ticket in _TICKETS]
    runaway, refunds, halt = _runaway(runaway_steps)
    _config.shutdown()
    ids = [r.run_id for r in healthy] + [runaway.run_id]
    with connect(settings.store) as con:
        info = _summary(con, ids)
    result = DemoResult(store=str(settings.store))
    for run_id in ids:
        row = dict(info[run_id])
        row["note"] = "runaway: same refund, again and again" if run_id == runaway.run_id else (
            "resolved (+1 sub-agent)")
        result.runs.append(row)
    with connect(settings.store) as con:
        fired, suppressed = con.execute(
            "SELECT count(*) FILTER (WHERE status = 'fired'), "
            "count(*) FILTER (WHERE status = 'suppressed_duplicate') FROM ledger "
            "WHERE run_id = ? AND tool = 'issue_refund'", [runaway.run_id]).fetchone()
    result.runaway = {**info[runaway.run_id], "refunds": refunds, "attempted": runaway_steps,
                      "halt": None if halt is None else halt.as_attrs(),
                      "fired": fired, "suppressed": suppressed}
    return result
