"""Foreign traces into the store, as runs that show, query, export, make-test and replay like
recorded ones (``tracekit import``).

A reader module per kind of file turns it into ``Unit``s of ``Draft``s (``drafts``); ``load``
orders them into runs and writes them. ``READERS`` names the module of each format; every
reader module has ``sniff(path, head) -> bool`` (is this file mine? ``head``: its first 64 KiB
as text, gunzipped) and ``read(path, fmt) -> Iterator[Unit]``.
"""

__all__ = ["FORMATS", "READERS"]

#: format name -> the module of ``tracekit._import`` that reads it; "auto" asks each in turn
READERS: dict[str, str] = {
    "otlp-json": "spans",  # OTLP/JSON spans of either convention below
    "otel-genai": "spans",  # OpenTelemetry's GenAI conventions (gen_ai.*)
    "openinference": "spans",  # OpenInference's conventions (openinference.span.kind)
    "swe-agent": "swe_agent",  # SWE-agent's .traj trajectories
    "openhands": "openhands",  # OpenHands event streams (a JSON list, or one event a line)
    "vcr": "vcr",  # vcrpy cassettes of model API traffic (plain JSON bodies so far)
    "inspect": "inspect_log",  # Inspect AI eval logs (.eval or .json)
    "langfuse": "langfuse",  # Langfuse traces with their observations (API or UI exports)
    "langsmith": "langsmith",  # LangSmith run exports (runs of a trace)
    "jsonl": "jsonl",  # one event a line, tracekit's own columns (last: it takes any such line)
}

#: what ``tracekit import --format`` takes
FORMATS = ("auto", *READERS)
