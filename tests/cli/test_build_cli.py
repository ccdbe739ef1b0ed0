"""`edgeclust build` and `edgeclust demo` as users run them: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOOLCHAIN = Path(__file__).resolve().parents[2] / "toolchain"
ENV = {**os.environ, "PYTHONPATH": str(TOOLCHAIN), "EDGECLUST_DEBUG": "", "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture
def edgeclust(run_cli):
    """`python -m edgeclust ARGS` in a subprocess, as users run it (the shared runner of tests/cli/conftest.py)."""
    return lambda *args, cwd, timeout=600: run_cli(args, cwd, subprocess=True, timeout=timeout)


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    """Exit `code`, one `edgeclust: error:` line holding every fragment (after any progress lines), no traceback."""
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.stderr
    errors = result.error_lines()
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_build_prints_the_summary_and_writes_the_project(edgeclust, digits_inputs, tmp_path):
    model, data = digits_inputs
    result = edgeclust(
        "build",
        model,
        "--board",
        "qemu_mps2_an386",
        "--data",
        data,
        "--clusters",
        "8",
        "--epochs",
        "1",
        "--lr",
        "1e-4",
        "--parity-samples",
        "30",
        "--out",
        "out",
        cwd=tmp_path,
    )
    assert result.exit_code == 0, result.stderr
    assert "[1/" in result.stderr and "Generate firmware project" in result.stderr  # progress per stage
    assert "Accuracy on 30 test examples" in result.stdout
    assert "at most" in result.stdout and "(limit 8): PASS" in result.stdout
    assert "next: edgeclust flash out" in result.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["verify"]["max_unique_found"] <= 8


def test_unknown_board_lists_the_known_ones_and_writes_nothing(edgeclust, digits_inputs, tmp_path):
    model, data = digits_inputs
    result = edgeclust("build", model, "--board", "nope", "--data", data, "--out", "out", cwd=tmp_path)
    assert result.exit_code == 2
    assert "qemu_mps2_an386" in result.stderr and "qemu_lm3s6965evb" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_model_is_a_usage_error(edgeclust, digits_inputs, tmp_path):
    _, data = digits_inputs
    result = edgeclust(
        "build", tmp_path / "missing.keras", "--board", "qemu_mps2_an386", "--data", data, "--out", "out", cwd=tmp_path
    )
    assert_one_line_error(result, 2, "missing.keras")
    assert list(tmp_path.iterdir()) == []


def test_existing_out_is_refused(edgeclust, digits_inputs, tmp_path):
    model, data = digits_inputs
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    result = edgeclust("build", model, "--board", "qemu_mps2_an386", "--data", data, "--out", "out", cwd=tmp_path)
    assert_one_line_error(result, 2, "out", "--force")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]


def test_clusters_below_two_is_refused(edgeclust, digits_inputs, tmp_path):
    model, data = digits_inputs
    result = edgeclust(
        "build", model, "--board", "qemu_mps2_an386", "--data", data, "--clusters", "1", "--out", "out", cwd=tmp_path
    )
    assert_one_line_error(result, 2, "clusters")
    assert list(tmp_path.iterdir()) == []


def test_a_ram_budget_the_firmware_exceeds_is_one_line_naming_ram(edgeclust, digits_inputs, tmp_path):
    model, data = digits_inputs
    args = ("build", model, "--board", "qemu_mps2_an386", "--data", data, "--backend", "native", "--out", "out")
    result = edgeclust(*args, "--clusters", "8", "--epochs", "1", "--ram-budget", "1000", cwd=tmp_path)
    assert_one_line_error(result, 1, "does not fit qemu_mps2_an386", "--ram-budget 1,000", "RAM ", "of 1,000 bytes")
    assert list(tmp_path.iterdir()) == []
    result = edgeclust(*args, "--ram-budget", str(10**9), cwd=tmp_path)
    assert_one_line_error(result, 2, "--ram-budget 1,000,000,000 is more than qemu_mps2_an386's RAM")
    assert list(tmp_path.iterdir()) == []


def test_data_for_another_model_is_refused(edgeclust, digits_inputs, tmp_path, mnist_small):
    from edgeclust import data as edata

    model, _ = digits_inputs
    edata.save_npz(tmp_path / "mnist.npz", mnist_small.subset(train=20, test=5))
    result = edgeclust(
        "build", model, "--board", "qemu_mps2_an386", "--data", "mnist.npz", "--out", "out", cwd=tmp_path
    )
    assert_one_line_error(result, 2, "shape")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.npz"]


def test_ctrl_c_in_the_middle_of_a_build_leaves_nothing(digits_inputs, tmp_path):
    model, data = digits_inputs
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeclust",
            "build",
            str(model),
            "--board",
            "qemu_mps2_an386",
            "--data",
            str(data),
            "--epochs",
            "3",
            "--out",
            "out",
        ],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a job started in the background by a non-interactive shell (as CI runners do) inherits SIGINT
        # ignored; a terminal's Ctrl-C reaches a process with the default handler, so restore it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = ""
    deadline = time.monotonic() + 300
    while "Cluster and fine-tune" not in seen and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen += line
    assert "Cluster and fine-tune" in seen, seen
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=300)
    assert process.returncode == 130, seen + rest
    assert "interrupted; nothing was written" in rest
    assert "Traceback" not in rest
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_demo_runs_the_main_job(edgeclust, tmp_path):
    result = edgeclust("demo", "--no-run", "--out", "demo", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "Accuracy on" in result.stdout and "Board qemu_mps2_an386" in result.stdout
    counters = re.findall(r"^\[(\d+)/(\d+)\] (.+) \.\.\.$", result.stderr, re.M)
    assert counters[0][2] == "Train the demo model" and counters[-1][2] == "Write report"
    assert [(int(i), int(n)) for i, n, _ in counters] == [(i, len(counters)) for i in range(1, len(counters) + 1)]
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["verify"]["passed"] and report["parity"]["accuracy"]["tflm_int8"] > 0.85
    assert (tmp_path / "demo" / "plots" / "sizes.png").is_file()
    assert (tmp_path / "demo" / "firmware" / "board.json").is_file()
    assert report["backend"]["name"] in ("tflm", "native") and report["parity"]["firmware_equals_tflm_bit_for_bit"]
    assert (tmp_path / "demo" / "inputs" / "digits.npz").is_file()
