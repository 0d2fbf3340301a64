"""``RunEvent``: what an agent run reports, in order, to whoever follows it (cron, the console, a CLI).

Types: ``run_started``, ``model_delta``, ``tool_call``, ``tool_result``, ``turn_completed``, then
exactly one terminal event: ``run_completed``, ``run_failed``, ``run_cancelled`` or
``run_timed_out``. Terminal events carry ``reason``, ``error_category`` (a ``FailureClass`` value
or None) and ``usage`` totals ``{input_tokens, output_tokens}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

RUN_STARTED: Final = "run_started"
MODEL_DELTA: Final = "model_delta"
TOOL_CALL: Final = "tool_call"
TOOL_RESULT: Final = "tool_result"
TURN_COMPLETED: Final = "turn_completed"
RUN_COMPLETED: Final = "run_completed"
RUN_FAILED: Final = "run_failed"
RUN_CANCELLED: Final = "run_cancelled"
RUN_TIMED_OUT: Final = "run_timed_out"
TERMINAL_TYPES: Final = frozenset({RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED, RUN_TIMED_OUT})


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One step of a run; ``data`` is JSON-ready (str, numbers, bools, lists, dicts)."""

    type: str
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES


@dataclass
class UsageTotals:
    """Tokens a run has spent so far (provider-reported when the provider reports them)."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
