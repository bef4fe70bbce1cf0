"""User-facing errors: each carries a message that says what went wrong and what to change.

The UI and the CLI show `str(err)` as is, so messages are written for people, not for logs.
"""


class WorkbenchError(Exception):
    """Base class for errors whose message is meant for the user."""


class ModelLoadError(WorkbenchError):
    """A model spec could not be resolved or loaded."""


class InputError(WorkbenchError):
    """A user-supplied value (prompt, setting, file) is invalid."""


class StoreError(WorkbenchError):
    """The run store or the workbench home is unusable."""
