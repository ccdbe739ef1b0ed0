"""Dependencies point one way, and the light entry points stay light (checked in fresh interpreters)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Subprocesses import the package from this checkout, whatever the venv's install points at.
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "toolchain")}

HEAVY = ("keras", "tensorflow", "tflite_micro", "ai_edge_litert", "jinja2")


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV)
    return {name.split(".")[0] for name in out.stdout.split()}


@pytest.mark.parametrize(
    "statement, forbidden",
    [
        ("import edgeclust", HEAVY),
        ("import edgeclust.cli.main", HEAVY),
        ("import edgeclust.data, edgeclust.errors, edgeclust.atomic", HEAVY),
        ("import edgeclust.codegen.board, edgeclust.codegen.carray, edgeclust.codegen.resolver, "
         "edgeclust.codegen.project, edgeclust.codegen.budget, edgeclust.device.flash",
         ("keras", "tensorflow", "tflite_micro", "ai_edge_litert")),
        ("import edgeclust.tflite.flatbuffer, edgeclust.tflite.inspect", ("keras", "tensorflow")),
        ("import edgeclust.cluster", ("tensorflow_model_optimization", "tf_keras", "tflite_micro", "ai_edge_litert")),
    ],
)
def test_import_pulls_in_nothing_heavy(statement, forbidden):
    loaded = _modules_after(statement)
    assert not loaded & set(forbidden), f"{statement} imported {sorted(loaded & set(forbidden))}"


def test_cluster_core_never_imports_tensorflow_or_tflite_directly(repo_root):
    """kernels.py alone may import tensorflow: its XLA-compiled lookup and sums (DEVELOPERS.md says why)."""
    import re

    tflite = re.compile(r"^\s*(import|from)\s+(edgeclust\.tflite|edgeclust\.codegen)\b"
                        r"|^\s*from\s+edgeclust\s+import\s+.*\b(tflite|codegen)\b", re.M)
    tensorflow = re.compile(r"^\s*(import|from)\s+tensorflow\b", re.M)
    paths = sorted((repo_root / "toolchain/edgeclust/cluster").glob("*.py"))
    assert "kernels.py" in [p.name for p in paths]
    for path in paths:
        text = path.read_text()
        found = tflite.search(text) or (tensorflow.search(text) if path.name != "kernels.py" else None)
        assert found is None, f"{path.name}: {found.group(0).strip()}"


def test_tflite_and_codegen_never_see_the_wrappers(repo_root):
    for area in ("tflite", "codegen"):
        for path in (repo_root / "toolchain/edgeclust" / area).glob("*.py"):
            text = path.read_text()
            for banned in ("import edgeclust.cluster", "from edgeclust.cluster", "from edgeclust import cluster",
                           "edgeclust.pipeline"):
                assert banned not in text, f"{path.name} mentions {banned!r}"


def test_help_answers_without_heavy_imports():
    code = ("import sys; from edgeclust.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print(','.join(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV)
    loaded = set(out.stdout.strip().splitlines()[-1].split(","))
    assert "Usage: edgeclust" in out.stdout and not loaded & set(HEAVY)
