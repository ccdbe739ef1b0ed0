"""`--fit`: per-layer cluster counts chosen for a flash budget (pipeline/fit.py), from Python and the CLI."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeclust
from edgeclust.errors import BudgetError
from edgeclust.lower.pack import pack_rows
from edgeclust.pipeline import fit
from edgeclust.pipeline.build import BuildOptions
from edgeclust.pipeline.stages import ClusterOptions

TOOLCHAIN = Path(__file__).resolve().parents[2] / "toolchain"
FAST = ClusterOptions(clusters=16, epochs=1, learning_rate=1e-4, batch_size=64, seed=0)


def _subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(TOOLCHAIN), "TF_CPP_MIN_LOG_LEVEL": "2", "EDGECLUST_DEBUG": ""}


def test_kernel_bytes_follow_the_packing_rules():
    # a Dense kernel (in 50, out 7) at 4 clusters: 7 rows of 50 2-bit indices packed, plus a 4-entry table
    indices = np.zeros((7, 50), np.uint8)
    assert fit.kernel_bytes((50, 7), (1,), 4, False) == pack_rows(indices, 2).nbytes + 4
    assert fit.kernel_bytes((50, 7), (1,), 0, False) == 350  # int8
    assert fit.kernel_bytes((50, 7), (1,), 128, False) == 350  # 7-bit rows and a table cost more than int8
    assert fit.kernel_bytes((3, 3, 4, 8), (3,), 16, True) == 8 * 18 + 8 * 16  # one table per output channel


def _layer(name, weights, options):
    """A LayerFit from [(N, bytes, examples lost)]."""
    choices = tuple(
        fit.Choice(n, 8 if n == 0 else max(1, (n - 1).bit_length()), b, 0.0, lost) for n, b, lost in options
    )
    return fit.LayerFit(name, weights, 0, choices)


def test_the_frontier_holds_the_least_loss_for_every_budget():
    rng = np.random.default_rng(3)
    layers = []
    for i in range(4):
        costs = sorted(rng.integers(10, 1000, size=5).tolist(), reverse=True)
        losses = np.maximum.accumulate(rng.integers(0, 6, size=5)).tolist()
        layers.append(_layer(f"l{i}", 100, list(zip((0, 16, 8, 4, 2), costs, losses))))
    frontier = fit._frontier(layers, 0)
    for budget in range(0, 4000, 37):
        every = [
            (sum(c.flash_bytes for c in combo), sum(c.lost for c in combo))
            for combo in itertools.product(*(layer.choices for layer in layers))
        ]
        inside = [lost for flash, lost in every if flash <= budget]
        points = [p.lost for p in frontier if p.flash_bytes <= budget]
        assert (min(inside) if inside else None) == (min(points) if points else None), budget


def test_equal_losses_go_to_more_bits_and_ties_to_layer_order():
    a = _layer("a", 100, [(0, 100, 0), (16, 50, 0), (4, 25, 0)])
    b = _layer("b", 100, [(0, 100, 0), (16, 50, 0), (4, 25, 0)])
    frontier = fit._frontier([a, b], 0)
    # within 150 bytes: one layer int8 and one at 16 lose nothing; the first layer in order keeps int8
    best = min((p for p in frontier if p.flash_bytes <= 150), key=lambda p: (p.lost, -p.flash_bytes))
    assert best.counts == (0, 16) and best.flash_bytes == 150


@pytest.fixture(scope="module")
def single_dense(digits):
    """A one-layer model (Dense 64 -> 10) trained on the digits: one N decides everything."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, name="dense")])
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits.x_train, digits.y_train, epochs=5, batch_size=64, verbose=0)
    return model


def test_one_layer_gets_the_largest_n_that_fits(single_dense, digits):
    # Dense 64 x 10: N=16 packs to 10 rows of 32 bytes + a 16-byte table = 336; N=32 to 10 x 40 + 32 = 432
    biases = 40
    plan = fit.plan_fit(single_dense, digits.x_train, digits.y_train, budget_bytes=336 + biases, options=FAST)
    assert dict(plan.counts) == {"dense": 16} and plan.flash_bytes == 336 + biases
    everything = fit.plan_fit(single_dense, digits.x_train, digits.y_train, budget_bytes=10_000, options=FAST)
    assert dict(everything.counts) == {"dense": 0}  # int8 fits: nothing is clustered


