"""LiteLLM, recorded and guarded: ``completion`` / ``acompletion`` and ``TracekitLogger``.

``tracekit.integrations.litellm.completion(...)`` (and ``acompletion``) is
``litellm.completion`` with, inside a run, the guard's kill switch checked before the call (a
halted run's next model call is refused before it is sent), the prompt recorded, and the answer
recorded as the model output (a new step, the guard's step and cost bounds judged there) with
its usage, its cost (LiteLLM's own ``response_cost``; tracekit's price table when LiteLLM has
none) and its tool calls normalised in the output's attrs as ``[{"id", "name", "arguments"}]``.
Streams reach the caller chunk by chunk and are recorded when they end. In agent replay LiteLLM
is not called: the recorded answers are served as LiteLLM's own ``ModelResponse`` (streams as
``ModelResponseStream`` chunks). Outside a run it is LiteLLM's own, untouched.

``TracekitLogger`` is a LiteLLM ``CustomLogger`` for the calls that do not go through these
wrappers (``litellm.completion`` called directly inside a run): ``TracekitLogger.register()``
adds it to ``litellm.callbacks`` and its kill switch to ``litellm.pre_call_rules``, so such a
call in a halted run is refused before it is sent, and it warns (once) that the call is not
recorded. Why the recording is not in a callback: litellm 1.110 runs a logger's success
events after the call has returned (``completion``: in a thread pool, dropped when the pool is
full; ``acompletion``: in a task), and swallows every exception a logger's
``log_pre_api_call`` raises; only a pre-call *rule* can refuse a call (LiteLLM applies its
rules to chat completions whose first message is a dict with a ``content``).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import litellm
from litellm.integrations.custom_logger import CustomLogger

from .._capture.run import current_run
from .._integrations.litellm import in_wrapper, wrap_completion
from .._integrations.prices import Prices
from ..errors import Halted, TracekitWarning

__all__ = ["Completions", "TracekitLogger", "acompletion", "completion"]


class Completions:
    """``litellm.completion`` and ``acompletion``, recorded and guarded, with their own price
    table: ``prices`` adds to or overrides the shipped one (USD per million tokens), for the
    models LiteLLM cannot price."""

    def __init__(self, *, prices: Mapping[str, Mapping[str, float]] | None = None) -> None:
        table = Prices.shipped(prices)
        self.completion: Callable[..., Any] = wrap_completion(litellm.completion, table, False)
        self.acompletion: Callable[..., Any] = wrap_completion(litellm.acompletion, table, True)


_DEFAULT = Completions()
#: ``litellm.completion``, recorded and guarded inside a run
completion = _DEFAULT.completion
#: ``litellm.acompletion``, recorded and guarded inside a run
acompletion = _DEFAULT.acompletion


class TracekitLogger(CustomLogger):
    """The kill switch for the chat completions LiteLLM sends inside a run that tracekit's
    wrappers did not make, and a warning that they are not recorded."""

    def __init__(self) -> None:
        super().__init__()
        self._warned = False
        self._lock = threading.Lock()

    @classmethod
    def register(cls) -> TracekitLogger:
        """Add one logger to ``litellm.callbacks`` and its rule to ``litellm.pre_call_rules``
        (again: the one registered already). Returns it."""
        for callback in litellm.callbacks:
            if isinstance(callback, cls):
                return callback
        logger = cls()
        litellm.logging_callback_manager.add_litellm_callback(logger)
        litellm.pre_call_rules = [*litellm.pre_call_rules, logger.pre_call_rule]
        return logger

    def unregister(self) -> None:
        """Take this logger out of every list LiteLLM copied it into, and its rule out."""
        litellm.logging_callback_manager.remove_callback_from_all_lists(self)
        litellm.pre_call_rules = [r for r in litellm.pre_call_rules if r != self.pre_call_rule]

    def pre_call_rule(self, text: str) -> bool:
        """A LiteLLM pre-call rule (called with the prompt's text, before anything is sent;
        what it raises reaches the caller): a halted run's call raises ``tracekit.Halted``,
        its refusal recorded."""
        run = current_run()
        if run is None or in_wrapper.get() or run._guard is None:
            return True  # no run, or the wrapper checked it already
        try:
            run._guard.check_flags()
        except Halted as halt:
            run._refused(halt)
            raise
        return True

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        """Before each request LiteLLM sends: a call inside a run that tracekit does not
        record is warned about, once."""
        if self._warned or in_wrapper.get() or current_run() is None:
            return
        with self._lock:  # one warning, whichever thread litellm calls it from
            first, self._warned = not self._warned, True
        if not first:
            return
        warnings.warn(
            f"litellm call to {model!r} inside a tracekit run is not recorded (the guard's kill "
            "switch still applies): call tracekit.integrations.litellm.completion / "
            "acompletion instead of litellm's",
            TracekitWarning,
            stacklevel=2,
        )
