"""The generated model sources: golden ec_model.c / ec_model.h for two small hand-built graphs, compared byte
for byte, compiled with the host's gcc; lines within 120 columns; step records and layouts as lowering decides.

After an intended change to the emitter or the lowering:
EDGECLUST_UPDATE_GOLDEN=1 pytest tests/backends/native/test_emit_c.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeclust.backends.native import emit_c
from edgeclust.backends.native.lowering import lower_graph
from edgeclust.backends.native.records import ConvStep, FullyConnectedStep
from edgeclust.errors import CodegenError
from edgeclust.lower.graph import Graph, GraphOp, GraphTensor, Quant
from edgeclust.lower.weights import layout_for, smallest_layout
from edgeclust.resources import templates_dir

GOLDEN = Path(__file__).parent / "golden"


def _q(scale, zero_point=0, axis=0) -> Quant:
    scales = tuple(float(s) for s in np.atleast_1d(scale))
    return Quant(scales, (int(zero_point),) * len(scales), axis)


def _levels(rng, shape, k) -> np.ndarray:
    """int8 weights with k distinct values (what clustering leaves)."""
    values = np.linspace(-120, 120, k).round().astype(np.int8)
    return values[rng.integers(0, k, shape)]


def _two_per_channel(rng, shape) -> np.ndarray:
    """int8 weights with two values per output channel (axis 0), eight over the tensor."""
    low = np.array([-100, -60, -20, 20], np.int8).reshape(-1, *([1] * (len(shape) - 1)))
    return (low + 30 * rng.integers(0, 2, shape)).astype(np.int8)


def conv_pool_graph() -> Graph:
    """CONV_2D (per-channel scales, 2-bit per-channel layout) + MAX_POOL_2D fused, DEPTHWISE_CONV_2D, MEAN,
    RESHAPE, FULLY_CONNECTED, SOFTMAX; int8 input and output."""
    rng = np.random.default_rng(0)
    t = [
        GraphTensor(0, "input", (1, 6, 6, 2), "int8", _q(0.02, -3)),
        GraphTensor(
            1, "conv/filter", (4, 3, 3, 2), "int8", _q([0.01, 0.02, 0.015, 0.03]), _two_per_channel(rng, (4, 3, 3, 2))
        ),
        GraphTensor(2, "conv/bias", (4,), "int32", _q([2e-4, 4e-4, 3e-4, 6e-4]), rng.integers(-500, 500, 4, np.int32)),
        GraphTensor(3, "conv/relu", (1, 6, 6, 4), "int8", _q(0.05, -128)),
        GraphTensor(4, "pool", (1, 3, 3, 4), "int8", _q(0.05, -128)),
        GraphTensor(5, "depthwise/filter", (1, 3, 3, 4), "int8", _q(0.02, 0, 3), _levels(rng, (1, 3, 3, 4), 8)),
        GraphTensor(6, "depthwise/bias", (4,), "int32", _q(1e-3), rng.integers(-100, 100, 4, np.int32)),
        GraphTensor(7, "depthwise", (1, 3, 3, 4), "int8", _q(0.04, 5)),
        GraphTensor(8, "mean/axes", (2,), "int32", None, np.array([1, 2], np.int32)),
        GraphTensor(9, "mean", (1, 1, 1, 4), "int8", _q(0.03, 1)),
        GraphTensor(10, "flatten/shape", (2,), "int32", None, np.array([1, 4], np.int32)),
        GraphTensor(11, "flatten", (1, 4), "int8", _q(0.03, 1)),
        GraphTensor(12, "dense/filter", (3, 4), "int8", _q(0.01), _levels(rng, (3, 4), 4)),
        GraphTensor(13, "dense/bias", (3,), "int32", _q(3e-4), np.array([10, -20, 30], np.int32)),
        GraphTensor(14, "dense", (1, 3), "int8", _q(0.1, 2)),
        GraphTensor(15, "softmax", (1, 3), "int8", _q(1 / 256, -128)),
    ]
    ops = [
        GraphOp(0, "CONV_2D", (0, 1, 2), (3,), {"padding": "SAME", "fused_activation_function": "RELU"}),
        GraphOp(
            1,
            "MAX_POOL_2D",
            (3,),
            (4,),
            {"padding": "VALID", "stride_h": 2, "stride_w": 2, "filter_height": 2, "filter_width": 2},
        ),
        GraphOp(2, "DEPTHWISE_CONV_2D", (4, 5, 6), (7,), {"padding": "SAME", "depth_multiplier": 1}),
        GraphOp(3, "MEAN", (7, 8), (9,), {"keep_dims": True}),
        GraphOp(4, "RESHAPE", (9, 10), (11,), {}),
        GraphOp(5, "FULLY_CONNECTED", (11, 12, 13), (14,), {}),
        GraphOp(6, "SOFTMAX", (14,), (15,), {"beta": 1.0}),
    ]
    return Graph(tuple(t), tuple(ops), (0,), (15,))


def float_edges_graph() -> Graph:
    """QUANTIZE, two FULLY_CONNECTED (one whose layout would not save bytes: kept as int8), ADD in place,
    DEQUANTIZE; float32 input and output."""
    rng = np.random.default_rng(1)
    t = [
        GraphTensor(0, "x", (1, 8), "float32"),
        GraphTensor(1, "x/quantized", (1, 8), "int8", _q(0.03, 0)),
        GraphTensor(2, "a/filter", (4, 8), "int8", _q(0.01), rng.integers(-127, 128, (4, 8)).astype(np.int8)),
        GraphTensor(3, "a", (1, 4), "int8", _q(0.05, -4)),
        GraphTensor(4, "b/filter", (4, 8), "int8", _q(0.02), _levels(rng, (4, 8), 2)),
        GraphTensor(5, "b/bias", (4,), "int32", _q(6e-4), np.array([5, -5, 50, -50], np.int32)),
        GraphTensor(6, "b", (1, 4), "int8", _q(0.07, 3)),
        GraphTensor(7, "sum", (1, 4), "int8", _q(0.1, -1)),
        GraphTensor(8, "y", (1, 4), "float32"),
    ]
    ops = [
        GraphOp(0, "QUANTIZE", (0,), (1,), {}),
        GraphOp(1, "FULLY_CONNECTED", (1, 2, -1), (3,), {}),
        GraphOp(2, "FULLY_CONNECTED", (1, 4, 5), (6,), {"fused_activation_function": "RELU"}),
        GraphOp(3, "ADD", (3, 6), (7,), {}),
        GraphOp(4, "DEQUANTIZE", (7,), (8,), {}),
    ]
    return Graph(tuple(t), tuple(ops), (0,), (8,))


def layouts(graph: Graph):
    axis = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "DEPTHWISE_CONV_2D": 3}
    found = []
    for op in graph.ops:
        if op.name in axis:
            w = graph.tensors[op.inputs[1]]
            found.append(smallest_layout(w.data, channel_axis=axis[op.name], tensor=w.index, name=w.name))
    return [layout for layout in found if layout is not None]


GRAPHS = {"conv_pool": conv_pool_graph, "float_edges": float_edges_graph}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_golden_model_sources(name, tmp_path):
    graph = GRAPHS[name]()
    program = lower_graph(graph, layouts(graph))
    files = {"ec_model.c": emit_c.model_source(program), "ec_model.h": emit_c.model_header(program)}
    golden = GOLDEN / name
    if os.environ.get("EDGECLUST_UPDATE_GOLDEN") == "1":
        golden.mkdir(parents=True, exist_ok=True)
        for file, text in files.items():
            (golden / file).write_text(text, encoding="utf-8")
    for file, text in files.items():
        assert text == (golden / file).read_text(encoding="utf-8"), f"{name}/{file} differs from the golden file"
        assert max(len(line) for line in text.splitlines()) <= 120
    _compile(files, tmp_path)


def _compile(files: dict[str, str], folder: Path) -> None:
    """The model sources and the runtime compile with the host's gcc, warnings as errors."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    runtime = templates_dir() / "runtime" / "native"
    for file, text in files.items():
        (folder / file).write_text(text, encoding="utf-8")
    for header in runtime.glob("*.h"):  # ec_kernels.h and the headers it includes
        shutil.copy(header, folder)
    done = subprocess.run(
        ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", "ec_model.c", "-o", "ec_model.o"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_records_hold_numbers_and_layouts():
    graph = conv_pool_graph()
    program = lower_graph(graph, layouts(graph))
    conv = program.steps[0]
    assert isinstance(conv, ConvStep) and conv.name == "conv_2d_0" and conv.pool is not None
    assert conv.outputs == ("conv_2d_0_output",) and conv.window.pad_h == 1 and conv.pool.stride_h == 2
    assert conv.requant.per_channel and conv.weights.per_channel and conv.weights.bits == 1
    fc = next(s for s in program.steps if isinstance(s, FullyConnectedStep))
    assert fc.name == "fully_connected_5" and not fc.requant.per_channel and fc.requant.multiplier.size == 1
    assert program.input.name == "model_input" and program.model_input.shape == (1, 6, 6, 2)


def test_a_layout_that_saves_nothing_stays_int8_and_says_so():
    graph = float_edges_graph()
    program = lower_graph(graph, layouts(graph))
    dense_a, dense_b = program.packed
    assert dense_a.table is None and dense_a.layout is not None and "no smaller than int8" in dense_a.fallback
    assert dense_b.bits == 1 and dense_b.fallback is None


def test_a_layout_along_another_axis_is_an_error():
    graph = conv_pool_graph()
    w = graph.tensors[1]
    wrong = layout_for(w.data, axis=3, tensor=w.index, name=w.name)
    with pytest.raises(CodegenError, match="conv/filter.*axis 3"):
        lower_graph(graph, [wrong])


def test_a_layout_no_kernel_reads_is_an_error():
    graph = float_edges_graph()
    stray = layout_for(np.zeros((1, 8), np.int8), axis=None, tensor=1, name="x/quantized")
    with pytest.raises(CodegenError, match="x/quantized"):
        lower_graph(graph, [stray])
