"""LangSmith run exports, built from the SDK's own types: each run a ``langsmith.schemas.Run``
(what ``Client.list_runs`` yields), dumped as a user exporting a project's runs would: a JSON
list of ``run.model_dump(mode="json")``, or one run a line with ``langsmith``'s ``dumps_json``.

Two agents that run the same command over and over: a LangGraph agent traced by LangChain's
tracer (``dumpd`` messages, ``LLMResult.model_dump()`` outputs with their ``generations``, tool
runs whose output is a ``ToolMessage``) and a ``@traceable`` agent calling a ``wrap_openai``
client (OpenAI-style message dicts in, the ``ChatCompletion`` dump with its ``usage_metadata``
out). The runs are listed newest first, as ``list_runs`` gives them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from langchain_core.load import dumpd
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langsmith._internal._serde import dumps_json
from langsmith._internal._usage import _create_usage_metadata
from langsmith.schemas import Run
from openai.types.chat import ChatCompletion

SECRET = "sk-proj-" + "Q7v2Lm9Xc4Rt8Wz1Kp6Hs3Nd5Fg0Jb2Ye7Ua4Ti9"  # pasted in a prompt: never stored
ISSUE = f"TimeDelta serialization precision is off. CI uses OPENAI_API_KEY={SECRET}"
COMMAND = "python reproduce.py"
LOOP_OUTPUT = "344\n"
START = datetime(2025, 6, 2, 14, 3, 10, tzinfo=UTC)
PROJECT = uuid.UUID("5a1d0c3e-0000-4000-8000-00000000beef")
MODEL = "gpt-4o-mini"
TOKENS = (2_000, 60)
COST = Decimal("0.000336")  # 2000 x 0.15 / 1M + 60 x 0.6 / 1M
SYSTEM = "You are a coding agent. Use the bash tool."
RECURSION = "GraphRecursionError('Recursion limit of 12 reached without hitting a stop condition.')"
_TOOL_SPEC = {"type": "function", "function": {"name": "bash", "description": "Run a command.",
              "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                             "required": ["command"]}}}  # fmt: skip


class _Trace:
    """Runs being recorded: each a child of the run it is started under, ids from a counter,
    dotted orders as LangSmith makes them (``<start %Y%m%dT%H%M%S%fZ><id>``, joined by ``.``)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.runs: list[Run] = []
        self.t = START
        self.root: Run | None = None

    def run(
        self, name: str, run_type: str, parent: Run | None, took_s: float, **fields: Any
    ) -> Run:
        run_id = uuid.UUID(int=(self.seed << 64) + len(self.runs) + 1)
        start = self.t
        self.t += timedelta(seconds=took_s)
        order = f"{start:%Y%m%dT%H%M%S%fZ}{run_id}"
        trace_id = self.root.id if self.root else run_id
        error = fields.get("error")
        extra = fields.pop("extra", {"metadata": {}})
        run = Run(id=run_id, name=name, run_type=run_type, start_time=start,
                  end_time=start + timedelta(seconds=took_s), trace_id=trace_id,
                  parent_run_id=parent.id if parent else None,
                  dotted_order=f"{parent.dotted_order}.{order}" if parent else order,
                  session_id=PROJECT, status="error" if error else "success", extra=extra,
                  events=[{"name": "start", "time": start.isoformat()},
                          {"name": "end", "time": (start + timedelta(seconds=took_s)).isoformat()}],
                  tags=fields.pop("tags", []), **fields)  # fmt: skip
        self.runs.append(run)
        if self.root is None:
            self.root = run
        return run

    def wait(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)

    def close(self, run: Run, **fields: Any) -> None:
        """The run ends now, with ``fields`` (its outputs, its error)."""
        run.end_time = self.t
        for key, value in fields.items():
            setattr(run, key, value)
        if fields.get("error"):
            run.status = "error"


def _llm_extra(node: str, step: int) -> dict[str, Any]:
    return {"invocation_params": {"model": MODEL, "model_name": MODEL, "stream": False, "n": 1,
                                  "temperature": 0.0, "_type": "openai-chat", "stop": None,
                                  "tools": [_TOOL_SPEC]},
            "options": {"stop": None}, "batch_size": 1,
            "metadata": {"langgraph_node": node, "langgraph_step": step, "ls_provider": "openai",
                         "ls_model_name": MODEL, "ls_model_type": "chat",
                         "ls_temperature": 0.0, "thread_id": "thread-1867"},
            "runtime": {"sdk": "langsmith-py", "sdk_version": "0.15.1", "library": "langchain-core",
                        "runtime": "python"}}  # fmt: skip


def _usage_fields() -> dict[str, Any]:
    return {"prompt_tokens": TOKENS[0], "completion_tokens": TOKENS[1],
            "total_tokens": sum(TOKENS), "prompt_cost": Decimal("0.0003"),
            "completion_cost": Decimal("0.000036"), "total_cost": COST}  # fmt: skip


