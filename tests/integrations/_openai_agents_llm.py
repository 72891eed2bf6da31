"""``_llm_server``'s loopback fake of the OpenAI API, each answer with tool-call ids of its own.

A real model gives every tool call a new id; the OpenAI Agents SDK runs a call whose id it has
already answered only once, so a runaway (the same refund asked for again and again) needs ids
that differ from one answer to the next, as they do in production.
"""

from __future__ import annotations

import json
from typing import Any

import _llm_server


class AgentsLLM(_llm_server.LLMServer):
    """The same server, the ids of request N's tool calls ending in N."""

    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = _Handler


class _Handler(_llm_server._Handler):
    server: AgentsLLM

    def _json(self, doc: dict[str, Any]) -> None:
        super()._json(self._renumbered(doc))

    def _sse(self, events: list[tuple[str | None, dict[str, Any] | str]]) -> None:
        super()._sse([(name, data if isinstance(data, str) else self._renumbered(data))
                      for name, data in events])

    def _renumbered(self, doc: dict[str, Any]) -> dict[str, Any]:
        n = len(self.server.requests)
        text = json.dumps(doc).replace('"call_1"', f'"call_{n}"').replace('"fc_1"', f'"fc_{n}"')
        renumbered: dict[str, Any] = json.loads(text)
        return renumbered
