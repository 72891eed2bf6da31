"""Helpers of the agent-replay tests: record into a store, bundle it, replay an agent."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq

import tracekit
from tracekit._capture.state import PROCESS
from tracekit.testing import Recording


def export(store: Path, tmp_path: Path, name: str) -> Path:
    """Bundle every root run recorded into ``store`` so far as ``tmp_path/fixtures/name``."""
    tracekit.flush()
    rows = Recording(store).rows("SELECT run_id FROM runs WHERE parent_run_id IS NULL "
                                 "ORDER BY run_id")
    assert rows, "the agent recorded no run"
    return tracekit.export_incident([r["run_id"] for r in rows], name, tmp_path / "fixtures",
                                    store)


def replay(bundle: Path, agent: Callable[..., Any],
           guard: tracekit.Guard | None = None) -> tracekit.Verdict:
    """Agent replay of ``bundle`` through ``agent`` (a module-level function of a test)."""
    return tracekit.replay(bundle, guard=guard if guard is not None else tracekit.Guard(),
                           entrypoint=f"{agent.__module__}:{agent.__name__}")


def bundle_events(bundle: Path) -> list[dict[str, Any]]:
    return pq.read_table(bundle / "events.parquet").to_pylist()


def replay_state() -> dict[str, Any]:
    """What an agent replay sets aside while it runs: all of it back once it is over."""
    return {"replay": PROCESS.replay, "pinned": PROCESS.pinned,
            "settings": PROCESS._settings, "recorder": PROCESS.sink,
            "runtime": PROCESS.runtime, "connect": socket.socket.connect,
            "getaddrinfo": socket.getaddrinfo,
            "httpx": (httpx.HTTPTransport.handle_request, httpx.Client._send_single_request)}