def langgraph_runs(loops: int = 6, *, fail_tool: bool = False) -> list[Run]:
    """A LangGraph ReAct agent traced by LangChain: the graph's root ``LangGraph`` chain, then
    ``loops`` x (an ``agent`` node with its ``ChatOpenAI`` call asking for ``bash``, a
    ``tools`` node with the ``bash`` tool run), until the recursion limit fails the graph.
    Each model call 2 s, each command 0.5 s. ``fail_tool``: the last command times out."""
    trace = _Trace(1)
    history: list[BaseMessage] = [SystemMessage(SYSTEM), HumanMessage(ISSUE)]
    root = trace.run("LangGraph", "chain", None, 0.0,
                     inputs={"messages": [dumpd(HumanMessage(ISSUE))]},
                     extra={"metadata": {"thread_id": "thread-1867"}},
                     tags=["repro"])  # fmt: skip
    trace.wait(0.01)
    for i in range(loops):
        call_id = f"call_{i + 1:02d}"
        node = trace.run("agent", "chain", root, 0.0, tags=[f"graph:step:{2 * i + 1}"],
                         inputs={"messages": [dumpd(m) for m in history]})  # fmt: skip
        answer = AIMessage(content="", tool_calls=[{"name": "bash", "args": {"command": COMMAND},
                                                    "id": call_id, "type": "tool_call"}],
                           usage_metadata={"input_tokens": TOKENS[0], "output_tokens": TOKENS[1],
                                           "total_tokens": sum(TOKENS)},
                           response_metadata={"model_name": f"{MODEL}-2024-07-18",
                                              "finish_reason": "tool_calls"},
                           id=f"run-{i + 1}")  # fmt: skip
        usage = {"prompt_tokens": TOKENS[0], "completion_tokens": TOKENS[1]}
        result = LLMResult(generations=[[ChatGeneration(message=answer)]],
                           llm_output={"model_name": f"{MODEL}-2024-07-18",
                                       "token_usage": usage})  # fmt: skip
        outputs = result.model_dump()
        outputs["generations"][0][0]["message"] = dumpd(answer)  # as _complete_llm_run does
        sent = {"messages": [[dumpd(m) for m in history]]}
        extra = _llm_extra("agent", 2 * i + 1)
        trace.run("ChatOpenAI", "llm", node, 2.0, inputs=sent, outputs=outputs, extra=extra,
                  tags=["seq:step:1"], **_usage_fields())  # fmt: skip
        trace.close(node, outputs={"messages": [dumpd(answer)]})
        history.append(answer)
        tools = trace.run("tools", "chain", root, 0.0, inputs={"messages": [dumpd(answer)]})
        failed = fail_tool and i == loops - 1
        reply = ToolMessage(LOOP_OUTPUT, name="bash", tool_call_id=call_id)
        trace.run("bash", "tool", tools, 0.5, inputs={"command": COMMAND},
                  outputs=None if failed else {"output": dumpd(reply)},
                  error="TimeoutError('command timed out after 0.5 s')" if failed else None,
                  extra={"metadata": {"langgraph_node": "tools", "ls_tool": True}})  # fmt: skip
        trace.close(tools, outputs={"messages": [dumpd(reply)]})
        history.append(reply)
    trace.close(root, error=RECURSION)
    return trace.runs[::-1]  # newest first


def openai_runs(loops: int = 6) -> list[Run]:
    """A ``@traceable`` agent (``repro_agent``) calling a ``wrap_openai`` client and its own
    ``@traceable(run_type="tool")`` bash function ``loops`` times, then answering."""
    trace = _Trace(2)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM},
                                      {"role": "user", "content": ISSUE}]  # fmt: skip
    root = trace.run("repro_agent", "chain", None, 0.0, inputs={"issue": ISSUE},
                     extra={"metadata": {"ls_run_depth": 0, "env": "ci"}})  # fmt: skip
    for i in range(loops + 1):
        call_id = f"call_oa{i + 1:02d}"
        calls = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": "bash", "arguments": json.dumps({"command": COMMAND})},
            }
        ]
        message = {"role": "assistant", "content": None if i < loops else "It prints 344.",
                   "tool_calls": calls if i < loops else None}  # fmt: skip
        completion = ChatCompletion.model_validate(
            {"id": f"chatcmpl-{i + 1}", "object": "chat.completion", "created": 1748872990 + i,
             "model": f"{MODEL}-2024-07-18",
             "choices": [{"index": 0, "finish_reason": "tool_calls" if i < loops else "stop",
                          "message": message}],
             "usage": {"prompt_tokens": TOKENS[0], "completion_tokens": TOKENS[1],
                       "total_tokens": sum(TOKENS)}})  # fmt: skip
        outputs = completion.model_dump()  # wrap_openai's _process_chat_completion
        outputs["usage_metadata"] = _create_usage_metadata(outputs.pop("usage"))
        extra = {"invocation_params": {"model": MODEL, "temperature": 0},
                 "metadata": {"ls_provider": "openai", "ls_model_name": MODEL,
                              "ls_model_type": "chat", "ls_run_depth": 1}}  # fmt: skip
        trace.run("ChatOpenAI", "llm", root, 1.5,
                  inputs={"messages": list(messages), "model": MODEL, "tools": [_TOOL_SPEC],
                          "temperature": 0}, outputs=outputs, extra=extra,
                  total_cost=COST)  # fmt: skip
        if i == loops:
            break
        messages.append({k: v for k, v in message.items() if v is not None})
        trace.run("bash", "tool", root, 0.25, inputs={"command": COMMAND},
                  outputs={"output": LOOP_OUTPUT})  # fmt: skip
        messages.append({"role": "tool", "tool_call_id": call_id, "content": LOOP_OUTPUT})
    trace.close(root, outputs={"output": "It prints 344."})
    return trace.runs[::-1]


def write_runs(path: Path, runs: list[Run], *, lines: bool = False) -> Path:
    """The runs as a JSON list of their ``model_dump(mode="json")``, or one a line
    (``dumps_json``)."""
    if lines:
        path.write_bytes(b"".join(dumps_json(run) + b"\n" for run in runs))
    else:
        path.write_text(json.dumps([run.model_dump(mode="json") for run in runs], indent=2))
    return path