def test_a_budget_below_the_smallest_choice_is_refused(single_dense, digits):
    with pytest.raises(BudgetError, match=r"needs 122 bytes, 22 over"):  # 10 x 1-bit rows of 64, 2, biases 40
        fit.plan_fit(single_dense, digits.x_train, digits.y_train, budget_bytes=100, options=FAST)


def test_fit_to_board_meets_the_budget_and_records_the_rules(digits_inputs, tmp_path):
    model, data = digits_inputs
    lines = []
    options = BuildOptions(
        board="qemu_mps2_an386",
        out_dir=tmp_path / "out",
        cluster=FAST,
        backend="native",
        parity_samples=40,
        ram_budget=32_768,
    )
    result = edgeclust.fit_to_board(model, data, options, flash_budget=12_000, on_line=lines.append)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    # the RAM budget stands in for the board's RAM: in the budget check and in the linker script
    assert report["budget"]["ram_total"] == 32_768 >= report["budget"]["ram_used"]
    assert "LENGTH = 32768" in (tmp_path / "out" / "firmware" / "linker.ld").read_text()
    parts = report["budget"]["flash_parts"]
    on_flash = parts["weights"] + parts.get("tables", 0) + parts["biases"]
    assert on_flash <= 12_000
    assert on_flash == result.plan.flash_bytes  # the estimate is the native backend's own count
    rules = report["options"]["fit"]["layer_rules"]
    assert rules == list(result.plan.rules) and len(rules) == 5
    assert [f"{name}={n}" for name, n in report["options"]["cluster"]["layers"]] == rules
    assert any(line.startswith("chosen: ") for line in lines) and any("<- chosen" in line for line in lines)
    # each tensor holds at most its layer's N (int8 layers: at most 256)
    assert report["verify"]["passed"]


def test_an_impossible_budget_is_one_line_exit_1_nothing_written(digits_inputs, tmp_path):
    model, data = digits_inputs
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "edgeclust", "build", str(model), "--data", str(data), "--board", "qemu_mps2_an386"]
        + ["--fit", "--flash-budget", "1000", "--out", str(out)],
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("edgeclust: error: --fit: no choice of clusters fits 1,000 bytes")
    assert "over" in lines[0] and not out.exists()


PLAN = """
import sys
from edgeclust.pipeline import fit
from edgeclust.pipeline.loading import load_data_for, load_keras_model
from edgeclust.pipeline.stages import ClusterOptions
from edgeclust.cluster import fold_batch_norms
model = fold_batch_norms(load_keras_model(sys.argv[1]))
data = load_data_for(sys.argv[2], model)
plan = fit.plan_fit(model, data.x_train, data.y_train, budget_bytes=9000, options=ClusterOptions())
print(" ".join(plan.rules), plan.flash_bytes, plan.measured_accuracy)
"""


def test_two_processes_choose_the_same_counts(digits_inputs):
    model, data = digits_inputs
    runs = [
        subprocess.run(
            [sys.executable, "-c", PLAN, str(model), str(data)],
            env=_subprocess_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        for _ in range(2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout and "dense1=" in runs[0].stdout


def test_max_drop_out_of_reach_names_the_flash_budget_and_writes_nothing(digits_inputs, tmp_path):
    model, data = digits_inputs
    # 5,000 bytes leaves about 1-2 bits a weight; one epoch cannot bring validation back to the float model's
    cluster = ClusterOptions(clusters=16, learning_rate=1e-4, seed=0, max_drop=0.0, max_epochs=1)
    options = BuildOptions(
        board="qemu_mps2_an386", out_dir=tmp_path / "out", cluster=cluster, backend="native", parity_samples=40
    )
    with pytest.raises(BudgetError, match=r"the flash budget binds: .* over --max-drop 0;"):
        edgeclust.fit_to_board(model, data, options, flash_budget=5_000)
    assert not (tmp_path / "out").exists()
