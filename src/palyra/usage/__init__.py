"""Usage accounting and limits: the usage ledger, its reports, and limits and budgets per
client token, agent and provider."""

from palyra.usage.facts import UsageFact
from palyra.usage.ledger import UsageLedger
from palyra.usage.ledger_schema import USAGE_SCHEMA, usage_ledger
from palyra.usage.limiter import BUDGET_STATUS, Admission, Limiter, Scope
from palyra.usage.metering import Metering
from palyra.usage.report import GROUPS, UsageRow, group_problem, spent, usage_report
from palyra.usage.windows import MemoryWindows, Taken, Windows

__all__ = [
    "BUDGET_STATUS",
    "GROUPS",
    "USAGE_SCHEMA",
    "Admission",
    "Limiter",
    "MemoryWindows",
    "Metering",
    "Scope",
    "Taken",
    "UsageFact",
    "UsageLedger",
    "UsageRow",
    "Windows",
    "group_problem",
    "spent",
    "usage_ledger",
    "usage_report",
]
