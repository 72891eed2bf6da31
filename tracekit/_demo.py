"""The bundled demo: a simulated customer-support agent, a few healthy runs and one runaway.

No network and no model key: the "model" is a script that decides the next tool call from the
conversation so far. The runaway is the classic one — a refund that comes back ``pending`` and a
model that issues the same refund again and again, its context (and so its spend) growing each
step, with no progress.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._base.ids import new_id
from ._capture.decorators import entrypoint, model, tool
from ._capture.run import Run, run
from ._capture.settings import Release
from ._capture.state import configure, shutdown
from ._contain.settings import Guard
from .errors import Halted

__all__ = ["DEMO_GUARD", "DEMO_RELEASE", "DemoResult", "handle_ticket", "run_demo"]

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


@tool(
    writes=True,
    destination="payments-api",
    currency="USD",
    reversible=True,
    amount=lambda order_id, amount, headers: amount,
)
def issue_refund(order_id: str, amount: float, headers: dict[str, str]) -> dict[str, Any]:
    status = "pending" if order_id == _RUNAWAY[3] else "issued"  # the processor never confirms
    return {"order_id": order_id, "amount": amount, "status": status}


@tool(writes=True, destination="customer-email", reversible=False)
def send_reply(ticket_id: str, text: str) -> dict[str, str]:
    return {"ticket_id": ticket_id, "status": "sent"}


def _price(reply: dict[str, Any]) -> float:
    usage = reply["usage"]
    cost = float(usage["input_tokens"]) * _PRICE_IN + float(usage["output_tokens"]) * _PRICE_OUT
    return round(cost, 6)


@model(name=DEMO_RELEASE.model, cost=_price)
def support_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The demo's "model": a script that picks the next tool call from the conversation.

    A refund that comes back ``pending`` reads as "not done yet", so it asks for it again: the
    runaway.
    """
    call = _next_call(messages)
    tokens_in = sum(len(str(m["content"])) // 4 + 20 for m in messages)
    return {
        "content": None if call else "Your issue is resolved. Anything else?",
        "tool_calls": [call] if call else None,
        "usage": {"input_tokens": tokens_in, "output_tokens": 40},
    }


def _next_call(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    ticket = next(m["ticket"] for m in messages if "ticket" in m)
    results = {m["name"]: m["content"] for m in messages if m["role"] == "tool"}
    order, refund = ticket.get("order"), ticket.get("refund")
    if order and "lookup_order" not in results:
        return {"name": "lookup_order", "arguments": {"order_id": order}}
    if order and refund and results.get("issue_refund", {}).get("status") != "issued":
        return {"name": "issue_refund", "arguments": {"order_id": order, "amount": refund}}
    if "search_kb" not in results:
        return {"name": "search_kb", "arguments": {"query": ticket["text"]}}
    if "send_reply" not in results:
        return {
            "name": "send_reply",
            "arguments": {"ticket_id": ticket["id"], "text": "Done: see KB-12."},
        }
    return None


_PROGRESS = {"lookup_order": "order found", "send_reply": "customer answered"}


def _use_tool(agent: Run, call: dict[str, Any]) -> Any:
    name, args = call["name"], dict(call["arguments"])
    if name == "issue_refund":  # the agent, not the model, holds the payments key
        args["headers"] = {"Authorization": f"Bearer {_PAYMENTS_KEY}"}
    result = _TOOLS[name](**args)
    if name in _PROGRESS:
        agent.progress(_PROGRESS[name])
    elif name == "issue_refund" and result["status"] == "issued":
        agent.progress("refund issued")
    return result


@entrypoint
def handle_ticket(
    tenant: str, ticket: dict[str, Any], run_id: str | None = None, max_turns: int = 12
) -> str:
    """The demo support agent: one ticket, model turns until it answers (or ``max_turns``).

    Replay it with ``tracekit make-test incident-42 --entrypoint tracekit._demo:handle_ticket``.
    """
    with run(tenant=tenant, run_id=run_id, ticket=ticket["id"]) as agent:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": ticket["text"], "ticket": ticket},
        ]
        if ticket.get("research"):
            _research(agent, ticket["text"])
        for _ in range(max_turns):
            reply = support_model(messages)
            if not reply["tool_calls"]:
                return agent.run_id
            for call in reply["tool_calls"]:
                result = _use_tool(agent, call)
                messages.append({"role": "tool", "name": call["name"], "content": result})
        agent.error(f"the agent gave up after {max_turns} model turns")
    return agent.run_id


def _research(parent: Run, question: str) -> None:
    """A sub-agent run: the policy researcher the support agent consults."""
    with run(tenant=parent.tenant, parent=parent, role="policy-researcher") as sub:
        ticket = {"id": "research", "text": "refund policy"}
        messages = [
            {"role": "user", "content": f"Which policy applies? {question}", "ticket": ticket}
        ]
        [call] = support_model(messages)["tool_calls"]
        _use_tool(sub, call)
        sub.progress("policy found")


_TOOLS: dict[str, Callable[..., Any]] = {
    "lookup_order": lookup_order,
    "search_kb": search_kb,
    "issue_refund": issue_refund,
    "send_reply": send_reply,
}


def _ticket(entry: tuple[Any, ...], research: bool) -> dict[str, Any]:
    _, ticket_id, text, order, refund = entry
    return {"id": ticket_id, "text": text, "order": order, "refund": refund, "research": research}


def _healthy(entry: tuple[Any, ...]) -> str:
    return handle_ticket(entry[0], _ticket(entry, research=True))


def _runaway(steps: int) -> tuple[str, Halted | None]:
    run_id = new_id("run_")
    try:
        handle_ticket(
            _RUNAWAY[0], _ticket(_RUNAWAY, research=False), run_id=run_id, max_turns=steps + 1
        )
    except Halted as halt:
        return run_id, halt
    return run_id, None


def _summary(con: Any, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = con.execute(
        "SELECT run_id, tenant, status, steps, cost_usd, parent_run_id FROM runs "
        "WHERE run_id IN (SELECT unnest(?))",
        [run_ids],
    ).fetchall()
    keys = ("run_id", "tenant", "status", "steps", "cost_usd", "parent_run_id")
    return {r[0]: dict(zip(keys, r, strict=True)) for r in rows}


def run_demo(
    store: str | os.PathLike[str] | None = None, runaway_steps: int = 40, guarded: bool = True
) -> DemoResult:
    """Record the demo's runs into ``store`` (default: the configured store) and summarise them.

    With ``guarded`` (the default) every run is under DEMO_GUARD, and the runaway is contained.
    """
    from ._query.views import connect

    if runaway_steps < 1:
        raise ValueError("runaway_steps must be at least 1")
    settings = configure(
        store=store, release=DEMO_RELEASE, guard=DEMO_GUARD if guarded else False, control="sqlite"
    )
    healthy = [_healthy(ticket) for ticket in _TICKETS]
    runaway, halt = _runaway(runaway_steps)
    shutdown()
    ids = [*healthy, runaway]
    with connect(settings.store) as con:
        info = _summary(con, ids)
    result = DemoResult(store=str(settings.store))
    for run_id in ids:
        row = dict(info[run_id])
        row["note"] = (
            "runaway: same refund, again and again"
            if run_id == runaway
            else ("resolved (+1 sub-agent)")
        )
        result.runs.append(row)
    with connect(settings.store) as con:
        fired, suppressed = con.execute(
            "SELECT count(*) FILTER (WHERE status = 'fired'), "
            "count(*) FILTER (WHERE status = 'suppressed_duplicate') FROM ledger "
            "WHERE run_id = ? AND tool = 'issue_refund'",
            [runaway],
        ).fetchone() or (0, 0)
        [refunds] = con.execute(
            "SELECT count(*) FROM tool_calls WHERE run_id = ? AND tool = 'issue_refund'", [runaway]
        ).fetchone() or (0,)
    result.runaway = {
        **info[runaway],
        "refunds": refunds,
        "attempted": runaway_steps,
        "halt": None if halt is None else halt.as_attrs(),
        "fired": fired,
        "suppressed": suppressed,
    }
    return result
