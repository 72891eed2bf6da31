"""The postmortem page: self-contained, complete, and trace content shown as text only."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tracekit
from tracekit._demo import run_demo
from tracekit._report.postmortem import build_postmortem, render_html, render_markdown
from tracekit.testing import recording

HOSTILE = ("<script>alert('pwned')</script>", "[click me](javascript:alert(1))",
           "![tracker](http://evil.example/pixel.png)", "<img src=x onerror=alert(1)>",
           "| broken | table |\n# heading")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("pm") / "store"
    result = run_demo(root, runaway_steps=12, guarded=False)
    tracekit.configure(store=tmp_path_factory.mktemp("elsewhere") / "store", guard=False)
    return root, result.runaway["run_id"]


def test_the_page_tells_what_happened(demo: tuple[Path, str]) -> None:
    store, runaway = demo
    page = build_postmortem(runaway, store=store)
    assert "13 steps" in page.summary and "1 side effect(s) fired at payments-api" in page.summary
    assert "11 duplicate(s) suppressed" in page.summary and "Nothing halted it" in page.summary
    assert page.release["prompt_version"] == "support-v14"
    assert [s["detector"] for s in page.signature][:1] == ["max_repeats"]
    bounds = {b["bound"]: b for b in page.bounds}  # suggest-bounds, in the page
    # suggested, not tightest: healthy runs never repeat a call (1), the margin makes it 2
    assert bounds["max_repeats"]["value"] == 2 and bounds["max_repeats"]["step"] == 4
    assert all(b["healthy_runs"] == 8 for b in page.bounds)
    assert "Bounds that would have contained it" in render_html(page)
    assert page.signature[0]["step"] == 5  # the 4th identical refund
    [scope] = page.scope
    assert (scope["destination"], scope["fired"], scope["suppressed"]) == ("payments-api", 1, 11)
    refunds = [t for t in page.timeline if t["kind"] == "tool_call" and t["name"] ==
               "issue_refund"]
    assert refunds[0]["ledger"][-1].startswith("fired payments-api")  # ledger beside the call
    assert refunds[1]["ledger"][-1].startswith("suppressed_duplicate")


def test_the_html_is_self_contained_with_its_charts(demo: tuple[Path, str]) -> None:
    store, runaway = demo
    text = render_html(build_postmortem(runaway, store=store))
    assert text.count("<svg") == 3 and "<polyline" in text
    for outside in ("<script", "src=", "href=", "url(", "@import", "<link", "<iframe"):
        assert outside not in text.lower(), outside
    assert text.count("<tr") > 60  # the timeline: every decision
    tracekit.configure(store=store.parent / "other", guard=tracekit.Guard(
        max_cost_usd=0.05, max_tool_calls_per_minute=30, max_writes_per_minute=5))
    try:  # the configured guard's bounds are drawn on the charts
        bounded = render_html(build_postmortem(runaway, store=store))
    finally:
        tracekit.configure(store=store.parent / "other", guard=False)
    assert {"bound 0.05", "bound 30", "bound 5"} <= set(re.findall(r"bound [\d.]+", bounded))


def test_trace_content_shows_as_text_only(tmp_path: Path) -> None:
    with recording(tmp_path / "store"):
        with tracekit.run(tenant=HOSTILE[1]) as run:
            run.prompt([{"role": "user", "content": HOSTILE[0]}])
            run.model_output(HOSTILE[2], cost_usd=0.01)
            run.call_tool(HOSTILE[3], lambda **kw: HOSTILE[4], note=HOSTILE[0])
            run.progress(HOSTILE[2])
        tracekit.flush()
        page = build_postmortem(run.run_id, store=tmp_path / "store")
    page_html = render_html(page)
    assert "<script" not in page_html and "<img" not in page_html and "<a " not in page_html
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page_html
    page_md = render_markdown(page)
    assert "<script" not in page_md and "<img" not in page_md
    assert not re.search(r"(?<!\\)\]\(", page_md)  # no link or image can open
    assert not re.search(r"(?<!\\)!(?<!\\)\[", page_md)
    assert r"\!\[tracker\](http://evil.example/pixel.png)" in page_md
    assert all(not line.startswith("# heading") for line in page_md.splitlines())
    blocks: list[list[str]] = [[]]
    for line in page_md.splitlines():  # every table's rows have the same number of cells
        if line.startswith("|"):
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    for block in (b for b in blocks if b):
        assert len({len(re.findall(r"(?<!\\)\|", line)) for line in block}) == 1, block


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no headless browser installed")
def test_the_page_renders_in_a_headless_browser(demo: tuple[Path, str], tmp_path: Path) -> None:
    store, runaway = demo
    page = tmp_path / "pm.html"
    page.write_text(render_html(build_postmortem(runaway, store=store)))
    out = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                          "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.count("<svg") == 3  # rendered, charts there
    assert "<polyline" in out.stdout and "Timeline" in out.stdout
    assert not re.findall(r":CONSOLE[^\n]*", out.stderr)  # chromium logs console messages so


def test_the_cli_writes_html_and_markdown(demo: tuple[Path, str], tmp_path: Path) -> None:
    store, runaway = demo
    tracekit.configure(store=store)
    bundle = tracekit.export_incident([runaway], "pm-1", tmp_path / "fx", store)
    tracekit.configure(store=tmp_path / "other", guard=False)
    cmd = [sys.executable, "-m", "tracekit", "postmortem"]
    out = subprocess.run([*cmd, "--incident", "pm-1", "--fixtures", str(bundle.parent),
                          "--html", str(tmp_path / "p.html"), "--md", str(tmp_path / "p.md")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "<svg" in (tmp_path / "p.html").read_text()
    assert (tmp_path / "p.md").read_text().startswith("# Postmortem: incident pm-1")
    printed = subprocess.run([*cmd, "--run", runaway[:-2], "--store", str(store)],
                             capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0 and "## Timeline" in printed.stdout
    both = subprocess.run([*cmd, "--store", str(store)], capture_output=True, text=True,
                          timeout=60)
    assert both.returncode == 1 and "give one of" in both.stderr
