"""Policy replay judges first-seen destinations as the live guard does: the bundle carries the
destinations each tenant had written to before the incident began, and a write to one of them
is not new in the replay.

acme has paid through ``payments/stripe`` for weeks; in the incident its agent pays there once,
then starts paying to ``payments/attacker``. With ``new_destination = "halt"`` the live guard
halts the second write: so must the replay, with the first effect counted before the halt.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tracekit

SENT: list[str] = []


@tracekit.tool(writes=True, destination=lambda to, amount: f"payments/{to}")
def pay(to: str, amount: int) -> str:
    SENT.append(to)
    return f"paid {amount} to {to}"


def _agent(tenant: str, payees: list[str]) -> str:
    with tracekit.run(tenant=tenant) as run:
        for i, to in enumerate(payees):
            run.model_output(f"pay {to}", cost_usd=0.01)
            pay(to, 10 + i)
        return run.run_id


def _store_with_history(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    tracekit.configure(store=store, guard=False)
    _agent("acme", ["stripe"])  # a healthy run, before the incident
    _agent("globex", ["attacker"])  # another tenant's destinations are not acme's
    return store


def _export(store: Path, run_id: str, tmp_path: Path) -> Path:
    assert tracekit.flush(30)
    return tracekit.export_incident([run_id], "incident-dest", out=tmp_path / "incidents",
                                    store=store)


def test_replay_halts_at_the_first_write_to_a_destination_the_tenant_never_used(
        tmp_path: Path) -> None:
    store = _store_with_history(tmp_path)
    incident = _agent("acme", ["stripe", "attacker", "attacker"])
    bundle = _export(store, incident, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["known_destinations"] == {"acme": ["payments/stripe"]}

    verdict = tracekit.replay(bundle, guard=tracekit.Guard(new_destination="halt"))
    assert verdict.contained, verdict.describe()
    assert verdict.signal == "new_destination" and verdict.step == 2
    assert "payments/attacker" in (verdict.reason or "")
    assert [e["destination"] for e in verdict.effects] == ["payments/stripe"]

    # the live guard, on the same history, halts at the same write
    tracekit.configure(store=store, guard=tracekit.Guard(new_destination="alert"))
    try:
        _agent("acme", ["stripe"])  # the live control store learns acme's destination
        tracekit.configure(store=store, guard=tracekit.Guard(new_destination="halt"))
        SENT.clear()
        with pytest.raises(tracekit.Halted) as live:
            _agent("acme", ["stripe", "attacker", "attacker"])
        assert live.value.signal == "new_destination" and SENT == ["stripe"]
    finally:
        tracekit.configure(store=store, guard=False)


def test_writes_only_to_known_destinations_pass_and_alert_does_not_halt(tmp_path: Path) -> None:
    store = _store_with_history(tmp_path)
    known_only = _export(store, _agent("acme", ["stripe", "stripe"]), tmp_path)
    verdict = tracekit.replay(known_only, guard=tracekit.Guard(new_destination="halt"))
    assert not verdict.contained and len(verdict.effects) == 2, verdict.describe()

    attacked = _agent("acme", ["attacker"])
    assert tracekit.flush(30)
    bundle = tracekit.export_incident([attacked], "incident-alert", out=tmp_path / "incidents",
                                      store=store)
    assert not tracekit.replay(bundle, guard=tracekit.Guard(new_destination="alert")).contained
    assert tracekit.replay(bundle, guard=tracekit.Guard(new_destination="halt")).contained


def test_a_bundle_without_destination_history_says_so(tmp_path: Path) -> None:
    store = _store_with_history(tmp_path)
    bundle = _export(store, _agent("acme", ["stripe"]), tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["known_destinations"]  # as an older tracekit wrote it
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    verdict = tracekit.replay(bundle, guard=tracekit.Guard(new_destination="alert"))
    assert "no destination history" in (verdict.note or "")
    assert tracekit.replay(bundle, guard=tracekit.Guard()).note is None
