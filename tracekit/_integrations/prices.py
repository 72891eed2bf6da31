"""The price table: USD per million tokens by model, shipped as package data (prices.json),
overridable per instrumented client. A model id matches its longest prefix in the table; a
model the table does not know is reported once and its cost is not counted, never guessed."""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from ..errors import TracekitWarning

__all__ = ["Prices"]


class Prices:
    """Rates by model id; ``cost(model, tokens_in, tokens_out, cached_in)``."""

    def __init__(self, table: Mapping[str, Mapping[str, float]]) -> None:
        self._table = {model: _rates(model, rates) for model, rates in table.items()}
        self._by_length = sorted(self._table, key=len, reverse=True)
        self._found: dict[str, dict[str, float] | None] = {}
        self.unknown: set[str] = set()  # the models asked for that the table does not know

    @classmethod
    def shipped(cls, overrides: Mapping[str, Mapping[str, float]] | None = None) -> Prices:
        """The table shipped with tracekit, with ``overrides`` on top."""
        text = resources.files("tracekit._integrations").joinpath("prices.json").read_text()
        doc = json.loads(text)
        if doc.get("version") != 1:
            raise ValueError(f"tracekit's price table is version {doc.get('version')}, not 1")
        return cls({**doc["models"], **(overrides or {})})

    def rates(self, model: str) -> dict[str, float] | None:
        if model not in self._found:
            match = next((m for m in self._by_length if model.startswith(m)), None)
            self._found[model] = None if match is None else self._table[match]
        return self._found[model]

    def pricer(self, model: str | None) -> Callable[[Any, Any, Any], float | None]:
        """``cost`` for one model, its rates looked up once: ``pricer(m)(tokens_in,
        tokens_out, cached)``."""
        rates = self.rates(model or "")
        if rates is None:
            return lambda tokens_in, tokens_out, cached: self.cost(model, None, None, None)
        return functools.partial(_priced, rates["input"], rates["cached_input"], rates["output"])

    def cost(self, model: str | None, tokens_in: Any, tokens_out: Any, cached: Any) -> float | None:
        """The call's cost in USD; None (reported once per model) when the model is unknown
        or the answer carried no usage."""
        rates = self.rates(model or "")
        if rates is None:
            self._report(model or "(no model)")
            return None
        return _priced(
            rates["input"], rates["cached_input"], rates["output"], tokens_in, tokens_out, cached
        )

    def _report(self, model: str) -> None:
        if model not in self.unknown:
            self.unknown.add(model)
            warnings.warn(
                f"tracekit has no price for model {model!r}: its calls are recorded without a "
                "cost, so cost bounds do not count them; pass prices={model: {'input': ..., "
                "'output': ...}} (USD per million tokens) to tracekit.instrument",
                TracekitWarning,
                stacklevel=4,
            )


def _priced(
    fresh_rate: float,
    cached_rate: float,
    out_rate: float,
    tokens_in: Any,
    tokens_out: Any,
    cached: Any,
) -> float | None:
    if tokens_in is None and tokens_out is None:
        return None
    given_in = int(tokens_in or 0)
    cached_in = min(int(cached or 0), given_in)
    total = (given_in - cached_in) * fresh_rate + cached_in * cached_rate
    return (total + int(tokens_out or 0) * out_rate) / 1e6


def _rates(model: str, rates: Mapping[str, float]) -> dict[str, float]:
    try:
        got = {k: float(rates[k]) for k in ("input", "output")}
        got["cached_input"] = float(rates.get("cached_input", got["input"]))
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"price of {model!r} must give 'input' and 'output' (and may give 'cached_input') "
            f"in USD per million tokens; got {dict(rates)!r}"
        ) from None
    if any(v < 0 for v in got.values()):
        raise ValueError(f"price of {model!r} has a negative rate: {got!r}")
    return got
