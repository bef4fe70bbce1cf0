"""Mirror a run's metrics to the experiment trackers teams already use (TRL's ``report_to``).

A config's ``report_to`` lists tracker names, as in TRL's TrainingArguments:

  * ``tensorboard``: event files under ``$LLMRL_HOME/trackers/tensorboard/<run>`` (offline);
    view them with ``tensorboard --logdir $LLMRL_HOME/trackers/tensorboard``.
  * ``mlflow``: a local file store under ``$LLMRL_HOME/trackers/mlruns`` (offline), or the server
    named by ``MLFLOW_TRACKING_URI`` when that is set (checked to answer before the run starts).
    MLflow 3 keeps the file store in "maintenance mode" behind ``MLFLOW_ALLOW_FILE_STORE=true``
    (set here for our own store; set it too for ``mlflow ui --backend-store-uri file://...``):
    its database backend needs SQLAlchemy and Alembic, which mlflow-skinny leaves out.
  * ``wandb``: Weights & Biases; needs the ``wandb`` package and a network, unless
    ``WANDB_MODE=offline`` (or ``disabled``).
  * ``trackio``: Hugging Face's trackio; needs the ``trackio`` package, and a network only when
    ``TRACKIO_SPACE_ID`` sends the run to a Space.

Metric names are passed through unchanged: LM runs already use TRL's names (``reward``,
``kl``, ``completions/mean_length``...) and gym runs SB3's (``rollout/ep_rew_mean``...), so a
team's existing dashboards line up with ours. The run store stays the source of truth: a
tracker that raises mid-run is disabled with one warning in the run's log, never ends the run.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
import re
import socket
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol
from urllib.parse import urlparse

from llmrl_core.core.errors import InputError

KNOWN_TRACKERS = ("tensorboard", "mlflow", "wandb", "trackio")
MLFLOW_EXPERIMENT = "llmrl-workbench"  # every workbench run goes to one MLflow experiment
NETWORK_PROBE_SECONDS = 3.0  # how long a tracker's server may take to answer before we give up
_MLFLOW_BAD_CHARS = re.compile(r"[^\w\-. /:]")  # MLflow accepts letters, digits, _ - . space / (and :)

WarnFn = Callable[[str], None]


class Tracker(Protocol):
    """One tracker run: scalars in, closed once at the end."""

    name: str

    def log(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def close(self, status: str) -> None: ...


# --------------------------------------------------------------------------- checks


def check_report_to(names: Any) -> list[str]:
    """Validate a ``report_to`` value and return it as a clean list (no duplicates, lower case).

    Accepts a list of names or one name; ``None``, ``[]`` and ``"none"`` mean no tracker (as in TRL).
    An unknown name raises InputError with the closest known one. Cheap and offline: it does not
    check that a tracker is installed or reachable (``check_trackers_ready`` does, at the start).
    """
    if names is None:
        return []
    if isinstance(names, str):
        names = [part for part in re.split(r"[,\s]+", names) if part]
    if not isinstance(names, (list, tuple)):
        raise InputError(f"report_to must be a list of tracker names such as ['tensorboard'] (got {type(names).__name__}).")
    clean: list[str] = []
    for raw in names:
        name = str(raw).strip().lower()
        if name in ("", "none"):
            continue
        if name not in KNOWN_TRACKERS:
            close = difflib.get_close_matches(name, KNOWN_TRACKERS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"Unknown tracker {raw!r} in report_to{hint}; choose from {', '.join(KNOWN_TRACKERS)}.")
        if name not in clean:
            clean.append(name)
    return clean


def _is_installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _can_reach(url: str, timeout: float = NETWORK_PROBE_SECONDS) -> bool:
    """True when a TCP connection to the URL's host and port opens within `timeout` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def check_trackers_ready(names: list[str]) -> None:
    """Raise InputError, within seconds, for a tracker that is not installed or whose server is not reachable."""
    for name in check_report_to(names):
        module = {"tensorboard": "tensorboard", "mlflow": "mlflow"}.get(name, name)
        if not _is_installed(module):
            package = {"mlflow": "mlflow-skinny"}.get(name, name)
            raise InputError(f"report_to lists {name!r} but the package is not installed; install it with "
                             f"`pip install {package}` or remove {name!r} from report_to.")
        if name == "mlflow":
            uri = os.environ.get("MLFLOW_TRACKING_URI", "")
            if uri.startswith(("http://", "https://")) and not _can_reach(uri):
                raise InputError(f"MLFLOW_TRACKING_URI={uri} does not answer; start that MLflow server, or unset "
                                 "MLFLOW_TRACKING_URI to log to the local file store.")
        if name == "wandb" and os.environ.get("WANDB_MODE", "").lower() not in ("offline", "disabled", "dryrun"):
            host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
            if not _can_reach(host):
                raise InputError(f"report_to lists 'wandb' but {host} cannot be reached (no network?); set "
                                 "WANDB_MODE=offline to log locally and `wandb sync` later, or remove 'wandb'.")
        if name == "trackio" and os.environ.get("TRACKIO_SPACE_ID") and not _can_reach("https://huggingface.co"):
            raise InputError("report_to lists 'trackio' with TRACKIO_SPACE_ID set, but huggingface.co cannot be reached "
                             "(no network?); unset TRACKIO_SPACE_ID to log locally, or remove 'trackio'.")


# --------------------------------------------------------------------------- the trackers


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers among `metrics` (the store keeps NaN as a gap; trackers get nothing)."""
    out = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[str(key)] = number
    return out


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {'a.b': 'value'} for trackers' flat parameter tables."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


class TensorBoardTracker:
    """Scalars as TensorBoard event files (torch's SummaryWriter); the config as one text entry."""

    name = "tensorboard"

    def __init__(self, folder: Path, config: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = folder
        self.writer = SummaryWriter(log_dir=str(folder), flush_secs=10)
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in _flatten(config).items()), 0)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=step)

    def close(self, status: str) -> None:
        self.writer.close()


