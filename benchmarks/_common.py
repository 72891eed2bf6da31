"""Helpers shared by the benchmark steps: statistics, machine facts, payloads, RSS sampling."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

#: the small tool-call payload every contender records (no redaction hint words in it)
PAYLOAD: dict[str, Any] = {
    "query": "flights from Paris to Tokyo",
    "max_results": 5,
    "cabin": "economy",
    "dates": ["2026-12-20", "2027-01-04"],
}
TOOL_NAME = "search_flights"
PROGRESS_LABEL = "itinerary_drafted"


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(values: list[float]) -> dict[str, float]:
    """Median, p10, p90, min and count of a sample."""
    return {
        "median": statistics.median(values) if values else float("nan"),
        "p10": quantile(values, 0.10),
        "p90": quantile(values, 0.90),
        "min": min(values) if values else float("nan"),
        "n": len(values),
    }


def rss_kb() -> int:
    """This process's resident set size now, from /proc/self/status (kB); 0 if unknown."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """A daemon thread that samples VmRSS every ``period`` seconds and keeps the peak.

    It also keeps the CPU time of every live thread, by name, as last seen: a thread that ends
    between two samples loses at most ``period`` of it.
    """

    def __init__(self, period: float = 0.05) -> None:
        self.period = period
        self.peak_kb = rss_kb()
        self.samples: list[tuple[float, int]] = []
        self.thread_cpu_s: dict[str, float] = {}  # thread name -> CPU seconds (last seen)
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            kb = rss_kb()
            self.peak_kb = max(self.peak_kb, kb)
            self.samples.append((time.perf_counter() - self._t0, kb))
            self._sample_threads()

    def _sample_threads(self) -> None:
        """CPU seconds used so far by each live thread, from /proc/self/task/<tid>/stat."""
        for t in threading.enumerate():
            if t.native_id is None:
                continue
            try:
                with open(f"/proc/self/task/{t.native_id}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # after "pid (comm)": state is field 3, utime 14 and stime 15 (1-based)
            cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK
            self.thread_cpu_s[t.name] = max(self.thread_cpu_s.get(t.name, 0.0), cpu)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        kb = rss_kb()
        self.peak_kb = max(self.peak_kb, kb)
        self.samples.append((time.perf_counter() - self._t0, kb))
        self._sample_threads()

    def curve(self, points: int = 40) -> list[tuple[float, float]]:
        """(seconds, MB) downsampled to about ``points`` samples, each the max of its slice."""
        if not self.samples:
            return []
        step = max(1, len(self.samples) // points)
        out = []
        for i in range(0, len(self.samples), step):
            chunk = self.samples[i:i + step]
            out.append((round(chunk[-1][0], 2), round(max(kb for _, kb in chunk) / 1024, 1)))
        return out


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def source() -> dict[str, Any]:
    """Which tracekit code is measured: its path, and its git commit when it has one."""
    import subprocess

    import tracekit

    pkg = Path(tracekit.__file__).resolve().parent
    out: dict[str, Any] = {"path": str(pkg), "label": os.environ.get("TRACEKIT_BENCH_SOURCE")}
    if out["label"]:  # a snapshot (run.py --snapshot): the label names its commit
        return out

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(pkg), *args], capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        out["commit"] = git("rev-parse", "HEAD")
        out["dirty"] = bool(git("status", "--porcelain", "--", "."))
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare this run with theirs."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = float("nan")
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                    break
    except OSError:
        pass
    import sqlite3

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gb": mem_gb,
        "loadavg_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "tracekit_source": source(),
        "versions": {
            name: _version(name)
            for name in ("tracekit", "duckdb", "pyarrow", "numpy", "opentelemetry-sdk")
        } | {"sqlite": sqlite3.sqlite_version},
    }
