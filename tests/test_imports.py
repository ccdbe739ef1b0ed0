"""Dependencies point one way (cli -> pipeline -> backends -> device -> {lower, tflite, cluster, codegen} ->
errors; the pipeline uses device/ directly too), the heavy libraries stay where DESIGN.md puts them, and the
light entry points stay light; tools run only in device/."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Subprocesses import the package from this checkout, whatever the venv's install points at.
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "toolchain")}
PACKAGE = Path(__file__).resolve().parents[1] / "toolchain" / "edgeclust"

HEAVY = ("keras", "tensorflow", "tflite_micro", "ai_edge_litert", "jinja2")
# modules at the package's top that everyone may use (they import nothing of edgeclust but errors)
LEAVES = {"edgeclust", "errors", "align", "atomic", "resources", "data", "examples"}
# area -> the areas its modules may import (besides itself and the leaves)
ALLOWED = {
    "cli": {"pipeline"},
    "pipeline": {"backends", "device", "lower", "tflite", "cluster", "codegen"},
    "backends": {"device", "lower", "tflite", "codegen"},  # backends run tools through device/
    "device": {"codegen"},
    "lower": set(),
    "tflite": set(),
    "cluster": set(),
    "codegen": set(),
}
# the CLI reaches the rest only through the pipeline: of the leaves it may use only errors and the version
CLI_LEAVES = {"edgeclust", "errors"}
# area -> third-party packages its modules must not import (module name -> the one exception, if any)
FORBIDDEN = {
    "lower": {"keras": None, "tensorflow": None, "jinja2": None, "tflite_micro": None, "ai_edge_litert": None},
    "codegen": {"keras": None, "tensorflow": None, "tflite_micro": None, "ai_edge_litert": None},
    "device": {"keras": None, "tensorflow": None, "jinja2": None},
    "cluster": {"tensorflow": "kernels.py", "tflite_micro": None, "ai_edge_litert": None, "jinja2": None},
    "tflite": {"tensorflow": "convert.py", "keras": None},
    "cli": {"keras": None, "tensorflow": None, "tflite_micro": None, "ai_edge_litert": None, "jinja2": None},
}


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (function-level imports included), as dotted names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "edgeclust":  # from edgeclust import cluster, resources, __version__
                found |= {f"edgeclust.{alias.name}" for alias in node.names if not alias.name.startswith("__")}
    return found


def _area(module: str) -> str | None:
    """edgeclust.pipeline.build -> "pipeline"; edgeclust.errors -> "errors"; third-party -> None."""
    parts = module.split(".")
    if parts[0] != "edgeclust":
        return None
    return parts[1] if len(parts) > 1 else "edgeclust"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if len(relative.parts) > 1:
            yield relative.parts[0], path


def test_every_area_is_checked():
    areas = {area for area, _ in _modules()}
    assert areas <= set(ALLOWED), f"areas without a rule: {sorted(areas - set(ALLOWED))}"
    assert {"cli", "pipeline", "backends", "device", "lower", "tflite", "cluster", "codegen"} <= areas


@pytest.mark.parametrize("area", sorted(ALLOWED))
def test_imports_point_one_way(area):
    leaves = CLI_LEAVES if area == "cli" else LEAVES
    wrong = []
    for module_area, path in _modules():
        if module_area != area:
            continue
        for module in sorted(_imports(path)):
            target = _area(module)
            if target is None or target in {area} | ALLOWED[area] | leaves:
                continue
            wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert wrong == [], f"{area} may import {sorted(ALLOWED[area] | leaves)} only: " + "; ".join(wrong)


@pytest.mark.parametrize("area", sorted(FORBIDDEN))
def test_heavy_libraries_stay_where_they_belong(area):
    wrong = []
    for module_area, path in _modules():
        if module_area != area:
            continue
        for module in _imports(path):
            top = module.split(".")[0]
            if top in FORBIDDEN[area] and FORBIDDEN[area][top] != path.name:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert wrong == []


def test_the_pipeline_reaches_backends_only_through_the_registry():
    """No backend-specific code in pipeline/: it names no backend module, only edgeclust.backends (and base)."""
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for area, path in _modules()
        if area == "pipeline"
        for module in _imports(path)
        if module.startswith("edgeclust.backends.") and module != "edgeclust.backends.base"
    ]
    assert wrong == []


# modules outside device/ that may start processes, and why
SUBPROCESS_ELSEWHERE = {
    "cluster/cpu_build.py": "the training C ops' compile step, at the first clustered training step",
    "tflite/isolated.py": "a Python worker that keeps a crash in TensorFlow's C++ out of edgeclust's process",
}


def test_only_device_runs_tools():
    """Compilers, linkers, QEMU and flash tools start in device/ alone."""
    wrong = [
        relative
        for area, path in _modules()
        if area != "device"
        and (relative := path.relative_to(PACKAGE).as_posix()) not in SUBPROCESS_ELSEWHERE
        and "subprocess" in _imports(path)
    ]
    assert wrong == []


def test_the_scan_sees_function_level_and_from_package_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from edgeclust import cluster, resources\n    import tensorflow as tf\n")
    assert _imports(sample) == {"edgeclust", "edgeclust.cluster", "edgeclust.resources", "tensorflow"}


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
        ("import edgeclust.backends", HEAVY),
        (
            "import edgeclust.codegen.board, edgeclust.codegen.carray, edgeclust.codegen.project, "
            "edgeclust.device.flash, edgeclust.lower.weights",
            HEAVY,
        ),
        (
            "import edgeclust.backends.tflm, edgeclust.backends.tflm.price, edgeclust.backends.tflm.render",
            ("keras", "tensorflow", "tflite_micro", "ai_edge_litert"),
        ),
        ("import edgeclust.tflite.flatbuffer, edgeclust.tflite.inspect", ("keras", "tensorflow")),
        ("import edgeclust.cluster", ("tensorflow_model_optimization", "tf_keras", "tflite_micro", "ai_edge_litert")),
    ],
)
def test_import_pulls_in_nothing_heavy(statement, forbidden):
    loaded = _modules_after(statement)
    assert not loaded & set(forbidden), f"{statement} imported {sorted(loaded & set(forbidden))}"


def test_help_answers_without_heavy_imports():
    code = (
        "import sys; from edgeclust.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV)
    loaded = set(out.stdout.strip().splitlines()[-1].split(","))
    assert "Usage: edgeclust" in out.stdout and not loaded & set(HEAVY)
