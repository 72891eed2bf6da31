"""The postmortem's charts: the time bucket chosen from the run's length, axes with tick labels,
the guard's bound scaled to the bucket and the halt marker, on runs recorded into a real store
on a simulated clock and rendered to a real page."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import tracekit
import tracekit._capture.run as capture_run
import tracekit._store.ledger as store_ledger
from tracekit._report.charts import bucket_count, choose_bucket, per_bucket
from tracekit._report.postmortem import Postmortem, build_postmortem, write_page


class FakeTime:
    """One simulated clock for the guard (``configure(clock=...)``), the events' timestamps and
    the ledger's: whole microseconds, so a bucket's edge is exact."""

    def __init__(self, start_s: float) -> None:
        self.us = int(start_s * 1e6)

    def __call__(self) -> float:
        return self.us / 1e6

    def ns(self) -> int:
        return self.us * 1000

    def advance(self, seconds: float) -> None:
        self.us += round(seconds * 1e6)


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    clock = FakeTime(time.time() - 3600)  # an hour ago: a 40-minute run still ends in the past
    monkeypatch.setattr(capture_run, "_now_us", clock.ns)  # the events' timestamps
    monkeypatch.setattr(store_ledger, "time", SimpleNamespace(time_ns=clock.ns))  # the ledger's
    return clock


@pytest.fixture
def guarded(tmp_path: Path, fake_time: FakeTime) -> Iterator[Callable[..., Path]]:
    """``guarded(**bounds)``: record into a store in tmp_path under a guard on the fake clock."""
    root = tmp_path / "store"

    def setup(**bounds: Any) -> Path:
        tracekit.configure(store=root, control="sqlite", clock=fake_time, guard=tracekit.Guard(
            staleness_s=5.0, refresh_s=0.05, **bounds))
        return root

    yield setup
    tracekit.shutdown()
    tracekit.configure(store=tmp_path / "after", guard=False)  # leave no guard behind


@tracekit.tool
def look_up(order_id: str) -> dict[str, str]:
    return {"order_id": order_id, "status": "delivered"}


@tracekit.tool(writes=True, destination="payments-api", currency="USD",
               amount=lambda order_id, amount: amount)
def refund(order_id: str, amount: float) -> dict[str, str]:
    return {"order_id": order_id, "status": "pending"}  # never confirmed: the runaway


def call(run: tracekit.Run, i: int) -> None:
    """One step of the agent: a model turn, then a look-up (even steps) or a refund (odd)."""
    run.model_output("not done yet, again", cost_usd=0.001)
    if i % 2:
        refund(f"O-{i}", 1.0)
    else:
        look_up(f"O-{i}")


def page_of(run_id: str, store: Path, tmp_path: Path) -> tuple[Postmortem, str]:
    """The run's postmortem, and its HTML as written to a file."""
    assert tracekit.flush(30)
    page = build_postmortem(run_id, store=store)
    [path] = write_page(page, tmp_path / "pm.html", None)
    return page, path.read_text(encoding="utf-8")


def svg_of(text: str, name: str) -> str:
    [found] = re.findall(rf"<svg [^>]*aria-label='{re.escape(name)}'>.*?</svg>", text)
    return str(found)


def ticks(svg: str, axis: str) -> dict[str, float]:
    """The axis' tick labels and where they are drawn (x for the x axis, y for the y axis)."""
    found = re.findall(rf"<text class='{axis}-tick' x='([\d.]+)' y='([\d.]+)'[^>]*>([^<]+)<", svg)
    return {label: float(x if axis == "x" else y) for x, y, label in found}


