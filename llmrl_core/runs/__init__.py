"""The run store (SQLite), the run kinds (kinds.py) and the run manager (worker processes) shared by every job."""

from llmrl_core.runs.kinds import RunKindSpec, get_kind, list_kinds, register_kind
from llmrl_core.runs.manager import JobContext, RunManager, StopRun, get_job, register_job
from llmrl_core.runs.store import ACTIVE_STATUSES, FINAL_STATUSES, RunStore

__all__ = ["ACTIVE_STATUSES", "FINAL_STATUSES", "JobContext", "RunKindSpec", "RunManager", "RunStore", "StopRun", "get_job",
           "get_kind", "list_kinds", "register_job", "register_kind"]
