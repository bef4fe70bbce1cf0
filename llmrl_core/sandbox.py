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

This is isolation against mistakes, not a security boundary: the worker runs as the same
user with the same rights. Whether user code may run at all is decided by the callers
(llmrl_core.security.custom_code_allowed).
"""

from __future__ import annotations

import ast
import linecache
import os
import socket
import subprocess
import sys
import threading
import traceback
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from llmrl_core.errors import InputError, WorkbenchError

CODE_FILENAME = "<your code>"  # the name tracebacks show for the user's code
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])  # so the worker can import llmrl_core
_START_TIMEOUT_FLOOR_S = 60.0  # running the module body may import heavy libraries (numpy, torch)


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


def describe_user_error(err: BaseException, code: str) -> str:
    """One line for an exception raised by user code: its type, message and the line of the code it came from."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == CODE_FILENAME]
    text = f"{type(err).__name__}: {err}"
    if frames:
        last = frames[-1]
        lines = code.splitlines()
        source = lines[last.lineno - 1].strip() if last.lineno and last.lineno <= len(lines) else ""
        text += f" (line {last.lineno} of your code, in {last.name}: `{source}`)"
    return text


# --------------------------------------------------------------------------- the worker


def _serve(conn: Any, code: str, function_name: str) -> None:
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
        conn.send(("error", describe_user_error(err, code)))
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
        try:
            result = fn(*args, **kwargs)
            if not isinstance(result, (list, tuple, dict, str, int, float, bool, type(None))):
                result = list(result)  # numpy arrays, generators: materialise before pickling
            conn.send(("ok", result))
        except BaseException as err:
            try:
                conn.send(("error", describe_user_error(err, code)))
            except Exception:  # the result itself could not be sent
                conn.send(("error", f"{type(err).__name__}: {err}"))


def worker_main(fd: int) -> None:
    """Entry point of the worker interpreter: receive (code, function name) on `fd`, then serve calls."""
    conn = Connection(fd)
    try:
        code, function_name = conn.recv()
    except (EOFError, OSError):
        return
    _serve(conn, code, function_name)


# --------------------------------------------------------------------------- the parent's handle


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

    `timeout_s` limits each call. Creating the sandbox starts the worker and runs the code's
    module body, so mistakes (syntax, a failing import, no such function) surface here.
    Thread-safe: calls from several threads are serialised.
    """

    def __init__(self, code: str, function_name: str = "reward", timeout_s: float = 10.0) -> None:
        if not timeout_s > 0:
            raise InputError(f"The time limit must be above 0 seconds (got {timeout_s!r}).")
        check_code(code, function_name)
        self.code, self.function_name, self.timeout_s = code, function_name, float(timeout_s)
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
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])))
        proc = subprocess.Popen(
            [sys.executable, "-c", f"from llmrl_core.sandbox import worker_main; worker_main({child_fd})"],
            pass_fds=(child_fd,), env=env, stdin=subprocess.DEVNULL, close_fds=True,
        )
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
            code = proc.returncode
            self._kill()
            raise SandboxError(f"The worker running your code exited while starting (exit code {code}).") from None
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
                code = self._proc.returncode
                self._kill()
                self.restarts += 1
                raise SandboxError(
                    f"The worker running your code died (exit code {code}); a fresh one will run the next call."
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
