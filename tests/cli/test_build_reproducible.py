"""`edgeclust build` as a new user runs it, twice, in two separate processes: the same model, data, seed and
options give byte-identical files (timings aside), and stderr holds edgeclust's lines only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TOOLCHAIN = Path(__file__).resolve().parents[2] / "toolchain"
# edgeclust's own stderr lines: numbered stage lines and the indented lines within a stage
EDGECLUST_LINE = re.compile(r"^(\[\d+/\d+\] .+ \.\.\.|      \S.*)$")


def _user_env() -> dict[str, str]:
    """The environment of a user's shell: none of the TensorFlow log settings the test suite sets."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel", "ABSL_MIN_LOG_LEVEL", "EDGECLUST_DEBUG")
    }
    return env | {"PYTHONPATH": str(TOOLCHAIN)}


def _build(model: Path, data: Path, out: Path) -> subprocess.CompletedProcess:
    args = [
        sys.executable,
        "-m",
        "edgeclust",
        "build",
        str(model),
        "--board",
        "qemu_mps2_an386",
        "--data",
        str(data),
        "--clusters",
        "8",
        "--epochs",
        "1",
        "--parity-samples",
        "40",
        "--calibration-samples",
        "100",
        "--backend",
        "tflm",
        "--compress",
        "lut",
        "--out",
        str(out),
    ]
    return subprocess.run(args, env=_user_env(), capture_output=True, text=True, timeout=900)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def two_builds(digits_inputs, tmp_path_factory):
    model, data = digits_inputs
    folder = tmp_path_factory.mktemp("twice")
    runs = [_build(model, data, folder / name) for name in ("first", "second")]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    return runs, folder / "first", folder / "second"


def test_two_processes_write_byte_identical_files(two_builds):
    _, first, second = two_builds
    a, b = _files(first), _files(second)
    assert sorted(a) == sorted(b)
    for name in (
        "model_int8.tflite",
        "model_float32.tflite",
        "model_clustered.keras",
        "model_firmware.tflite",
        "firmware/model_data.cc",
        "firmware/self_test_data.cc",
        "report.json",
    ):
        assert name in a, name
    assert [name for name in a if name != "timings.json" and a[name] != b[name]] == []


def test_stderr_holds_only_edgeclusts_lines(two_builds):
    runs, _, _ = two_builds
    for run in runs:
        foreign = [line for line in run.stderr.splitlines() if not EDGECLUST_LINE.match(line)]
        assert foreign == [], foreign[:5]
        counters = re.findall(r"^\[(\d+)/(\d+)\]", run.stderr, re.M)
        total = int(counters[0][1])
        assert [(int(i), int(n)) for i, n in counters] == [(i, total) for i in range(1, total + 1)]


def test_the_report_shows_the_calibration_samples_used(two_builds):
    import json

    _, first, _ = two_builds
    report = json.loads((first / "report.json").read_text())
    assert report["conversion"]["calibration_samples"] == 100 == report["options"]["calibration_samples"]
