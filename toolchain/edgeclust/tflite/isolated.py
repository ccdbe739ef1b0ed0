"""Run what can kill a process (TensorFlow's converter and int8 calibrator, the TFLite Micro and LiteRT
interpreters) in a child process, so that a crash in their C++ becomes one error line instead of the end of
edgeclust.

One worker per edgeclust process: a fresh interpreter (`python -m edgeclust.tflite.isolated`, never a fork:
TensorFlow is usually loaded in the parent already, and forking it is unsafe), started on first use and
reused by every call after it, so a build pays the worker's start-up (and its TensorFlow import) once. A
worker that died is replaced on the next call. Requests and replies are pickled frames over its stdin and a
copy of its stdout; the libraries' own output on descriptors 1 and 2 goes where the parent's descriptor 2
goes (the CLI points it at /dev/null unless EDGECLUST_DEBUG is set).

`call("edgeclust.tflite.parity", "_run_tflm_here", data, x)` returns what the function returns, raises what
it raises (an EdgeclustError stays one), and raises `Crashed` when the worker dies during the call.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path

_HEADER = struct.Struct("<Q")


class Crashed(Exception):
    """The worker died during a call: killed by `signal_number`, or exited with `exit_code`."""

    def __init__(self, signal_number: int | None, exit_code: int | None):
        self.signal_number = signal_number
        self.exit_code = exit_code
        super().__init__(self.how)

    @property
    def how(self) -> str:
        """'signal 11' (SIGSEGV), 'signal 6' (SIGABRT, a failed CHECK) or 'exit code N'."""
        if self.signal_number is not None:
            return f"signal {self.signal_number}"
        return f"exit code {self.exit_code}"


class _Worker:
    def __init__(self):
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgeclust.tflite.isolated"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the parent's descriptor 2: /dev/null under the CLI unless EDGECLUST_DEBUG
            env=env,
            start_new_session=False,
        )
        self.pending = 0  # replies to warm-up requests not read yet

    def send(self, module: str, function: str, args, kwargs) -> None:
        _write_frame(self.process.stdin, pickle.dumps((module, function, args, kwargs), protocol=5))

    def call(self, module: str, function: str, args, kwargs):
        try:
            self.send(module, function, args, kwargs)
            while self.pending:  # a warm-up's reply comes first; what it raised does not matter here
                if _read_frame(self.process.stdout) is None:
                    break
                self.pending -= 1
            reply = _read_frame(self.process.stdout)
        except (BrokenPipeError, EOFError, OSError):
            reply = None
        if reply is None:
            code = self.process.wait()
            raise Crashed(-code if code < 0 else None, code if code >= 0 else None)
        return pickle.loads(reply)

    def close(self) -> None:
        """End the worker at once: it holds nothing worth waiting for (a warm-up may still be importing)."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        self.process.kill()
        self.process.wait()


_lock = threading.Lock()
_worker: _Worker | None = None


def call(module: str, function: str, *args, **kwargs):
    """`module.function(*args, **kwargs)` in the worker process (started on first use)."""
    global _worker
    with _lock:
        if _worker is None or _worker.process.poll() is not None:
            _worker = _Worker()
        try:
            status, value = _worker.call(module, function, args, kwargs)
        except Crashed as crash:
            _worker = None
            if crash.signal_number == signal.SIGINT:  # Ctrl-C reached the worker first
                raise KeyboardInterrupt from None
            raise
        except BaseException:  # interrupted while waiting: the worker's state is unknown
            _worker.process.kill()
            _worker = None
            raise
    if status == "ok":
        return value
    if status == "raise":
        raise value
    name, message = value
    raise RuntimeError(f"{name}: {message}")


def warm(module: str) -> None:
    """Start the worker if needed and have it import `module` in the background (TensorFlow takes seconds);
    returns at once. The next `call` waits for it."""
    global _worker
    with _lock:
        if _worker is None or _worker.process.poll() is not None:
            _worker = _Worker()
        try:
            _worker.send("importlib", "import_module", (module,), {})
            _worker.pending += 1
        except OSError:  # a dead worker is replaced by the next call
            _worker = None


def shutdown() -> None:
    """Stop the worker (the next call starts a new one)."""
    global _worker
    with _lock:
        if _worker is not None:
            _worker.close()
            _worker = None


atexit.register(shutdown)


def _write_frame(stream, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read_exact(stream, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream) -> bytes | None:
    header = _read_exact(stream, _HEADER.size)
    if header is None:
        return None
    return _read_exact(stream, _HEADER.unpack(header)[0])


def _serve() -> None:
    """The worker's loop: one request in, one reply out, until its stdin closes."""
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what the libraries print goes to stderr, never into the replies
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends the worker with the parent
    while True:
        frame = _read_frame(requests)
        if frame is None:
            return
        module, function, args, kwargs = pickle.loads(frame)
        try:
            value = getattr(importlib.import_module(module), function)(*args, **kwargs)
            reply = ("ok", None if module == "importlib" else value)
            payload = pickle.dumps(reply, protocol=5)
        except Exception as exc:
            try:
                payload = pickle.dumps(("raise", exc), protocol=5)
                pickle.loads(payload)
            except Exception:
                payload = pickle.dumps(("unpicklable", (type(exc).__name__, str(exc))), protocol=5)
        _write_frame(replies, payload)


if __name__ == "__main__":
    _serve()
