"""MCP client sessions, recorded and guarded: ``instrument_session(session, writes=...)``.

Every ``session.call_tool(name, arguments)`` made inside a run is a tracekit tool call named
after the MCP tool, with ``@tracekit.tool`` semantics: the guard is checked first (a refused
call raises ``tracekit.Halted`` and is never sent to the server); the call is recorded with its
arguments and its ``CallToolResult``; a tool declared in ``writes`` goes through the
side-effect ledger, so a repeated identical call returns the first result without reaching the
server. A result the server marks ``isError`` is recorded as the call's failure (the guard's
tool-error rate counts it; a write's ledger entry is ``failed``) and handed to the caller as
it came. In agent replay the server is not called: the recorded result is served as a
``CallToolResult``. Outside a run the session behaves as if it were not instrumented.

The session's own ``call_tool`` is wrapped in place (nothing is patched globally), so an
``mcp.Client`` is instrumented through its session once entered:
``instrument_session(client.session, ...)``; ``Client.call_tool`` goes through it.

An exception leaves an MCP session's context (``async with Client(...)`` or ``ClientSession``)
wrapped in an ``ExceptionGroup`` by the SDK's task groups, ``tracekit.Halted`` included: catch
it with ``except* tracekit.Halted``, or open the session inside ``with unwrap_halts():`` to get
the ``Halted`` itself (what ``except tracekit.Halted`` and agent replay expect).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from mcp import ClientSession
from mcp.types import CallToolResult, InputRequiredResult, TextContent
from pydantic import ValidationError

from .._capture.decorators import tool
from .._replay.serving import StopReplay
from ..errors import TracekitError

__all__ = ["McpToolError", "instrument_session", "unwrap_halts"]

#: a write tool's ledger options (``@tracekit.tool``'s keywords), or True for the defaults
WriteOptions = bool | Mapping[str, Any]
_Send = Callable[..., Awaitable[Any]]
#: what the caller passed besides the tool's name: its arguments as given, the other
#: positionals and keywords of ``ClientSession.call_tool`` (sent on, never recorded)
_Request = tuple[Any, tuple[Any, ...], dict[str, Any]]
_request: contextvars.ContextVar[_Request] = contextvars.ContextVar("tracekit_mcp_request")


class McpToolError(Exception):
    """An MCP tool's result marked ``isError``, as the failure tracekit records for the call.

    The caller never sees it: ``call_tool`` returns the ``CallToolResult`` (in agent replay, one
    rebuilt from the recorded error text). Put it in a write's ``retry_on`` to let a retry of a
    write the server reported as failed run again instead of replaying the failure.
    """

    def __init__(self, message: str, result: CallToolResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def instrument_session(
    session: ClientSession,
    *,
    writes: Mapping[str, WriteOptions] | Iterable[str] = (),
    bounds: Mapping[str, Mapping[str, tuple[float | None, float | None]]] | None = None,
) -> ClientSession:
    """Record and guard every ``session.call_tool`` inside a run; returns the session.

    ``writes`` names the tools that change the world, each with its ledger options (any
    keyword of ``@tracekit.tool`` but ``name`` and ``writes``: ``destination``,
    ``idempotency_key``, ``amount``, ``retry_on``, ...; their callables get the tool's
    arguments) or True; ``bounds`` limits numeric arguments of any tool, e.g.
    ``{"issue_refund": {"amount": (0, 200)}}``. Options are checked here, not at the first call.
    """
    declared = _declarations(writes, bounds or {})
    if getattr(session, "_tracekit_tools", None) is not None:
        if declared:
            raise ValueError(
                "this MCP session is instrumented already; declare all its writes and bounds "
                "in one instrument_session call"
            )
        return session
    tools = _Tools(session.call_tool, declared)
    session._tracekit_tools = tools  # type: ignore[attr-defined]
    session.call_tool = _call_tool(tools)  # type: ignore[method-assign,assignment]
    return session


@contextlib.contextmanager
def unwrap_halts() -> Iterator[None]:
    """Around an MCP session's context: a ``tracekit.Halted`` (or another of tracekit's errors,
    or agent replay's stop) raised inside leaves the block as itself, not inside the
    ``ExceptionGroup`` the SDK's task groups wrap it in. A group holding anything else, or more
    than one exception, leaves as it is."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) != 1 or not isinstance(leaves[0], TracekitError | StopReplay):
            raise
        raise leaves[0] from None


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _declarations(
    writes: Mapping[str, WriteOptions] | Iterable[str],
    bounds: Mapping[str, Mapping[str, tuple[float | None, float | None]]],
) -> dict[str, dict[str, Any]]:
    """``@tracekit.tool`` keywords by tool name, from the writes and the bounds."""
    pairs = writes.items() if isinstance(writes, Mapping) else ((name, True) for name in writes)
    declared: dict[str, dict[str, Any]] = {}
    for name, options in pairs:
        if options is False:
            continue
        extra = {} if options is True else dict(options)
        if "name" in extra or "writes" in extra:
            raise TypeError(f"write options of MCP tool {name!r} may not set 'name' or 'writes'")
        declared[name] = {**extra, "writes": True}
    for name, limits in bounds.items():
        entry = declared.setdefault(name, {})
        if "bounds" in entry:
            raise ValueError(f"bounds of MCP tool {name!r} given twice (in writes and bounds)")
        entry["bounds"] = dict(limits)
    return declared


class _Tools:
    """The session's tools as tracekit tools: one ``@tracekit.tool`` wrapper per tool name,
    made once (declared ones at instrumentation, so bad options fail there)."""

    def __init__(self, send: _Send, declared: dict[str, dict[str, Any]]) -> None:
        self._send = send
        self._declared = declared
        self._wrapped: dict[str, _Send] = {name: self._wrap(name) for name in declared}

    def get(self, name: str) -> _Send:
        wrapped = self._wrapped.get(name)
        if wrapped is None:
            wrapped = self._wrapped[name] = self._wrap(name)
        return wrapped

    def _wrap(self, name: str) -> _Send:
        send = self._send

        async def call(**_recorded: Any) -> Any:
            """Sends the call as the caller made it (the recorded copy of the arguments is
            what the guard and the ledger read)."""
            arguments, args, kwargs = _request.get()
            result = await send(name, arguments, *args, **kwargs)
            if isinstance(result, CallToolResult) and result.is_error:
                raise McpToolError(_text(result), result)
            return result

        call.__name__ = call.__qualname__ = name
        return tool(name=name, **self._declared.get(name, {}))(call)


def _call_tool(tools: _Tools) -> _Send:
    async def call_tool(
        name: str, arguments: dict[str, Any] | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        """``ClientSession.call_tool``, recorded and guarded inside a run (tracekit)."""
        token = _request.set((arguments, args, kwargs))
        try:
            got = await tools.get(name)(**(arguments or {}))
        except McpToolError as failed:  # the server's isError result, recorded as a failure
            return failed.result if failed.result is not None else _error_result(str(failed))
        finally:
            _request.reset(token)
        return _decoded(got)

    return call_tool


def _decoded(value: Any) -> Any:
    """A result as MCP's own object: a duplicate write's first result and agent replay's
    recorded one come back as JSON."""
    if not isinstance(value, dict):
        return value
    model = InputRequiredResult if value.get("result_type") == "input_required" else CallToolResult
    try:
        return model.model_validate(value)
    except ValidationError:  # an extension's claimed result: handed back as recorded
        return value


def _text(result: CallToolResult) -> str:
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    return "\n".join(texts) or "the MCP tool reported an error"


def _error_result(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
