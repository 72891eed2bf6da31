"""The postmortem's charts: the time bucket chosen from the run's length, the per-bucket counts
(an empty bucket drawn as zero) and the inline-SVG line chart with its axes, the guard's bound
and the halt marker. No script, no external asset; every label escaped (a signal's name comes
from the trace).

The x axis is seconds from the run's start (labelled in seconds, minutes, hours or days,
whichever reads best for the run's length).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable

__all__ = ["bucket_count", "bucketed", "chart", "choose_bucket", "per_bucket"]

#: the nice bucket widths (seconds), finest first; consecutive ones at most 2.5 apart, so the
#: width chosen spans a run of a minute or more in 25 to 60 buckets. Beyond the last: whole days.
_WIDTHS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
_MOST_BUCKETS = 60
_DAY_S = 86400
_UNITS = ((_DAY_S, "day", "days"), (3600, "hour", "h"), (60, "minute", "min"), (1, "second", "s"))
_X_UNITS = ((_DAY_S, "days"), (3600, "hours"), (60, "minutes"), (1, "seconds"))

_WIDTH, _HEIGHT = 420, 200  # the SVG
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 16, 28, 40  # the margins around the plot


# -- the time bucket ---------------------------------------------------------------------------
def bucket_count(span_s: float, width_s: int) -> int:
    """How many buckets of ``width_s`` cover a run ``span_s`` long (one for a run of no length:
    a bucket starts at every multiple of the width up to the run's last moment)."""
    return int(max(span_s, 0.0) // width_s) + 1


def choose_bucket(span_s: float) -> int:
    """The time bucket (whole seconds) for a run ``span_s`` long: the finest nice width
    (1 s, 2 s, 5 s, 10 s, 15 s, 30 s, 1 min, 2 min, 5 min, ... 12 h, then whole days) that covers
    it in at most 60 buckets; never under a second."""
    for width in _WIDTHS_S:
        if bucket_count(span_s, width) <= _MOST_BUCKETS:
            return width
    return _DAY_S * (int(max(span_s, 0.0) // (_DAY_S * _MOST_BUCKETS)) + 1)


def per_bucket(width_s: int) -> str:
    """The bucket as the series' label says it: ``second``, ``5 s``, ``minute``, ``2 min``,
    ``hour``, ``6 h``, ``day``, ``2 days``."""
    for unit, one, many in _UNITS:
        if width_s % unit == 0:
            n = width_s // unit
            return one if n == 1 else f"{n} {many}"
    raise ValueError(f"a bucket is whole seconds, not {width_s}")


def bucketed(offsets_s: list[float], width_s: int, count: int) -> list[tuple[float, float]]:
    """How many of ``offsets_s`` (seconds from the run's start) fall in each of ``count``
    buckets of ``width_s``, as (bucket start, count): every bucket, an empty one as zero, so a
    runaway's chart is continuous (an offset outside the run counts in its nearest bucket)."""
    counts = [0] * count
    for offset in offsets_s:
        counts[min(max(int(offset // width_s), 0), count - 1)] += 1
    return [(float(k * width_s), float(n)) for k, n in enumerate(counts)]


# -- the chart ---------------------------------------------------------------------------------
def chart(
    name: str,
    points: list[tuple[float, float]],
    bound: float | None = None,
    *,
    bucket_s: float | None = None,
    bound_label: str | None = None,
    halt: tuple[float, str] | None = None,
) -> str:
    """A small SVG line chart of ``points`` (x: seconds from the run's start, y) titled
    ``name``, with an x axis and a y axis with tick labels, the bound (in the points' unit)
    drawn on it when there is one (labelled ``bound_label``, else ``bound N``) and a vertical
    marker at ``halt`` (seconds from the start, label). With ``bucket_s`` each point is a
    bucket's count, drawn as a step a bucket wide. The postmortem's charts; in a notebook:
    ``IPython.display.SVG``."""
    e = html.escape
    xs = [p[0] for p in points] or [0.0]
    ys = [p[1] for p in points] or [0.0]
    x_lo = min(0.0, *xs)
    ends = [x + (bucket_s or 0.0) for x in xs] + ([halt[0]] if halt else [])
    x_hi = max(*ends, x_lo)
    if x_hi <= x_lo:
        x_hi = x_lo + 1.0
    y_step = _nice_step(max([*ys, bound or 0.0, 0.0]) or 1.0, 4)
    y_hi = y_step * math.ceil(max([*ys, bound or 0.0, 0.0]) / y_step) or y_step

    def px(x: float) -> float:
        return _LEFT + (x - x_lo) / (x_hi - x_lo) * (_WIDTH - _LEFT - _RIGHT)

    def py(y: float) -> float:
        return _HEIGHT - _BOTTOM - y / y_hi * (_HEIGHT - _TOP - _BOTTOM)

    drawn = _steps(points, bucket_s) if bucket_s else points
    line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in drawn)
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_WIDTH}' height='{_HEIGHT}' "
        f"role='img' aria-label='{e(name)}'>",
        f"<text x='{_LEFT}' y='16' font-size='12'>{e(name)} (max {max(ys):g})</text>",
        *_x_axis(x_lo, x_hi, px),
        *_y_axis(y_hi, y_step, py),
        f"<polyline fill='none' stroke='#36c' stroke-width='2' points='{line}'/>",
    ]
    if bound:
        out.append(_bound_line(py(bound), bound_label or f"bound {bound:g}"))
    if halt is not None:
        out.append(_halt_marker(px(halt[0]), halt[1]))
    return "".join(out) + "</svg>"


def _steps(points: list[tuple[float, float]], width: float) -> list[tuple[float, float]]:
    """Per-bucket counts as a step line: flat across each bucket, up or down at its edges."""
    corners: list[tuple[float, float]] = []
    for x, y in points:
        corners += [c for c in ((x, y), (x + width, y)) if not corners or c != corners[-1]]
    return corners


def _x_axis(lo: float, hi: float, px: Callable[[float], float]) -> list[str]:
    unit, unit_name = next((u, n) for u, n in _X_UNITS if hi - lo >= 3 * u or u == 1)
    step = _nice_step((hi - lo) / unit, 6)
    base = _HEIGHT - _BOTTOM
    out = [
        f"<line class='x-axis' x1='{_LEFT}' x2='{_WIDTH - _RIGHT}' y1='{base}' y2='{base}' "
        "stroke='#666'/>"
    ]
    for tick in _ticks(lo / unit, hi / unit, step):
        x = px(tick * unit)
        out.append(
            f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{base}' y2='{base + 4}' stroke='#666'/>"
            f"<text class='x-tick' x='{x:.1f}' y='{base + 14}' font-size='10' "
            f"text-anchor='middle'>{_label(tick, step)}</text>"
        )
    middle = (_LEFT + _WIDTH - _RIGHT) / 2
    out.append(
        f"<text x='{middle:.1f}' y='{_HEIGHT - 6}' font-size='10' text-anchor='middle' "
        f"fill='#555'>{unit_name} from the run's start</text>"
    )
    return out


def _y_axis(hi: float, step: float, py: Callable[[float], float]) -> list[str]:
    out = [
        f"<line class='y-axis' x1='{_LEFT}' x2='{_LEFT}' y1='{_TOP}' "
        f"y2='{_HEIGHT - _BOTTOM}' stroke='#666'/>"
    ]
    for tick in _ticks(0.0, hi, step):
        y = py(tick)
        out.append(
            f"<line x1='{_LEFT - 4}' x2='{_LEFT}' y1='{y:.1f}' y2='{y:.1f}' stroke='#666'/>"
            f"<text class='y-tick' x='{_LEFT - 6}' y='{y:.1f}' font-size='10' "
            f"text-anchor='end' dominant-baseline='middle'>{_label(tick, step)}</text>"
        )
    return out


def _bound_line(y: float, label: str) -> str:
    return (
        f"<line class='bound' x1='{_LEFT}' x2='{_WIDTH - _RIGHT}' y1='{y:.1f}' y2='{y:.1f}' "
        f"stroke='#c33' stroke-dasharray='4'/><text x='{_WIDTH - _RIGHT}' y='{y - 3:.1f}' "
        f"font-size='10' fill='#c33' text-anchor='end'>{html.escape(label)}</text>"
    )


def _halt_marker(x: float, signal: str) -> str:
    """A vertical line at the halt, labelled with the signal (on the side with room)."""
    anchor, dx = ("end", -3) if x > (_LEFT + _WIDTH - _RIGHT) / 2 else ("start", 3)
    return (
        f"<line class='halt' x1='{x:.1f}' x2='{x:.1f}' y1='{_TOP}' y2='{_HEIGHT - _BOTTOM}' "
        f"stroke='#900' stroke-width='1.5'/><text x='{x + dx:.1f}' y='{_TOP + 10}' "
        f"font-size='10' fill='#900' text-anchor='{anchor}'>halted: {html.escape(signal)}</text>"
    )


def _nice_step(span: float, most: int) -> float:
    """A tick step of 1, 2 or 5 times a power of ten: at most ``most`` steps across ``span``."""
    raw = span / most
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _ticks(lo: float, hi: float, step: float) -> list[float]:
    first = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step)))
    return f"{round(value, decimals):g}"
