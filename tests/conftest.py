"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _redis import RedisServer

import tracekit

# litellm fetches its price map from the network when imported unless told not to: every test,
# and every eval-gate subprocess a test starts, stays offline
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """A store root in tmp_path that this process records into; shut down afterwards."""
    root = tmp_path / "store"
    tracekit.configure(store=root)
    yield root
    tracekit.shutdown()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, initialised as a tracekit control store."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server.initialise()
    server.kill()


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """The same, with persistence: its data survives a kill and restart on the same port."""
    server = RedisServer(tmp_path / "redis-aof", persist=True)
    server.start()
    yield server.initialise()
    server.kill()
