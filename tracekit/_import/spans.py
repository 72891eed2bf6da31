"""OTLP/JSON spans as units of runs: one trace is one run (``otel-<trace id>``), each span a
unit whose events a semantic convention (``genai``; ``openinference``) reads from it."""

from __future__ import annotations

import gzip
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from ..errors import ImportFormatError
from .drafts import Draft, Unit
from .otlp import Span, read_spans

__all__ = ["Convention", "conventions", "read", "sniff", "unit_of"]

_TENANT_KEYS = ("tracekit.tenant", "tenant", "tenant.id", "enduser.tenant")


class Convention(NamedTuple):
    """A semantic convention for the spans of agents: whether a span follows it, its events,
    and the run's name when the span is an agent's."""

    source: str  # the run_start's "imported"
    claims: Callable[[Span], bool]
    drafts: Callable[[Span], Iterator[Draft]]
    run_name: Callable[[Span], str | None]


#: format -> the modules of the conventions it reads, asked in this order for each span
_CONVENTIONS: dict[str, tuple[str, ...]] = {
    "otlp-json": ("genai", "openinference"),
    "otel-genai": ("genai",),
    "openinference": ("openinference",),
}


def sniff(path: Path, head: str) -> bool:
    return head.lstrip()[:1] == "{" and '"resourceSpans"' in head


def read(path: Path, fmt: str) -> Iterator[Unit]:
    """The units of every span that one of ``fmt``'s conventions claims."""
    asked = conventions(fmt)
    count = claimed = 0
    try:
        for span in read_spans(path):
            count += 1
            unit = unit_of(span, asked)
            if unit is not None:
                claimed += 1
                yield unit
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise ImportFormatError(f"{path}: not a text or gzipped OTLP/JSON file ({exc})") from None
    if claimed == 0:
        raise ImportFormatError(
            f"{path}: {count} span(s), none with {_expected(fmt)}: "
            "not a trace of model or tool calls that tracekit can import"
        )


def conventions(fmt: str) -> list[Convention]:
    """The conventions ``fmt`` reads spans by, in the order each span is offered to them."""
    return [_convention(m) for m in _CONVENTIONS[fmt]]


def unit_of(span: Span, asked: list[Convention]) -> Unit | None:
    """The unit of a span the first of ``asked`` that claims it reads; None if none does."""
    convention = next((c for c in asked if c.claims(span)), None)
    return None if convention is None else _unit(span, convention)


def _unit(span: Span, convention: Convention) -> Unit:
    root = span.parent_id is None
    name = convention.run_name(span) or (span.name if root else None)
    tenant = next((str(span.resource[k]) for k in _TENANT_KEYS if span.resource.get(k)), None)
    return Unit(f"otel-{span.trace_id}", span.start_ns, span.end_ns,
                tuple(convention.drafts(span)), name, root, span.error, tenant,
                convention.source, {"trace_id": span.trace_id})  # fmt: skip


def _convention(module: str) -> Convention:
    found: Convention = importlib.import_module(f"{__package__}.{module}").CONVENTION
    return found


def _expected(fmt: str) -> str:
    names = {"genai": "OpenTelemetry GenAI attributes (gen_ai.*)",
             "openinference": "OpenInference attributes (openinference.span.kind)"}  # fmt: skip
    return " or ".join(names[m] for m in _CONVENTIONS[fmt])
