"""Agent replay of what an entry point does besides calling the agent: ``configure()`` inside it is
undone after replay, and an argument named in ``secrets=`` is recorded redacted.

The replay gets the redaction marker in the secret's place.

As in test_agent_replay.py, the agents are module-level functions of this file, replayed with
``tracekit.replay(bundle, entrypoint=f"{__name__}:function")``. ``KNOBS`` varies an agent
between recording and replay, ``outputs`` carries back what it saw.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _replaying import export, replay, replay_state

import tracekit
from tracekit._capture.state import PROCESS
from tracekit.testing import Recording

KNOBS: dict[str, Any] = {}
outputs: list[Any] = []
MARKER = "[REDACTED]"
# a credential that matches none of the redactor's value patterns: only the entry point's
# ``secrets=`` can keep it out
ENTRY_KEY = "3f9a1c7e2b8d4a6f9e0c1b2a3d4e5f60"  # a hex key: no pattern knows it is one


@pytest.fixture(autouse=True)
def _fresh_agents() -> Iterator[None]:
    KNOBS.clear()
    outputs.clear()
    yield
    KNOBS.clear()
    outputs.clear()


# -- the read tool the agents call -----------------------------------------------------------------
@tracekit.tool
def echo_tool(x: int) -> int:
    return x


# -- t12: configure() inside the entry point is undone after replay -------------------------------
@tracekit.entrypoint
def configuring_agent(tenant: str) -> None:
    if "prod_store" in KNOBS:  # the app's startup, in its entry point
        tracekit.configure(store=KNOBS["prod_store"], release={"model": "prod"})
    with tracekit.run(tenant=tenant):
        echo_tool(x=1)


def test_configure_in_the_entry_point_is_undone_after_replay(store: Path,
                                                             tmp_path: Path) -> None:
    configuring_agent("acme")
    bundle = export(store, tmp_path, "configure")
    prod = tmp_path / "prod-store"
    KNOBS["prod_store"] = str(prod)
    before = replay_state()
    verdict = replay(bundle, configuring_agent)
    assert not verdict.contained and verdict.note is None
    assert replay_state() == before
    assert PROCESS.settings().store == store
    assert PROCESS.settings().release.model != "prod"
    assert not prod.exists()
    with tracekit.run(tenant="after"):
        pass
    tracekit.flush()
    assert Recording(store).rows("SELECT tenant FROM runs WHERE tenant = 'after'")
    assert not prod.exists()


# -- t21: @tracekit.entrypoint(secrets=...) -------------------------------------------------------
@tracekit.entrypoint(secrets=("openai_key",))
def keyed_agent(tenant: str, openai_key: str) -> None:
    with tracekit.run(tenant=tenant):
        outputs.append(openai_key)


def test_an_entry_point_secret_argument_is_recorded_redacted(store: Path,
                                                             tmp_path: Path) -> None:
    keyed_agent("acme", ENTRY_KEY)
    tracekit.flush()
    [entry] = Recording(store).rows("SELECT name, args FROM events WHERE kind = 'entry'")
    assert entry["name"] == f"{__name__}:keyed_agent"
    assert json.loads(entry["args"]) == {"tenant": "acme", "openai_key": MARKER}
    bundle = export(store, tmp_path, "keyed")
    for path in bundle.iterdir():
        assert ENTRY_KEY.encode() not in path.read_bytes(), path.name
    verdict = replay(bundle, keyed_agent)  # the replay gets the marker in its place
    assert not verdict.contained and outputs == [ENTRY_KEY, MARKER]