class MlflowTracker:
    """One MLflow run in the 'llmrl-workbench' experiment; the config as its parameters."""

    name = "mlflow"

    def __init__(self, tracking_uri: str, run_name: str, config: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # the workbench sends no usage data by default
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        experiment = self.client.get_experiment_by_name(MLFLOW_EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(MLFLOW_EXPERIMENT)
        self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id
        params = [Param(_mlflow_key(k), v[:6000]) for k, v in _flatten(config).items()]  # 6000: MLflow's value limit
        for start in range(0, len(params), 100):  # log_batch takes at most 100 params a call
            self.client.log_batch(self.run_id, params=params[start:start + 100], tags=[RunTag("source", "llmrl-workbench")])

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(_mlflow_key(k), v, now, step) for k, v in metrics.items()])

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status={"completed": "FINISHED", "stopped": "KILLED"}.get(status, "FAILED"))


def _mlflow_key(name: str) -> str:
    """A metric or parameter name MLflow accepts (other characters become '_')."""
    return _MLFLOW_BAD_CHARS.sub("_", name)


class WandbTracker:
    """One Weights & Biases run (online, or offline with WANDB_MODE=offline)."""

    name = "wandb"

    def __init__(self, folder: Path, run_name: str, config: Mapping[str, Any]) -> None:
        import wandb

        folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", MLFLOW_EXPERIMENT), name=run_name,
                              config=dict(config), dir=str(folder), reinit=True)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status in ("completed", "stopped") else 1)


class TrackioTracker:
    """One trackio run (local SQLite, or a Space with TRACKIO_SPACE_ID)."""

    name = "trackio"

    def __init__(self, run_name: str, config: Mapping[str, Any]) -> None:
        import trackio

        self.trackio = trackio
        self.run = trackio.init(project=os.environ.get("TRACKIO_PROJECT", MLFLOW_EXPERIMENT), name=run_name,
                                config=dict(config))

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.trackio.log(dict(metrics), step=step)

    def close(self, status: str) -> None:
        self.trackio.finish()


# --------------------------------------------------------------------------- the set a run holds


class Trackers:
    """The trackers of one run; a tracker that raises is dropped with one warning, the others go on."""

    def __init__(self, trackers: list[Tracker], warn: WarnFn) -> None:
        self.trackers = trackers
        self.warn = warn

    @property
    def names(self) -> list[str]:
        """Names of the trackers still active."""
        return [t.name for t in self.trackers]

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Send one step's finite scalars to every active tracker."""
        scalars = _scalars(metrics)
        if not scalars:
            return
        for tracker in list(self.trackers):
            try:
                tracker.log(int(step), scalars)
            except Exception as err:  # a tracker's failure must not end the run; the store has the metrics
                self._drop(tracker, f"failed at step {step}", err)

    def close(self, status: str = "completed") -> None:
        """End every tracker's run (flushes files); errors become warnings. Idempotent."""
        for tracker in list(self.trackers):
            try:
                tracker.close(status)
            except Exception as err:
                self._drop(tracker, "could not close", err)
        self.trackers = []

    def _drop(self, tracker: Tracker, what: str, err: Exception) -> None:
        self.trackers.remove(tracker)
        self.warn(f"Tracker {tracker.name!r} {what} ({type(err).__name__}: {err}); it is switched off for this run, "
                  "the run and its metrics in the workbench go on.")


def get_tracker_home() -> Path:
    """$LLMRL_HOME/trackers: where offline trackers write (tensorboard/, mlruns/, wandb/)."""
    from llmrl_core.core.paths import get_home

    return get_home() / "trackers"


def get_mlflow_uri(logdir: Path) -> str:
    """MLFLOW_TRACKING_URI when set, else a file store under `logdir`/mlruns (allowed through MLFLOW_ALLOW_FILE_STORE)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses a file store without it
    return (logdir / "mlruns").resolve().as_uri()


def open_trackers(names: list[str], run_name: str, config: Mapping[str, Any], logdir: Path,
                  warn: WarnFn | None = None, tags: Mapping[str, str] | None = None) -> Trackers:
    """Open one run in each tracker of `names` (validated first); `logdir` is the trackers' home folder.

    `run_name` names the run in every tracker and TensorBoard's folder (logdir/tensorboard/run_name).
    Raises InputError for an unknown, missing or unreachable tracker (before any is opened);
    `warn(message)` receives the warnings of trackers that fail later.
    """
    names = check_report_to(names)
    check_trackers_ready(names)
    warn = warn or (lambda message: None)
    opened: list[Tracker] = []
    folder_name = re.sub(r"[^\w.-]+", "_", run_name).strip("_") or "run"
    try:
        for name in names:
            if name == "tensorboard":
                opened.append(TensorBoardTracker(logdir / "tensorboard" / folder_name, config))
            elif name == "mlflow":
                opened.append(MlflowTracker(get_mlflow_uri(logdir), run_name, config, tags or {}))
            elif name == "wandb":
                opened.append(WandbTracker(logdir / "wandb", run_name, config))
            elif name == "trackio":
                opened.append(TrackioTracker(run_name, config))
    except InputError:
        Trackers(opened, warn).close("failed")
        raise
    except Exception as err:
        Trackers(opened, warn).close("failed")
        raise InputError(f"Could not open the {name!r} tracker: {type(err).__name__}: {err}. "
                         f"Remove {name!r} from report_to or fix its setup.") from err
    return Trackers(opened, warn)
