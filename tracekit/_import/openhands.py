"""OpenHands event streams as runs: ``openhands-<digest>``.

OpenHands records a conversation as a stream of events (``event_to_dict``): each with its
``id``, ``timestamp`` (ISO; OpenHands writes local time without an offset, read here as UTC),
``source`` (agent, user, environment) and either an ``action`` (``run``, ``edit``,
``message``, ``finish``, ...) with its ``args`` or an ``observation`` with its ``content``,
``extras`` and the ``cause`` (the id of the action it answers). An action the model chose
carries ``tool_call_metadata``: the function called, the tool call's id and the litellm
``model_response`` it came from (its usage, its model); ``llm_metrics`` carries the running
total of the conversation's cost. The file is the stream as a JSON list (a saved trajectory),
one event a line, or OpenHands' evaluation output (one ``{"instance_id", "history": [...]}``
a line: a run each).

Each model response is a model call: its prompt is the conversation so far rebuilt from the
events (the system prompt and tools, the user's messages, the assistant's earlier responses
and the tool results), from the event before it to the first action it gave; its cost is the
rise of the running total. Each action of it is a tool call of the function called, its
result the observation that names it as its cause (failed when that is an ``error``). An
agent message without a tool call is a model call too. The run fails when the agent's last
state is ``error``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from .._base.encode import canonical_json
from .._base.vocab import EventKind, EventStatus
from ..errors import ImportFormatError
from .drafts import Draft, Unit
from .jsonfile import (
    FIXED_EPOCH_NS,
    MS,
    as_dict,
    digest,
    digest_of,
    iso_ns,
    load_document,
    load_lines,
    parsed,
)
from .source import head as file_head

__all__ = ["read", "sniff"]

_WHAT = "an OpenHands event stream"
_EVENT = re.compile(r'"(action|observation)"\s*:\s*"[a-z_]+"')
#: actions of the agent that no model call chose
_NOT_CALLS = frozenset({"change_agent_state", "null", "recall", "condensation",
                        "condensation_request", "system"})  # fmt: skip
_ARGS_NOISE = frozenset({"thought", "blocking", "is_static", "cwd", "hidden", "is_input",
                         "confirmation_state", "security_risk", "impl_source"})  # fmt: skip


def sniff(path: Path, head: str) -> bool:
    text = head.lstrip()
    if text[:1] == "[":
        return bool(_EVENT.search(text)) and '"source"' in text and '"timestamp"' in text
    if text[:1] != "{":
        return False
    try:
        first = json.loads(text.split("\n", 1)[0])
    except ValueError:
        return False
    if not isinstance(first, dict):
        return False
    return (_is_event(first) and "source" in first) or _is_episode(first)


def read(path: Path, fmt: str) -> Iterator[Unit]:
    """A run per stream in the file."""
    for key, name, events, meta in _streams(path):
        if not events:
            continue
        yield from _Stream(f"openhands-{key}", name, events, meta).units()


_Found = tuple[str, str, list[dict[str, Any]], dict[str, Any]]  # run key, name, events, meta


def _streams(path: Path) -> Iterator[_Found]:
    """Each stream of the file: its run's key and name, its events (in id order), its meta."""
    if file_head(path).lstrip()[:1] == "[":
        doc = load_document(path, _WHAT)
        yield digest(path), _stem(path), _events(path, doc), {}
        return
    lines = load_lines(path, _WHAT)
    head = next(lines, None)
    if isinstance(head, dict) and _is_episode(head):
        for n, episode in enumerate(chain([head], lines), 1):
            yield _episode(path, n, episode)
        return
    found = [head, *lines] if head is not None else []
    yield digest(path), _stem(path), _events(path, found), {}


def _episode(path: Path, n: int, episode: Any) -> _Found:
    if not isinstance(episode, dict) or not _is_episode(episode):
        raise ImportFormatError(f"{path}: line {n} is not an OpenHands evaluation output "
                                "(expected an object with a 'history' list)")  # fmt: skip
    instance = str(episode.get("instance_id") or n)
    key = f"{instance}-{digest_of(canonical_json(episode), 12)}"
    meta = {"instance_id": instance, "error": episode.get("error"),
            "metrics": episode.get("metrics")}  # fmt: skip
    events = _events(path, episode["history"]) if episode["history"] else []  # none: skipped
    return key, instance, events, {k: v for k, v in meta.items() if v is not None}


