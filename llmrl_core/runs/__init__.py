"""The run store (SQLite) and the run manager (background threads) shared by every job."""

from llmrl_core.runs.manager import JobContext, RunManager, StopRun, get_job, register_job
from llmrl_core.runs.store import ACTIVE_STATUSES, FINAL_STATUSES, RunStore

__all__ = ["ACTIVE_STATUSES", "FINAL_STATUSES", "JobContext", "RunManager", "RunStore", "StopRun", "get_job", "register_job"]
