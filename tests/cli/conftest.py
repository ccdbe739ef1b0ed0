"""Helpers shared by the CLI tests: run `edgeclust` (in-process or as a subprocess) and check its failures.

Tests get them as fixtures (`run_cli`, `assert_one_line_error`, `nothing_written`): with pytest's importlib
import mode a test module cannot import this file. `run_cli` goes through `edgeclust.cli.main.main`, the console
entry point, so the error mapping (one line, exit code, no traceback) is the one users get; `subprocess=True`
runs `python -m edgeclust` for real.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess as sp
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TOOLCHAIN = Path(__file__).resolve().parents[2] / "toolchain"
ERROR_PREFIX = "edgeclust: error:"


@dataclass(frozen=True)
class CliResult:
    """What one `edgeclust` run gave: its exit code and what it printed."""

    exit_code: int
    stdout: str
    stderr: str

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(ERROR_PREFIX)]


def run_cli(
    args, cwd: str | os.PathLike | None = None, *, subprocess: bool = False, debug: bool = False, timeout: float = 600
) -> CliResult:
    """Run `edgeclust ARGS` in `cwd`; in-process through the entry point, or as `python -m edgeclust`."""
    args = [str(a) for a in args]
    env_debug = "1" if debug else ""
    if subprocess:
        env = {**os.environ, "PYTHONPATH": str(TOOLCHAIN), "EDGECLUST_DEBUG": env_debug, "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = sp.run(
            [sys.executable, "-m", "edgeclust", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)
    return _run_in_process(args, cwd, env_debug)


def _run_in_process(args: list[str], cwd, env_debug: str) -> CliResult:
    from edgeclust.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved_debug = os.environ.get("EDGECLUST_DEBUG")
    os.environ["EDGECLUST_DEBUG"] = env_debug
    code = 0
    try:
        with contextlib.chdir(cwd or os.getcwd()), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        if saved_debug is None:
            os.environ.pop("EDGECLUST_DEBUG", None)
        else:
            os.environ["EDGECLUST_DEBUG"] = saved_debug
    return CliResult(code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: CliResult, code: int, *fragments: str) -> str:
    """Exit `code`, exactly one 'edgeclust: error:' line on stderr holding every fragment, no traceback."""
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}; stderr: {result.stderr!r}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def snapshot(folder: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """Every path under `folder` (hidden ones included) with its size and modification time."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@contextlib.contextmanager
def assert_nothing_written(folder: str | os.PathLike):
    """Fails when a file under `folder` was created, changed or removed inside the `with` block."""
    before = snapshot(folder)
    yield
    after = snapshot(folder)
    assert after == before, f"files changed: {sorted(set(after.items()) ^ set(before.items()))}"


@pytest.fixture(name="run_cli")
def run_cli_fixture():
    """`run_cli(args, cwd, subprocess=False, debug=False)` -> CliResult(exit_code, stdout, stderr)."""
    return run_cli


@pytest.fixture(name="assert_one_line_error")
def assert_one_line_error_fixture():
    """`assert_one_line_error(result, code, *fragments)` -> the error line."""
    return assert_one_line_error


@pytest.fixture(name="nothing_written")
def nothing_written_fixture():
    """`with nothing_written(folder): ...` fails if anything under `folder` changed."""
    return assert_nothing_written


@pytest.fixture(autouse=True)
def warnings_are_errors(monkeypatch):
    """Generated projects built by `edgeclust flash` in these tests compile with -Wall -Wextra -Werror."""
    monkeypatch.setenv("WARNINGS", "-Wall -Wextra -Werror")