def _events(path: Path, found: Any) -> list[dict[str, Any]]:
    if not isinstance(found, list) or not found:
        raise ImportFormatError(
            f"{path}: not {_WHAT}: expected a JSON list of events (or one a line), each with "
            "an 'action' or an 'observation'"
        )
    events = [e for e in found if isinstance(e, dict) and _is_event(e)]
    if not events:
        raise ImportFormatError(
            f"{path}: not {_WHAT}: none of its {len(found)} item(s) is an event with an "
            "'action' or an 'observation' and its 'timestamp'"
        )
    return sorted(events, key=lambda e: (_int(e.get("id")), _ts(e.get("timestamp"))))


@dataclass
class _Stream:
    """One conversation read in event order, its prompt rebuilt as it goes."""

    run_id: str
    name: str
    events: list[dict[str, Any]]
    meta: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    system: Any = None
    tools: Any = None
    cost_total: float = 0.0
    answered: set[str] = field(default_factory=set)  # model responses already read
    called: set[int] = field(default_factory=set)  # the ids of the actions that are tool calls
    error: str | None = None

    def units(self) -> Iterator[Unit]:
        results = {_int(e.get("cause")): e for e in self.events if "observation" in e
                   and e.get("cause") is not None}  # fmt: skip
        previous = _ts(self.events[0].get("timestamp"))
        found: list[Unit] = []
        for event in self.events:
            found.extend(self._event(event, previous, results))
            previous = _ts(event.get("timestamp"))
        start = _ts(self.events[0].get("timestamp"))
        found.append(Unit(self.run_id, start, previous, (), self.name, True, self.error))
        for unit in found:
            yield unit._replace(source="openhands", meta={"events": len(self.events),
                                                          **self.meta})  # fmt: skip

    def _event(self, event: dict[str, Any], before: int, results: dict[int, Any]) -> list[Unit]:
        action = event.get("action")
        args = as_dict(event.get("args"))
        if action is None:
            self._observed(event)
            return []
        if action == "system":
            self.system, self.tools = args.get("content"), args.get("tools")
            return []
        if event.get("source") != "agent" or action in _NOT_CALLS:
            if action == "message":
                self.messages.append({"role": "user", "content": args.get("content")})
            return []
        metadata = as_dict(event.get("tool_call_metadata"))
        response = as_dict(metadata.get("model_response"))
        key = str(response.get("id") or f"event_{event.get('id')}")
        units = []
        if key not in self.answered:  # the first action of a response
            self.answered.add(key)
            units.append(self._model_call(event, before, key, response))
        if metadata or action != "message":
            self.called.add(_int(event.get("id")))
            units.append(self._tool_call(event, metadata, response, results))
        return units

    def _model_call(
        self, event: dict[str, Any], before: int, key: str, response: dict[str, Any]
    ) -> Unit:
        at = _ts(event.get("timestamp"))
        args = as_dict(event.get("args"))
        text = args.get("content") or args.get("thought") or ""
        message = _message(response) or {"role": "assistant", "content": text}
        model = response.get("model") or _usage(event).get("model") or None
        name = str(model or "model")
        prompt: dict[str, Any] = {"messages": list(self.messages)}
        if self.system is not None:
            prompt["system"] = self.system
        if self.tools:
            prompt["tools"] = self.tools
        self.messages.append(message)
        usage = as_dict(response.get("usage"))
        calls = [_declared(c) for c in message.get("tool_calls") or () if isinstance(c, dict)]
        extra: dict[str, Any] = {"event_id": event.get("id"), "response_id": response.get("id")}
        if calls:
            extra["tool_calls"] = calls
        finish = next((c.get("finish_reason") for c in response.get("choices") or ()
                       if isinstance(c, dict)), None)  # fmt: skip
        if finish:
            extra["finish_reason"] = finish
        call_id = f"oh_{key}"
        drafts = (Draft(min(before, at), 0, EventKind.PROMPT, name, call_id,
                        canonical_json(prompt)),
                  Draft(at, 1, EventKind.MODEL_OUTPUT, name, call_id, None,
                        canonical_json({"messages": [message]}), EventStatus.OK, None,
                        _count(usage, "prompt_tokens"), _count(usage, "completion_tokens"),
                        self._cost(event), max(at - before, 0) / MS,
                        canonical_json({k: v for k, v in extra.items() if v is not None}),
                        str(model) if model else None))  # fmt: skip
        return Unit(self.run_id, min(before, at), at, drafts, self.name, True)

    def _tool_call(self, event: dict[str, Any], metadata: dict[str, Any],
                   response: dict[str, Any], results: dict[int, Any]) -> Unit:  # fmt: skip
        at = _ts(event.get("timestamp"))
        name = str(metadata.get("function_name") or event.get("action"))
        call_id = str(metadata.get("tool_call_id") or f"oh_event_{event.get('id')}")
        arguments = _arguments(response, call_id)
        if arguments is None:
            arguments = {k: v for k, v in as_dict(event.get("args")).items()
                         if k not in _ARGS_NOISE}  # fmt: skip
        attrs = {"event_id": event.get("id"), "action": event.get("action")}
        drafts = [Draft(at, 0, EventKind.TOOL_CALL, name, call_id, canonical_json(arguments),
                        None, EventStatus.STARTED, None, None, None, None, None,
                        canonical_json(attrs))]  # fmt: skip
        result = results.get(_int(event.get("id")))
        end = at
        if result is not None:
            end = max(_ts(result.get("timestamp")), at)
            drafts.append(_result(result, name, call_id, end, at))
        return Unit(self.run_id, at, end, tuple(drafts), self.name, True)

    def _observed(self, event: dict[str, Any]) -> None:
        """An observation: a tool result in the conversation, or the agent's state."""
        extras = as_dict(event.get("extras"))
        if event.get("observation") == "agent_state_changed":
            state = extras.get("agent_state")
            reason = extras.get("reason") or event.get("content") or ""
            self.error = (str(reason) or "agent_state: error") if state == "error" else None
            return
        metadata = as_dict(event.get("tool_call_metadata"))
        if metadata:
            self.messages.append({"role": "tool", "tool_call_id": metadata.get("tool_call_id"),
                                  "name": metadata.get("function_name"),
                                  "content": event.get("content")})  # fmt: skip
        elif _int(event.get("cause")) in self.called:  # without function calling: a user turn
            self.messages.append({"role": "user", "content": event.get("content")})

    def _cost(self, event: dict[str, Any]) -> float | None:
        """The rise of the conversation's running cost since the last model call."""
        total = as_dict(event.get("llm_metrics")).get("accumulated_cost")
        if not isinstance(total, int | float):
            return None
        cost, self.cost_total = max(float(total) - self.cost_total, 0.0), float(total)
        return round(cost, 12)  # a difference of running totals: no float noise


