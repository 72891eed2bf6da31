"""The example notebook runs top to bottom against a demo store (a real kernel, nbclient)."""

from __future__ import annotations

from pathlib import Path

import pytest

import tracekit
from tracekit._demo import run_demo

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "postmortem.ipynb"


def test_the_postmortem_notebook_runs_without_an_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run_demo(tmp_path / "store", runaway_steps=8, guarded=False)
    tracekit.configure(store=tmp_path / "elsewhere", guard=False)
    monkeypatch.setenv("TRACEKIT_HOME", str(tmp_path / "store"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "repeated_calls" in text and "issue_refund" in text
    assert any("image/svg+xml" in o.get("data", {}) for o in outputs)  # the chart
