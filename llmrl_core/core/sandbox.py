"""Run user-typed Python in a separate, long-lived worker process with a time limit per call.

Custom rewards are functions typed into the page. Running them in the server process would
let one infinite loop or segfault take the whole app down, so the code is executed in a
fresh Python interpreter (like multiprocessing's 'spawn'; never fork, since the server has
threads and torch state that must not be copied). It is started with `python -c` rather
than `multiprocessing.Process` because spawn re-runs the parent's main script in the child,
which fails for any caller script without an `if __name__ == "__main__"` guard and costs a
second for Streamlit's. Messages travel over a multiprocessing Connection on a socket pair
of their own, so the user's prints (which go to the server's console) cannot corrupt them. The worker stays alive between calls, so imports
and set-up in the user's code run once. A call that exceeds its time limit gets the worker
killed; the next call starts a fresh one.

The worker also limits itself at start-up (resource.setrlimit): its address space
(MEMORY_LIMIT_BYTES, so a runaway allocation raises MemoryError instead of swapping the
machine), its CPU time per call (CPU_LIMIT_S, all threads together), and no core files. It
dies with the process that started it (PR_SET_PDEATHSIG on Linux), so a killed training
worker leaves no orphan behind, and it sees the server's environment without its secrets
(security.scrub_environment: no HF_TOKEN, WANDB_API_KEY, AWS_*...).

This is isolation against mistakes, not a security boundary: the worker runs as the same
user with the same rights. Whether user code may run at all is decided by the callers
(llmrl_core.core.security.custom_code_allowed).
"""

from __future__ import annotations

import ast
import ctypes
import linecache
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import traceback
import weakref
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from llmrl_core.core.errors import InputError, WorkbenchError
from llmrl_core.core.security import scrub_environment

# Limits of the worker; CodeSandbox takes others per instance, None lifts one.
MEMORY_LIMIT_BYTES = 4 * 2**30  # address space (RLIMIT_AS): importing numpy and CPU torch reserves ~0.8 GiB of it;
#                                 CUDA reserves far more, so a reward that uses the GPU needs None
CPU_LIMIT_S = 60.0  # CPU seconds per call, all threads together (RLIMIT_CPU, re-armed before each call);
#                     above the default 10 s wall-clock limit, it catches many-threaded work and a worker left unwatched

CODE_FILENAME = "<your code>"  # the name tracebacks show for the user's code
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])  # so the worker can import llmrl_core
_START_TIMEOUT_FLOOR_S = 60.0  # running the module body may import heavy libraries (numpy, torch)
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class SandboxError(WorkbenchError):
    """The user's code raised, returned something unusable, or its worker died."""


class SandboxTimeout(SandboxError):
    """A call took longer than its time limit; the worker was killed and will be restarted."""


# --------------------------------------------------------------------------- checks in the parent


def check_code(code: str, function_name: str) -> None:
    """Raise InputError unless `code` parses and defines `function_name` at top level."""
    if not isinstance(code, str) or not code.strip():
        raise InputError(f"The code is empty: define a function `def {function_name}(...)`.")
    try:
        tree = ast.parse(code, filename=CODE_FILENAME)
    except SyntaxError as err:
        where = f"line {err.lineno}" + (f", column {err.offset}" if err.offset else "")
        shown = f": {err.text.strip()}" if err.text else ""
        raise InputError(f"Your code has a syntax error at {where} ({err.msg}){shown}") from err
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    if function_name not in defined:
        found = ", ".join(sorted(defined)) or "none"
        raise InputError(
            f"Your code must define a top-level function named `{function_name}` (functions found: {found})."
        )


def format_bytes(n: int) -> str:
    """2**32 -> '4 GiB', 1536 * 2**20 -> '1.5 GiB', 300 * 2**20 -> '300 MiB'."""
    return f"{n / 2**30:g} GiB" if n >= 2**30 else f"{n / 2**20:g} MiB"


def describe_user_error(err: BaseException, code: str, memory_limit_bytes: int | None = None) -> str:
    """One line for an exception raised by user code: its type, message and the line of the code it came from."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == CODE_FILENAME]
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, MemoryError) and memory_limit_bytes is not None:
        text = (f"MemoryError: your code needed more memory than the sandbox allows "
                f"({format_bytes(memory_limit_bytes)} of address space)")
    if frames:
        last = frames[-1]
        lines = code.splitlines()
        source = lines[last.lineno - 1].strip() if last.lineno and last.lineno <= len(lines) else ""
        text += f" (line {last.lineno} of your code, in {last.name}: `{source}`)"
    return text


# --------------------------------------------------------------------------- the worker


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect (we were re-parented)
        os._exit(1)


def _set_limit(kind: int, soft: int) -> None:
    """Lower one resource limit's soft value (and for RLIMIT_AS/CORE the hard one), never above the hard limit."""
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    try:
        resource.setrlimit(kind, (soft, hard if kind == resource.RLIMIT_CPU else soft))
    except (ValueError, OSError):  # e.g. macOS does not enforce RLIMIT_AS; the wall-clock limit still holds
        pass


