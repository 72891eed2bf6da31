"""SWE-agent trajectories (``<instance id>.traj``) as runs: ``swe-<instance id>-<digest>``.

A ``.traj`` file is one JSON object: ``trajectory``, the steps (each the model's ``response``,
the ``thought`` and ``action`` parsed from it, the ``observation`` the action gave, its
``execution_time``, the ``state`` after it and the ``query``, the exact messages the model was
sent); ``history``, the chat as the agent kept it (its assistant messages carry the
``tool_calls`` of function-calling models); ``info`` (``exit_status``, ``submission``,
``model_stats`` with the run's cost and tokens); ``replay_config`` (the run's config as JSON
text: the model, the problem statement's id) and ``environment``.

Each step is a model call (a prompt of its query, or of the history before it in files older
than SWE-agent 1.1, and a model output of its response) and, when it has an action, a tool
call named by the function called (else the action's first word) with the observation as its
result. The file records no time: the run starts at 2000-01-01T00:00:00Z, each model call
takes 1 ms and each action its ``execution_time``. The run's tokens and cost, recorded only in
total, are spread evenly over its model outputs. An ``exit_status`` other than ``submitted``
fails the run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from .._base.encode import canonical_json
from .._base.vocab import EventKind, EventStatus
from ..errors import ImportFormatError
from .drafts import Draft, Unit
from .jsonfile import FIXED_EPOCH_NS, MS, as_dict, digest, load_document, parsed

__all__ = ["read", "sniff"]

_WHAT = "a SWE-agent trajectory (.traj)"
_FIRST_KEY = re.compile(r'\A\s*\{\s*"trajectory"\s*:\s*\[')
#: SWE-agent's own bookkeeping on a history message: not part of what the model was sent
_BOOKKEEPING = frozenset({"agent", "message_type", "is_demo", "thought", "action", "tags",
                          "cache_control", "tool_call_ids"})  # fmt: skip
_STEP_TAKEN = frozenset({"action", "observation", "response", "thought", "execution_time",
                         "state", "query", "messages"})  # fmt: skip


class _Run(NamedTuple):
    """What every step of one trajectory shares."""

    run_id: str
    name: str
    model: str | None
    steps: list[dict[str, Any]]
    calls: list[list[dict[str, Any]]]  # each step's tool calls (function calling), or []
    prompts: list[list[Any]]  # each step's messages
    usage: tuple[int | None, int | None, float | None]  # each model call's share
    error: str | None
    meta: dict[str, Any]


def sniff(path: Path, head: str) -> bool:
    if _FIRST_KEY.match(head):
        return True
    name = path.name.removesuffix(".gz")
    return name.endswith(".traj") and '"trajectory"' in head and '"history"' in head


def read(path: Path, fmt: str) -> Iterator[Unit]:
    """One run: a unit per model call and per action of each step."""
    doc = load_document(path, _WHAT)
    if not isinstance(doc, dict) or not isinstance(doc.get("trajectory"), list):
        raise ImportFormatError(
            f"{path}: not {_WHAT}: expected a JSON object with a 'trajectory' list of steps"
        )
    run = _run(path, doc)
    t = FIXED_EPOCH_NS
    units: list[Unit] = []
    for index, step in enumerate(run.steps):
        step_units, t = _step(run, index, step, t)
        units.extend(step_units)
    if not units:
        units.append(Unit(run.run_id, t, t, (), run.name, True))
    last = units[-1]
    units[-1] = last._replace(root=True, error=run.error)
    for unit in units:
        yield unit._replace(meta=run.meta, source="swe-agent")


def _run(path: Path, doc: dict[str, Any]) -> _Run:
    info = as_dict(doc.get("info"))
    replay = as_dict(parsed(doc.get("replay_config")))
    problem = as_dict(replay.get("problem_statement"))
    name = str(problem.get("id") or path.name.removesuffix(".gz").removesuffix(".traj"))
    model = as_dict(as_dict(replay.get("agent")).get("model")).get("name")
    steps = [s for s in doc["trajectory"] if isinstance(s, dict)]
    history = [m for m in doc.get("history") or () if isinstance(m, dict)]
    calls, places = _tool_calls(steps, history)
    prompts = _prompts(steps, history, places)
    stats = as_dict(info.get("model_stats"))
    status = info.get("exit_status")
    error = None if str(status).lower() == "submitted" else f"exit_status: {status}"
    meta = {"instance_id": name, "exit_status": status, "environment": doc.get("environment"),
            "swe_agent_version": info.get("swe_agent_version"),
            "model_stats": stats or None}  # fmt: skip
    return _Run(f"swe-{name}-{digest(path, 12)}", name, str(model) if model else None, steps,
                calls, prompts, _shares(stats, sum(map(bool, prompts))), error,
                {k: v for k, v in meta.items() if v is not None})  # fmt: skip


def _step(run: _Run, index: int, step: dict[str, Any], t: int) -> tuple[list[Unit], int]:
    """The units of one step, from ``t``; the time its next step starts."""
    units = []
    if run.prompts[index]:
        units.append(_model_call(run, index, step, t))
        t += 2 * MS
    action = str(step.get("action") or "")
    if action.strip():
        seconds = step.get("execution_time")
        took = int(float(seconds) * 1e9) if isinstance(seconds, int | float) and seconds > 0 else 0
        units.append(Unit(run.run_id, t, t + took, tuple(_tool_call(run, index, step, t, took)),
                          run.name, True))  # fmt: skip
        t += took + MS
    return units, t


def _model_call(run: _Run, index: int, step: dict[str, Any], t: int) -> Unit:
    name = run.model or "model"
    call_id = f"swe_step_{index + 1}"
    message: dict[str, Any] = {"role": "assistant", "content": step.get("response") or ""}
    calls = run.calls[index]
    if calls:
        message["tool_calls"] = calls
    extra = {k: v for k, v in step.items() if k not in _STEP_TAKEN and v not in (None, {}, [])}
    extra["step"] = index + 1
    if step.get("thought") and step.get("thought") != step.get("response"):
        extra["thought"] = step["thought"]
    if calls:
        extra["tool_calls"] = [_declared(c) for c in calls]
    tokens_in, tokens_out, cost = run.usage
    if run.usage != (None, None, None):
        extra["usage"] = "info.model_stats, spread evenly over the model calls"
    prompt = canonical_json({"messages": run.prompts[index]})
    output = canonical_json({"messages": [message]})
    drafts = (Draft(t, 0, EventKind.PROMPT, name, call_id, prompt),
              Draft(t + MS, 1, EventKind.MODEL_OUTPUT, name, call_id, None, output,
                    EventStatus.OK, None, tokens_in, tokens_out, cost, None,
                    canonical_json(extra), run.model))  # fmt: skip
    return Unit(run.run_id, t, t + MS, drafts, run.name, True)


def _tool_call(run: _Run, index: int, step: dict[str, Any], t: int, took: int) -> Iterator[Draft]:
    action = str(step["action"])
    calls = run.calls[index]
    if calls:
        declared = _declared(calls[0])
        name, call_id = declared["name"] or action.split()[0], str(declared["id"])
        arguments = parsed(declared["arguments"])
        args = arguments if isinstance(arguments, dict) else {"input": arguments}
    else:
        name, call_id, args = action.split()[0], f"swe_action_{index + 1}", {"command": action}
    yield Draft(t, 0, EventKind.TOOL_CALL, name, call_id, canonical_json(args), None,
                EventStatus.STARTED, None, None, None, None, None,
                canonical_json({"action": action}))  # fmt: skip
    state = parsed(step.get("state"))
    attrs = canonical_json({"state": state}) if state else None
    yield Draft(t + took, 1, EventKind.TOOL_RESULT, name, call_id, None,
                canonical_json(step.get("observation") or ""), EventStatus.OK, None, None,
                None, None, took / MS, attrs)  # fmt: skip


def _tool_calls(
    steps: list[dict[str, Any]], history: list[dict[str, Any]]
) -> tuple[list[list[dict[str, Any]]], list[int]]:
    """Each step's tool calls, from the history's assistant message of the same action (steps
    the agent re-queried have none in the history); the place of each step's message there
    (-1: none)."""
    actions = [i for i, m in enumerate(history)
               if m.get("role") == "assistant" and m.get("message_type") == "action"
               and not m.get("is_demo")]  # fmt: skip
    calls: list[list[dict[str, Any]]] = []
    places: list[int] = []
    at = 0
    for step in steps:
        found = next((n for n in range(at, len(actions)) if _same(history[actions[n]], step)), -1)
        if found < 0:
            calls.append([])
            places.append(-1)
            continue
        at = found + 1
        message = history[actions[found]]
        calls.append([c for c in message.get("tool_calls") or () if isinstance(c, dict)])
        places.append(actions[found])
    return calls, places


def _same(message: dict[str, Any], step: dict[str, Any]) -> bool:
    return message.get("action") == step.get("action") and (
        message.get("content") == step.get("response") or message.get("thought") == step.get(
            "thought"))  # fmt: skip


def _prompts(
    steps: list[dict[str, Any]], history: list[dict[str, Any]], places: list[int]
) -> list[list[Any]]:
    """Each step's messages: its ``query`` (SWE-agent 1.1 on), else the history before its
    own message. A step without them where others have them made no model call (the agent's
    exit after an error)."""
    queries = [_messages(s.get("query") or s.get("messages")) for s in steps]
    if any(queries):
        return queries
    found = []
    for n in range(len(steps)):
        # a re-queried step has no message of its own: it was sent what the next one was
        place = next((p for p in places[n:] if p >= 0), len(history))
        found.append(_messages([m for m in history[:place] if not m.get("is_demo")]))
    return found


def _messages(given: Any) -> list[Any]:
    """The chat messages as sent, without SWE-agent's bookkeeping keys (a tool message's
    ``tool_call_ids`` becomes its ``tool_call_id``)."""
    if not isinstance(given, list):
        return []
    found = []
    for message in given:
        if not isinstance(message, dict) or not message:
            continue
        kept = {k: v for k, v in message.items() if k not in _BOOKKEEPING and v not in (None, [])}
        ids = message.get("tool_call_ids")
        if isinstance(ids, list) and ids:
            kept["tool_call_id"] = ids[0]
        found.append(kept)
    return found


def _declared(call: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style tool call (what SWE-agent's models return) as tracekit declares one."""
    function = as_dict(call.get("function"))
    arguments = function.get("arguments")
    text = arguments if isinstance(arguments, str) else canonical_json(arguments or {})
    return {"id": call.get("id"), "name": function.get("name"), "arguments": text}


def _shares(stats: dict[str, Any], calls: int) -> tuple[int | None, int | None, float | None]:
    """Each of ``calls`` model calls' even share of the run's tokens and cost (none when not
    recorded)."""
    calls = max(calls, 1)
    sent, received, cost = (stats.get(k) for k in ("tokens_sent", "tokens_received",
                                                   "instance_cost"))  # fmt: skip
    return (int(sent) // calls if isinstance(sent, int | float) and sent else None,
            int(received) // calls if isinstance(received, int | float) and received else None,
            float(cost) / calls if isinstance(cost, int | float) and cost else None)  # fmt: skip