def test_a_runaway_of_seconds_gets_second_buckets_axes_the_bound_and_the_halt(
    guarded: Callable[..., Path], fake_time: FakeTime, tmp_path: Path
) -> None:
    store = guarded(max_tool_calls_per_minute=30, max_writes_per_minute=60)
    with pytest.raises(tracekit.Halted), tracekit.run(tenant="acme") as run:
        for i in range(100):  # a call every 0.2 s, with a 2 s pause after the tenth
            call(run, i)
            fake_time.advance(2.2 if i == 9 else 0.2)
    page, text = page_of(run.run_id, store, tmp_path)
    # 30 calls in 8 s of the clock: the 31st (at 8 s) is halted, so the run is 8 s long
    assert page.bucket_s == 1 and page.halt is not None
    assert page.halt["at_s"] == 8.0 and page.halt["signal"] == "tool_calls_per_minute"
    assert list(page.charts) == [
        "tool calls per second", "cumulative spend (USD)", "writes fired per second"]
    calls = page.charts["tool calls per second"]
    assert calls == [(float(s), n) for s, n in enumerate([5.0, 5, 0, 0, 5, 5, 5, 5, 0])]
    writes = page.charts["writes fired per second"]  # the pause drawn as zeros, not skipped
    assert writes == [(float(s), n) for s, n in enumerate([2.0, 3, 0, 0, 2, 3, 2, 3, 0])]

    svg = svg_of(text, "tool calls per second")
    x_ticks, y_ticks = ticks(svg, "x"), ticks(svg, "y")
    assert list(x_ticks) == ["0", "2", "4", "6", "8"] and list(y_ticks) == ["0", "2", "4", "6"]
    assert "seconds from the run's start" in svg
    [halt_x] = re.findall(r"<line class='halt' x1='([\d.]+)'", svg)
    assert float(halt_x) == x_ticks["8"]  # the marker at 8 s on the axis
    assert "halted: tool_calls_per_minute" in svg
    # 30 calls a minute is 0.5 a second: the bound line a quarter of the way from 0 to 2
    [bound_y] = re.findall(r"<line class='bound' [^>]*y1='([\d.]+)'", svg)
    assert float(bound_y) == pytest.approx(y_ticks["0"] + (y_ticks["2"] - y_ticks["0"]) / 4,
                                           abs=0.1)
    assert "bound 30/min = 0.5 per second" in svg
    assert "bound 60/min = 1 per second" in svg_of(text, "writes fired per second")
    assert text.count("<line class='halt'") == 3  # on every chart
    step_line = re.findall(r"<polyline [^>]*points='([^']*)'", svg)[0].split()
    assert len(step_line) > 2 * 5  # a step across each bucket, not one point per minute


def test_a_run_of_forty_minutes_gets_minute_buckets(
    guarded: Callable[..., Path], fake_time: FakeTime, tmp_path: Path
) -> None:
    store = guarded(max_tool_calls_per_minute=10)
    with tracekit.run(tenant="acme") as run:
        for i in range(80):  # a call every 30 s: 40 minutes, never near the bound
            call(run, i)
            fake_time.advance(30.0)
    page, text = page_of(run.run_id, store, tmp_path)
    assert page.bucket_s == 60 and page.halt is None
    calls = page.charts["tool calls per minute"]
    assert len(calls) == 41 and [n for _, n in calls] == [2.0] * 40 + [0.0]
    assert calls[1][0] == 60.0  # x: seconds from the run's start
    svg = svg_of(text, "tool calls per minute")
    assert list(ticks(svg, "x")) == ["0", "10", "20", "30", "40"]
    assert "minutes from the run's start" in svg
    assert "bound 10/min<" in svg and "class='halt'" not in text


def test_a_run_of_no_length_still_gets_one_bucket(
    guarded: Callable[..., Path], tmp_path: Path
) -> None:
    store = guarded()  # the fake clock never moves
    with tracekit.run(tenant="acme") as run:
        for i in range(3):
            call(run, i)
    page, text = page_of(run.run_id, store, tmp_path)
    assert page.bucket_s == 1
    assert page.charts["tool calls per second"] == [(0.0, 3.0)]
    assert page.charts["writes fired per second"] == [(0.0, 1.0)]
    assert "<text class='x-tick'" in svg_of(text, "tool calls per second")


@pytest.mark.parametrize(("span_s", "width_s", "label"), [
    (0.0, 1, "second"), (3.0, 1, "second"), (59.9, 1, "second"), (60.0, 2, "2 s"),
    (250.0, 5, "5 s"), (300.0, 10, "10 s"), (2400.0, 60, "minute"), (3660.0, 120, "2 min"),
    (86400.0, 1800, "30 min"), (10 * 86400.0, 21600, "6 h"), (100 * 86400.0, 2 * 86400, "2 days"),
])
def test_the_bucket_spans_the_run_in_at_most_sixty(span_s: float, width_s: int,
                                                    label: str) -> None:
    assert choose_bucket(span_s) == width_s and per_bucket(width_s) == label
    count = bucket_count(span_s, width_s)
    assert count <= 60 and (span_s < 60 or count >= 25)