def _arm_cpu_limit(seconds: float | None) -> None:
    """Let this process use `seconds` more CPU time (all threads); past that the kernel sends SIGXCPU, which kills it."""
    if seconds is None:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _set_limit(resource.RLIMIT_CPU, math.ceil(usage.ru_utime + usage.ru_stime + seconds))


def apply_worker_limits(parent_pid: int, memory_limit_bytes: int | None) -> None:
    """At the worker's start-up: die with the parent, write no core files, cap the address space."""
    _die_with_parent(parent_pid)
    _set_limit(resource.RLIMIT_CORE, 0)
    if memory_limit_bytes is not None:
        _set_limit(resource.RLIMIT_AS, int(memory_limit_bytes))


def _serve(conn: Any, code: str, function_name: str, memory_limit_bytes: int | None = None,
           cpu_limit_s: float | None = None) -> None:
    """Worker main loop: define the function once, then answer (args, kwargs) messages until None or EOF."""
    # Let tracebacks show the user's source lines.
    linecache.cache[CODE_FILENAME] = (len(code), None, code.splitlines(True), CODE_FILENAME)
    namespace: dict[str, Any] = {"__name__": "__user_code__"}
    try:
        exec(compile(code, CODE_FILENAME, "exec"), namespace)  # noqa: S102 - running user code is this module's job
        fn = namespace.get(function_name)
        if not callable(fn):
            raise TypeError(f"`{function_name}` is not a function")
    except BaseException as err:  # report anything, even SystemExit, as a start-up failure
        conn.send(("error", describe_user_error(err, code, memory_limit_bytes)))
        return
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        if message is None:
            return
        args, kwargs = message
        _arm_cpu_limit(cpu_limit_s)
        try:
            result = fn(*args, **kwargs)
            if not isinstance(result, (list, tuple, dict, str, int, float, bool, type(None))):
                result = list(result)  # numpy arrays, generators: materialise before pickling
            conn.send(("ok", result))
        except BaseException as err:
            try:
                conn.send(("error", describe_user_error(err, code, memory_limit_bytes)))
            except Exception:  # the result itself could not be sent
                conn.send(("error", f"{type(err).__name__}: {err}"))


def worker_main(fd: int, parent_pid: int, memory_limit_bytes: int | None = None,
                cpu_limit_s: float | None = None) -> None:
    """Entry point of the worker interpreter: limit itself, receive (code, function name) on `fd`, then serve calls."""
    apply_worker_limits(parent_pid, memory_limit_bytes)
    _arm_cpu_limit(None if cpu_limit_s is None else max(cpu_limit_s, _START_TIMEOUT_FLOOR_S))  # the module body
    conn = Connection(fd)
    try:
        code, function_name = conn.recv()
    except (EOFError, OSError):
        return
    _serve(conn, code, function_name, memory_limit_bytes, cpu_limit_s)


# --------------------------------------------------------------------------- the parent's handle

_launcher: ThreadPoolExecutor | None = None
_launcher_lock = threading.Lock()


def _launch(args: list[str], **popen_kwargs: Any) -> subprocess.Popen:
    """subprocess.Popen on one long-lived thread of this process.

    Linux sends PR_SET_PDEATHSIG when the *thread* that started the child ends (prctl(2)), and
    Streamlit runs each script in a thread of its own, so a worker started there would die
    with the script run instead of with the server.
    """
    global _launcher
    with _launcher_lock:
        if _launcher is None:
            _launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-launcher")
    return _launcher.submit(subprocess.Popen, args, **popen_kwargs).result()


def _describe_exit(returncode: int | None, cpu_limit_s: float | None) -> str:
    """Why a worker ended, in words: its exit code, or the CPU-time limit it ran into."""
    if returncode == -signal.SIGXCPU:
        return f"it used more than its {cpu_limit_s:g} s of CPU time (all threads together)"
    return f"exit code {returncode}"


def _stop_process(proc: subprocess.Popen, conn: Connection) -> None:
    """Kill a worker and close its channel (also used by the finalizer, so it takes plain objects)."""
    try:
        conn.close()
    except OSError:
        pass
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(1.0)


