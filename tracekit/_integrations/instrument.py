"""``tracekit.instrument(client)``: the SDK client's model calls recorded and guarded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from .prices import Prices

__all__ = ["instrument"]

C = TypeVar("C")


def instrument(client: C, *, prices: Mapping[str, Mapping[str, float]] | None = None) -> C:
    """Record and guard every model call of ``client`` (an ``openai.OpenAI`` /
    ``AsyncOpenAI`` or ``anthropic.Anthropic`` / ``AsyncAnthropic``) inside a run: the prompt,
    the answer with its usage, its cost from the price table (``prices`` adds to or overrides
    it, USD per million tokens) and its tool calls; the guard's kill switch before each call;
    in agent replay, the recorded answers served as the SDK's own objects. Returns the client;
    instrumenting it twice changes nothing."""
    if getattr(client, "_tracekit_instrumented", False):
        return client
    table = Prices.shipped(prices)
    sdk = type(client).__module__.partition(".")[0]
    if sdk == "openai":
        from .openai import instrument_openai

        instrument_openai(client, table)
    elif sdk == "anthropic":
        from .anthropic import instrument_anthropic

        instrument_anthropic(client, table)
    else:
        raise TypeError(
            f"tracekit.instrument does not know {type(client).__name__} (from {sdk!r}): it "
            "instruments openai.OpenAI / AsyncOpenAI and anthropic.Anthropic / AsyncAnthropic "
            "clients; wrap other model calls with @tracekit.model"
        )
    client._tracekit_instrumented = True  # type: ignore[attr-defined]
    return client
