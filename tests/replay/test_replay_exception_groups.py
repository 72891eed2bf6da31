"""An agent whose halt reaches the entry point inside an exception group (asyncio.TaskGroup,
anyio, an MCP session) is judged by agent replay like one whose halt is bare."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _replaying import export, replay

import tracekit

FIRED: list[str] = []


@tracekit.tool(writes=True, destination="payments")
async def refund(order_id: str, attempt: int) -> str:
    FIRED.append(order_id)
    return "refunded"


async def _loop() -> None:
    with tracekit.run(tenant="acme") as run:
        for attempt in range(10):
            run.model_output("refund again", cost_usd=0.01)
            async with asyncio.TaskGroup() as group:  # the halt leaves wrapped in a group
                group.create_task(refund("42", attempt % 1))


@tracekit.entrypoint
def handle() -> None:
    asyncio.run(_loop())


def test_a_halt_inside_an_exception_group_is_contained_in_replay(
        tmp_path: Path, store: Path) -> None:
    tracekit.configure(store=store, guard=tracekit.Guard(max_repeats=3))
    try:
        with pytest.raises(ExceptionGroup) as caught:
            handle()
        assert isinstance(caught.value.exceptions[0], tracekit.Halted)
    finally:
        tracekit.configure(store=store, guard=False)
    bundle = export(store, tmp_path, "grouped")
    FIRED.clear()
    verdict = replay(bundle, handle, tracekit.Guard(max_repeats=3))
    assert verdict.contained and verdict.signal == "repeats", verdict.describe()
    assert FIRED == []  # replay served the tool's results