class CodeSandbox:
    """A user function running in its own worker process; call it like the function itself.

    `timeout_s` limits each call's wall-clock time, `cpu_limit_s` its CPU time and
    `memory_limit_bytes` the worker's address space (None: no limit). Creating the sandbox
    starts the worker and runs the code's module body, so mistakes (syntax, a failing import,
    no such function) surface here. Thread-safe: calls from several threads are serialised.
    """

    def __init__(self, code: str, function_name: str = "reward", timeout_s: float = 10.0,
                 memory_limit_bytes: int | None = MEMORY_LIMIT_BYTES, cpu_limit_s: float | None = CPU_LIMIT_S) -> None:
        if not timeout_s > 0:
            raise InputError(f"The time limit must be above 0 seconds (got {timeout_s!r}).")
        if cpu_limit_s is not None and not cpu_limit_s > 0:
            raise InputError(f"The CPU-time limit must be above 0 seconds, or None (got {cpu_limit_s!r}).")
        if memory_limit_bytes is not None and not memory_limit_bytes >= 2**27:
            raise InputError(f"The memory limit must be at least 128 MiB, or None (got {memory_limit_bytes!r} bytes); "
                             "a Python interpreter needs about that much address space to start.")
        check_code(code, function_name)
        self.code, self.function_name, self.timeout_s = code, function_name, float(timeout_s)
        self.memory_limit_bytes, self.cpu_limit_s = memory_limit_bytes, cpu_limit_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._finalizer: Any = None
        self.restarts = 0  # how many times a worker was killed and replaced
        with self._lock:
            self._start()

    def _start(self) -> None:
        """Start a worker interpreter, send it the code and wait until the function is defined."""
        parent_sock, child_sock = socket.socketpair()
        child_fd = child_sock.fileno()
        env = scrub_environment(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
        entry = (f"from llmrl_core.core.sandbox import worker_main; "
                 f"worker_main({child_fd}, {os.getpid()}, {self.memory_limit_bytes!r}, {self.cpu_limit_s!r})")
        proc = _launch([sys.executable, "-c", entry], pass_fds=(child_fd,), env=env, stdin=subprocess.DEVNULL,
                       close_fds=True)
        child_sock.close()
        parent = Connection(parent_sock.detach())
        self._proc, self._conn = proc, parent
        self._finalizer = weakref.finalize(self, _stop_process, proc, parent)
        parent.send((self.code, self.function_name))
        limit = max(self.timeout_s, _START_TIMEOUT_FLOOR_S)
        if not parent.poll(limit):
            self._kill()
            raise SandboxTimeout(f"Your code took more than {limit:.0f} s to start (running its top level); "
                                 "move slow work out of the module body.")
        try:
            status, payload = parent.recv()
        except (EOFError, OSError):
            proc.wait(1.0)
            why = _describe_exit(proc.returncode, max(self.cpu_limit_s or 0, _START_TIMEOUT_FLOOR_S))
            self._kill()
            raise SandboxError(f"The worker running your code exited while starting ({why}).") from None
        if status != "ready":
            self._kill()
            raise InputError(f"Your code failed when it was run: {payload}")

    def _kill(self) -> None:
        """Stop the current worker (if any); the next call starts a new one."""
        if self._finalizer is not None:
            self._finalizer()  # runs _stop_process once
        self._proc = self._conn = self._finalizer = None

    @property
    def alive(self) -> bool:
        """True while a worker process is running."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The worker's process id (None when no worker runs)."""
        return self._proc.pid if self._proc is not None else None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the user's function in the worker; raise SandboxError/SandboxTimeout with a clear message."""
        with self._lock:
            if not self.alive:
                if self._proc is not None:
                    self._kill()
                    self.restarts += 1
                self._start()
            try:
                self._conn.send((args, kwargs))
            except Exception as err:  # e.g. an argument that cannot be pickled
                raise SandboxError(f"Could not send the inputs to your code: {type(err).__name__}: {err}") from err
            if not self._conn.poll(self.timeout_s):
                self._kill()
                self.restarts += 1
                raise SandboxTimeout(
                    f"Your code did not return within {self.timeout_s:g} s, so it was stopped "
                    "(its worker was killed and a fresh one will run the next call). "
                    "Make it faster or raise the time limit."
                )
            try:
                status, payload = self._conn.recv()
            except (EOFError, OSError):
                try:
                    self._proc.wait(1.0)
                except subprocess.TimeoutExpired:
                    pass
                why = _describe_exit(self._proc.returncode, self.cpu_limit_s)
                self._kill()
                self.restarts += 1
                raise SandboxError(
                    f"The worker running your code died ({why}); a fresh one will run the next call."
                ) from None
            if status == "error":
                raise SandboxError(payload)
            return payload

    def close(self) -> None:
        """Stop the worker for good (a later call would start a new one)."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.send(None)  # polite stop first
                except OSError:
                    pass
                try:
                    self._proc.wait(0.5)
                except subprocess.TimeoutExpired:
                    pass
            self._kill()

    def __enter__(self) -> "CodeSandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