def _result(event: dict[str, Any], name: str, call_id: str, end: int, start: int) -> Draft:
    failed = event.get("observation") == "error"
    content = event.get("content")
    extras = {k: v for k, v in as_dict(event.get("extras")).items() if v not in (None, "", {})}
    attrs = {"event_id": event.get("id"), "observation": event.get("observation"), **extras}
    if event.get("success") is not None:
        attrs["success"] = event["success"]
    return Draft(end, 1, EventKind.TOOL_RESULT, name, call_id, None, canonical_json(content),
                 EventStatus.ERROR if failed else EventStatus.OK,
                 (str(content) or "error") if failed else None, None, None, None,
                 (end - start) / MS, canonical_json(attrs))  # fmt: skip


def _message(response: dict[str, Any]) -> dict[str, Any] | None:
    """The assistant message of a litellm ``ModelResponse`` (its empty fields left out)."""
    for choice in response.get("choices") or ():
        message = as_dict(as_dict(choice).get("message"))
        if message:
            return {k: v for k, v in message.items() if v is not None}
    return None


def _arguments(response: dict[str, Any], call_id: str) -> dict[str, Any] | None:
    """The arguments the model gave the tool call ``call_id``, parsed."""
    for call in (_message(response) or {}).get("tool_calls") or ():
        if isinstance(call, dict) and call.get("id") == call_id:
            found = parsed(as_dict(call.get("function")).get("arguments"))
            return found if isinstance(found, dict) else {"input": found}
    return None


def _declared(call: dict[str, Any]) -> dict[str, Any]:
    function = as_dict(call.get("function"))
    arguments = function.get("arguments")
    text = arguments if isinstance(arguments, str) else canonical_json(arguments or {})
    return {"id": call.get("id"), "name": function.get("name"), "arguments": text}


def _usage(event: dict[str, Any]) -> dict[str, Any]:
    return as_dict(as_dict(event.get("llm_metrics")).get("accumulated_token_usage"))


def _is_event(item: dict[str, Any]) -> bool:
    return ("action" in item or "observation" in item) and "timestamp" in item


def _is_episode(item: dict[str, Any]) -> bool:
    history = item.get("history")
    return isinstance(history, list) and all(isinstance(e, dict) for e in history[:1]) and (
        not history or _is_event(history[0]))  # fmt: skip


def _ts(value: Any) -> int:
    """An ISO timestamp in ns (no offset: UTC); the fixed epoch when there is none."""
    if not isinstance(value, str):
        return FIXED_EPOCH_NS
    try:
        return iso_ns(value)
    except ValueError:
        return FIXED_EPOCH_NS


def _count(usage: dict[str, Any], key: str) -> int | None:
    value = usage.get(key)
    return int(value) if isinstance(value, int | float) else None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _stem(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    return name.rsplit(".", 1)[0] if "." in name else name
