"""Agents' own log files, written the way the agents write them: SWE-agent's ``.traj``
trajectories (``DefaultAgent.get_trajectory_data``: ``trajectory``, ``history``, ``info``,
``replay_config`` as JSON text, ``environment``; ``json.dumps(..., indent=2)``) and OpenHands'
event streams (its serialized ``Action`` / ``Observation`` events)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

SECRET = "sk-live-9c8b7a6d5e4f3a2b1c0d"  # an API key pasted into an issue: never stored
INSTANCE = "marshmallow-code__marshmallow-1867"
ISSUE = f"TimeDelta serialization precision is off. CI uses OPENAI_API_KEY={SECRET}"
COMMAND = "python reproduce.py"
LOOP_OUTPUT = "344\n"

_SYSTEM = "SETTING: You are an autonomous programmer, working directly in the command line."


def swe_agent_traj(
    loops: int = 6,
    *,
    function_calling: bool = True,
    with_query: bool = True,
    exit_status: str = "submitted (exit_cost)",
) -> dict[str, Any]:
    """A SWE-agent run on marshmallow 1867 that runs the reproduction script ``loops`` times
    over, then (``exit_status`` starting "submitted") submits; with ``exit_cost`` in it, as
    the agent's autosubmission after its cost limit (a step with no model call). Function
    calling: the assistant messages carry OpenAI-style ``tool_calls`` of the ``bash`` tool;
    else the thought-action parser's plain text. ``with_query``: SWE-agent >= 1.1 (each step
    its ``query``); else the older steps (``state`` as JSON text, no query)."""
    history: list[dict[str, Any]] = [
        {"role": "system", "content": _SYSTEM, "agent": "main", "message_type": "system_prompt"},
        {
            "role": "user",
            "content": f"<uploaded_files>\n/marshmallow\n</uploaded_files>\n{ISSUE}",
            "agent": "main",
            "message_type": "observation",
        },
    ]
    trajectory: list[dict[str, Any]] = []
    actions = [COMMAND] * loops
    autosubmit = "exit_cost" in exit_status
    if not autosubmit:
        actions.append("submit")
    for i, action in enumerate(actions):
        thought = "Let me run the reproduction script again to see the output."
        if action == "submit":
            thought = "The fix is in place; submitting."
        observation = LOOP_OUTPUT if action == COMMAND else _PATCH
        _step(history, trajectory, i, thought, action, observation, function_calling, with_query)
    if autosubmit:
        _autosubmission(history, trajectory, with_query)
    sent, received = 9_000 * len(actions), 150 * len(actions)
    info = {
        "swe_agent_hash": "b5ee5d1",
        "swe_agent_version": "1.1.0",
        "swe_rex_version": "1.2.1",
        "swe_rex_hash": "unavailable",
        "submission": _PATCH,
        "exit_status": exit_status,
        "edited_files30": "",
        "edited_files50": "",
        "edited_files70": "",
        "model_stats": {
            "instance_cost": 0.0126 * len(actions),
            "tokens_sent": sent,
            "tokens_received": received,
            "api_calls": len(actions),
        },
    }
    return {
        "trajectory": trajectory,
        "history": history,
        "info": info,
        "replay_config": json.dumps(_replay_config()),
        "environment": "main",
    }


def write_traj(path: Path, traj: dict[str, Any]) -> Path:
    """The file as ``DefaultAgent.save_trajectory`` writes it."""
    path.write_text(json.dumps(traj, indent=2))
    return path


_PATCH = (
    "diff --git a/src/marshmallow/fields.py b/src/marshmallow/fields.py\n"
    "--- a/src/marshmallow/fields.py\n+++ b/src/marshmallow/fields.py\n"
    "@@ -1474 +1474 @@\n-        return int(value.total_seconds() / base_unit.total_seconds())\n"
    "+        return int(round(value.total_seconds() / base_unit.total_seconds()))\n"
)


def _step(
    history: list[dict[str, Any]],
    trajectory: list[dict[str, Any]],
    i: int,
    thought: str,
    action: str,
    observation: str,
    function_calling: bool,
    with_query: bool,
) -> None:
    """One step as ``DefaultAgent.step`` records it: the query (the history so far), then the
    assistant message and the observation appended to the history, then the trajectory step."""
    query = [dict(m) for m in history]
    call_id = f"call_{i + 1:02d}ABCDEF"
    tool_calls = None
    response = thought if function_calling else f"{thought}\n\n```\n{action}\n```"
    if function_calling:
        submit = action == "submit"
        function = {
            "name": "submit" if submit else "bash",
            "arguments": "{}" if submit else json.dumps({"command": action}),
        }
        tool_calls = [{"index": 0, "id": call_id, "type": "function", "function": function}]
    history.append(
        {
            "role": "assistant",
            "content": response,
            "thought": thought,
            "action": action,
            "agent": "main",
            "tool_calls": tool_calls,
            "message_type": "action",
            "thinking_blocks": [],
        }
    )
    shown = {
        "role": "user",
        "content": f"OBSERVATION:\n{observation}",
        "agent": "main",
        "message_type": "observation",
    }
    if function_calling:
        shown |= {"role": "tool", "tool_call_ids": [call_id]}
    history.append(shown)
    state = {"working_dir": "/marshmallow"}
    step: dict[str, Any] = {
        "action": action,
        "observation": observation,
        "response": response,
        "thought": thought,
        "execution_time": 0.25 + 0.01 * i,
        "state": state if with_query else json.dumps(state),
    }
    if with_query:
        step |= {"query": query, "extra_info": {}}
    trajectory.append(step)


def _autosubmission(
    history: list[dict[str, Any]], trajectory: list[dict[str, Any]], with_query: bool
) -> None:
    """``attempt_autosubmission_after_error`` after the cost limit: a step the model never
    answered (its query the default ``[{}]``), the patch read from the container."""
    message = "Exit due to cost limit"
    history.append(
        {
            "role": "assistant",
            "content": message,
            "thought": message,
            "action": "",
            "agent": "main",
            "tool_calls": None,
            "message_type": "action",
            "thinking_blocks": [],
        }
    )
    history.append(
        {
            "role": "user",
            "content": "Exited (autosubmitted)",
            "agent": "main",
            "message_type": "observation",
        }
    )
    step: dict[str, Any] = {
        "action": "",
        "observation": "Exited (autosubmitted)",
        "response": message,
        "thought": message,
        "execution_time": 0.0,
        "state": {},
    }
    if with_query:
        step |= {"query": [{}], "extra_info": {}}
    trajectory.append(step)


def _replay_config() -> dict[str, Any]:
    """``RunSingleConfig.model_dump_json()`` (abridged): what SWE-agent keeps to replay a run."""
    return {
        "env": {
            "deployment": {"image": "python:3.11", "type": "docker"},
            "repo": {
                "github_url": "https://github.com/marshmallow-code/marshmallow",
                "base_commit": "HEAD",
                "type": "github",
            },
            "post_startup_commands": [],
            "name": "main",
        },
        "agent": {
            "name": "main",
            "type": "default",
            "model": {
                "name": "gpt-4o-mini",
                "per_instance_cost_limit": 3.0,
                "temperature": 0.0,
                "top_p": 1.0,
                "api_key": None,
            },
            "max_requeries": 3,
        },
        "problem_statement": {
            "github_url": "https://github.com/marshmallow-code/marshmallow/issues/1867",
            "extra_fields": {},
            "type": "github",
            "id": INSTANCE,
        },
        "output_dir": "trajectories/user/default__gpt-4o-mini__t-0.00__p-1.00__c-3.00",
        "actions": {"open_pr": False, "apply_patch_locally": False},
        "env_var_path": None,
    }


OH_START = datetime(2025, 6, 2, 14, 3, 10)  # OpenHands writes datetime.now().isoformat()
_OH_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "execute_bash",
            "description": "Execute a bash command in the terminal.",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "finish",
            "description": "Finish the task.",
            "parameters": {
                "type": "object",
                "properties": {"message": {"type": "string"}},
                "required": ["message"],
            },
        },
    },
]


def openhands_events(
    loops: int = 6,
    *,
    finish: bool = False,
    fail_last: bool = False,
) -> list[dict[str, Any]]:
    """A CodeActAgent conversation (function calling) as ``event_to_dict`` writes its events:
    the system prompt, the user's task (with a pasted key), the workspace recall, then
    ``loops`` x (a ``run`` of the reproduction script the model chose, its output), then
    either the stuck detector's ``error`` state or (``finish``) a ``finish`` call. Every
    model call 2 s, every command 0.5 s; the running cost rises 0.01 a call."""
    log = _OpenHandsLog()
    log.add(
        0.0,
        {
            "source": "agent",
            "message": "You are OpenHands agent",
            "action": "system",
            "args": {
                "content": "You are OpenHands agent, a helpful AI assistant.",
                "tools": _OH_TOOLS,
                "openhands_version": "0.40.0",
                "agent_class": "CodeActAgent",
            },
        },
    )
    log.add(
        0.5,
        {
            "source": "user",
            "message": ISSUE,
            "action": "message",
            "args": {
                "content": ISSUE,
                "image_urls": None,
                "file_urls": None,
                "wait_for_response": False,
            },
        },
    )
    recall = log.add(
        0.1,
        {
            "source": "user",
            "message": "Retrieving content for: TimeDelta",
            "action": "recall",
            "args": {"recall_type": "workspace_context", "query": ISSUE, "thought": ""},
        },
    )
    log.add(
        0.1,
        {
            "source": "environment",
            "message": "Added workspace context",
            "cause": recall,
            "observation": "recall",
            "content": "Added workspace context",
            "extras": {"recall_type": "workspace_context", "repo_name": "marshmallow"},
        },
    )
    log.state("running")
    for i in range(loops):
        failed = fail_last and i == loops - 1
        log.call(
            i,
            "execute_bash",
            {"command": COMMAND},
            "run",
            {
                "command": COMMAND,
                "is_input": False,
                "thought": "Let me run the script again.",
                "blocking": False,
                "is_static": False,
                "cwd": None,
                "hidden": False,
                "confirmation_state": "confirmed",
                "security_risk": -1,
            },
            failed,
        )
    if finish:
        log.call(
            loops,
            "finish",
            {"message": "Done."},
            "finish",
            {"final_thought": "Done.", "outputs": {}, "thought": "", "task_completed": "true"},
            False,
            answered=False,
        )
        log.state("finished")
    else:
        log.state("error", "AgentStuckInLoopError: Agent got stuck in a loop")
    return log.events


def write_events(path: Path, events: list[dict[str, Any]], *, lines: bool = False) -> Path:
    """The stream as a saved trajectory (a JSON list), or one event a line."""
    if lines:
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
    else:
        path.write_text(json.dumps(events, indent=2))
    return path


class _OpenHandsLog:
    """An event stream being written: ids in order, each event's time after the last."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.t = OH_START
        self.cost = 0.0
        self.tokens = (0, 0)

    def add(self, after_s: float, event: dict[str, Any]) -> int:
        self.t += timedelta(seconds=after_s)
        self.events.append({"id": len(self.events), "timestamp": self.t.isoformat(), **event})
        return len(self.events) - 1

    def state(self, state: str, reason: str = "") -> None:
        self.add(
            0.01,
            {
                "source": "environment",
                "message": "",
                "observation": "agent_state_changed",
                "content": "",
                "extras": {"agent_state": state, "reason": reason},
            },
        )

    def call(
        self,
        i: int,
        function: str,
        arguments: dict[str, Any],
        action: str,
        args: dict[str, Any],
        failed: bool,
        answered: bool = True,
    ) -> None:
        """A model response calling ``function``, its action and (``answered``) the
        observation the runtime gave it."""
        call_id = f"toolu_{i + 1:02d}"
        self.cost += 0.01
        self.tokens = (self.tokens[0] + 2_000, self.tokens[1] + 60)
        metadata = {
            "function_name": function,
            "tool_call_id": call_id,
            "model_response": _model_response(i, call_id, function, arguments),
            "total_calls_in_response": 1,
        }
        metrics = {
            "accumulated_cost": round(self.cost, 6),
            "max_budget_per_task": None,
            "accumulated_token_usage": {
                "model": "default",
                "prompt_tokens": self.tokens[0],
                "completion_tokens": self.tokens[1],
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "context_window": 200_000,
                "per_turn_token": 2_060,
                "response_id": "",
            },
            "costs": [],
            "response_latencies": [],
            "token_usages": [],
        }
        cause = self.add(
            2.0,
            {
                "source": "agent",
                "message": f"Running command: {COMMAND}",
                "action": action,
                "tool_call_metadata": metadata,
                "llm_metrics": metrics,
                "args": args,
                "timeout": 120.0,
            },
        )
        if not answered:
            return
        if failed:
            self.add(
                0.5,
                {
                    "source": "agent",
                    "message": "Sandbox is not responding",
                    "cause": cause,
                    "observation": "error",
                    "tool_call_metadata": metadata,
                    "content": "Sandbox is not responding",
                    "extras": {"error_id": ""},
                },
            )
            return
        self.add(
            0.5,
            {
                "source": "agent",
                "message": f"Command `{COMMAND}` executed with exit code 0.",
                "cause": cause,
                "observation": "run",
                "tool_call_metadata": metadata,
                "content": LOOP_OUTPUT,
                "extras": {
                    "command": COMMAND,
                    "metadata": {
                        "exit_code": 0,
                        "pid": -1,
                        "username": "root",
                        "hostname": "sandbox",
                        "working_dir": "/workspace/marshmallow",
                        "py_interpreter_path": "/openhands/poetry/bin/python",
                        "prefix": "",
                        "suffix": "\n[The command completed with exit code 0.]",
                    },
                    "hidden": False,
                },
                "success": True,
            },
        )


def _model_response(i: int, call_id: str, function: str, arguments: dict[str, Any]) -> dict:
    """litellm's ``ModelResponse.model_dump()`` for a response that calls one tool."""
    return {
        "id": f"chatcmpl-oh{i + 1:03d}",
        "created": 1748872990 + i,
        "model": "gpt-4o-mini",
        "object": "chat.completion",
        "system_fingerprint": "fp_oh",
        "choices": [
            {
                "finish_reason": "tool_calls",
                "index": 0,
                "message": {
                    "content": "Let me run the script again.",
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "function": {"arguments": json.dumps(arguments), "name": function},
                            "id": call_id,
                            "type": "function",
                        }
                    ],
                    "function_call": None,
                },
            }
        ],
        "usage": {
            "completion_tokens": 60,
            "prompt_tokens": 2_000,
            "total_tokens": 2_060,
            "completion_tokens_details": None,
            "prompt_tokens_details": None,
        },
        "service_tier": None,
    }
