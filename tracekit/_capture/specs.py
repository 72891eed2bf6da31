"""What the decorators know about a tool or a model, and how a call's arguments are named.

A ``ToolSpec`` is what the guard (its ``ToolRules``: argument bounds, destination) and the
side-effect ledger (its ``WriteSpec``: idempotency key, amount, reversibility...) read of a
tool's declaration; a ``ModelSpec`` is how ``@tracekit.model`` reads an answer's cost and usage.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .._base.encode import canonical_json
from .._ledger.registry import register_compensator

__all__ = ["Bounds", "ModelSpec", "ToolSpec", "named_args", "param_names"]

#: numeric argument bounds of a tool: {"amount": (0, 200)}; None is an open end
Bounds = dict[str, tuple[float | None, float | None]]

_WRITES_ATTRS = canonical_json({"writes": True})
_LEDGER_OPTIONS = (
    "idempotency_key",
    "reversible",
    "compensate",
    "retry_on",
    "amount",
    "currency",
    "action",
)


class ToolSpec:
    """A tool's name, whether it writes, its argument bounds and its ledger options."""

    __slots__ = (
        "action",
        "amount",
        "attrs",
        "bounds",
        "compensate",
        "currency",
        "destination",
        "idempotency_key",
        "name",
        "retry_on",
        "reversible",
        "writes",
    )

    def __init__(
        self,
        name: str,
        writes: bool = False,
        bounds: Bounds | None = None,
        destination: str | Callable[..., Any] | None = None,
        **ledger: Any,
    ) -> None:
        unknown = sorted(set(ledger) - set(_LEDGER_OPTIONS))
        if unknown:
            raise TypeError(
                f"@tracekit.tool got unknown options {unknown}; known: {', '.join(_LEDGER_OPTIONS)}"
            )
        self.name, self.writes, self.destination = name, writes, destination
        self.idempotency_key = ledger.get("idempotency_key")
        self.reversible: bool | None = ledger.get("reversible")
        self.compensate = ledger.get("compensate")
        self.retry_on: tuple[type[BaseException], ...] = tuple(ledger.get("retry_on") or ())
        self.amount, self.currency = ledger.get("amount"), ledger.get("currency")
        self.action: str | None = ledger.get("action")
        if self.compensate is not None:
            register_compensator(name, self.compensate)
        self.bounds = _checked_bounds(name, bounds)
        self.attrs = _WRITES_ATTRS if writes else None

    def destination_of(self, named: dict[str, Any]) -> str | None:
        """Where a write goes: the declared value, or the callable's answer for these args."""
        dest = self.destination
        if dest is None or not self.writes:
            return None
        if callable(dest):
            try:
                dest = dest(**named)
            except Exception as exc:
                return f"<destination unknown: {type(exc).__name__}>"
        return None if dest is None else str(dest)


def _checked_bounds(name: str, bounds: Bounds | None) -> Bounds:
    checked = dict(bounds or {})
    for arg, pair in checked.items():
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(
                f"bounds for {name}({arg}=...) must be a (low, high) pair; "
                "use None for an open end, e.g. {'amount': (0, 200)}"
            )
    return checked


class ModelSpec:
    """What ``@tracekit.model`` knows: the model's name and how to read cost and usage."""

    __slots__ = ("attrs", "cost", "decode", "name", "params", "usage")

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None,
        cost: Callable[[Any], float | None] | None,
        usage: Callable[[Any], Any] | None,
        decode: Callable[[Any], Any] | None,
        attrs: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.name = name
        self.params = param_names(fn)
        self.cost = cost
        self.usage = usage or usage_of
        self.decode = decode
        #: the output event's attrs from an answer (an SDK integration: its normalised tool
        #: calls), as canonical JSON
        self.attrs = attrs

    def prompt_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The prompt recorded for a call: its ``messages`` argument, else all its arguments."""
        named = named_args(self.params, args, kwargs)
        return canonical_json(named.get("messages", named))

    def prompt_row(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The prompt event's ``args`` column: its JSON text, or a ``Deferred`` of it."""
        return self.prompt_of(args, kwargs)

    def cost_of(self, result: Any) -> float | None:
        return None if self.cost is None else float_or_none(self.cost(result))

    def measure(self, result: Any) -> tuple[int | None, int | None, float | None, Any]:
        """An answer's tokens in and out, its cost, and its output event's attrs."""
        tokens_in, tokens_out = token_usage(self.usage(result))
        attrs = self.attrs(result) if self.attrs is not None else None
        return tokens_in, tokens_out, self.cost_of(result), attrs


def usage_of(result: Any) -> Any:
    """A model answer's usage: its ``usage`` key or attribute."""
    if isinstance(result, dict):
        return result.get("usage")
    return getattr(result, "usage", None)


def param_names(func: Callable[..., Any]) -> tuple[str, ...] | None:
    """Names for positional arguments; None when the signature cannot name them all."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in sig.parameters.values() if p.kind in kinds)


def named_args(
    params: tuple[str, ...] | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """A call's arguments by name (``self`` and ``cls`` left out; extra positionals as
    ``*args``)."""
    if not args:
        return kwargs
    if params is None or len(args) > len(params):
        named = dict(zip(params or (), args, strict=False))
        named["*args"] = list(args[len(named) :])
    else:
        named = dict(zip(params, args, strict=False))
    named.pop("self", None)
    named.pop("cls", None)
    named.update(kwargs)
    return named


def float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def token_usage(usage: Any) -> tuple[int | None, int | None]:
    """Token counts from an OpenAI- or Anthropic-style usage dict or object."""
    if usage is None:
        return None, None

    get = usage.get if isinstance(usage, dict) else _getter(usage)
    tokens_in = get("input_tokens")
    if tokens_in is None:
        tokens_in = get("prompt_tokens")
    tokens_out = get("output_tokens")
    if tokens_out is None:
        tokens_out = get("completion_tokens")
    return int_or_none(tokens_in), int_or_none(tokens_out)


def _getter(usage: Any) -> Callable[[str], Any]:
    return lambda key: getattr(usage, key, None)
