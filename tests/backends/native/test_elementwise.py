"""Elementwise ops on the native backend (elementwise.py, ec_elementwise.c), bit-exact against tflite_micro.

Unary ops are tables of TFLM's integer arithmetic: each is checked on all 256 int8 inputs at once (a one-op model
on a [1, 256] input). Binary ops: same shape, [1,1,1,C] and [1,units] broadcasts, scalars and constant operands,
as Keras writes them (Normalization, squeeze-excite, unrolled LSTM / GRU).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends.native import NativeBackend
from edgeclust.backends.native import fixed_point as fp
from edgeclust.lower.graph import Graph, GraphOp
from edgeclust.pipeline.layouts import weight_layouts
from edgeclust.tflite.parity import run_tflm

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _ops(tflite: bytes) -> set[str]:
    from edgeclust.backends.native.from_tflite import graph_from_tflite

    return {op.name for op in graph_from_tflite(tflite).ops}


def _all_int8(tflite: bytes, backend: NativeBackend):
    lowered = backend.lower(tflite, weight_layouts(tflite))
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    ours, reference = backend.run_host(lowered, x), run_tflm(tflite, x)
    assert ours.shape == reference.shape
    differing = np.flatnonzero(ours != reference)
    assert differing.size == 0, f"inputs {x.reshape(-1)[differing[:8]]}: ours {ours.reshape(-1)[differing[:8]]}, " + (
        f"TFLM {reference.reshape(-1)[differing[:8]]}"
    )
    return lowered


UNARY = {
    "LOGISTIC": lambda k: k.layers.Activation("sigmoid"),
    "TANH": lambda k: k.layers.Activation("tanh"),
    "HARD_SWISH": lambda k: k.layers.Activation(k.activations.hard_swish),
    "LEAKY_RELU": lambda k: k.layers.LeakyReLU(negative_slope=0.15),
    "RELU": lambda k: k.layers.ReLU(),
    "RELU6": lambda k: k.layers.ReLU(max_value=6.0),
}


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("spread", [(-1.0, 2.0), (-7.0, 4.0)])
def test_unary_tables_match_tflm_on_every_int8_input(op, spread, keras, nx):
    """The 256-entry table is TFLM's result for each input (input ranges of two scales and zero points)."""
    inp = keras.Input((256,), batch_size=1)
    model = keras.Model(inp, UNARY[op](keras)(inp))
    low, high = spread
    data = np.random.default_rng(0).uniform(low, high, (64, 256)).astype(np.float32)
    tflite = nx.convert(model, data)
    assert op in _ops(tflite)
    lowered = _all_int8(tflite, NativeBackend())
    assert "ec_lut" in {step.kernel for step in lowered.details.program.steps}


def _binary_model(keras, kind: str):
    L = keras.layers
    if kind == "same":
        a = keras.Input((4, 4, 8), batch_size=1)
        x = L.Conv2D(8, 1)(a)
        y = L.DepthwiseConv2D(3, padding="same")(a)
        return keras.Model(a, L.Subtract()([L.Multiply()([x, y]), a])), (4, 4, 8)
    if kind == "squeeze_excite":
        a = keras.Input((6, 6, 8), batch_size=1)
        s = L.GlobalAveragePooling2D(keepdims=True)(a)
        s = L.Conv2D(8, 1, activation="sigmoid")(s)
        return keras.Model(a, L.Multiply()([a, s])), (6, 6, 8)
    if kind == "normalization":
        a = keras.Input((5, 5, 3), batch_size=1)
        norm = L.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 1.0])
        return keras.Model(a, L.Conv2D(4, 3)(norm(a))), (5, 5, 3)
    if kind == "vector":  # [1, units] as an unrolled cell computes it: sigmoid * tanh + constant, 1 - z
        a = keras.Input((12,), batch_size=1)
        z = L.Dense(6, activation="sigmoid")(a)
        h = L.Dense(6, activation="tanh")(a)
        out = L.Add()([L.Multiply()([z, h]), L.Lambda(lambda t: 1.0 - t)(z)])
        out = L.Lambda(lambda t: t * 0.5 + 0.25)(out)
        return keras.Model(a, out), (12,)
    if kind == "broadcast_add":
        a = keras.Input((3, 4, 8), batch_size=1)
        row = L.Conv2D(8, (3, 1))(a)  # [1, 1, 4, 8] broadcast over H
        return keras.Model(a, L.Add()([a, row])), (3, 4, 8)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["same", "squeeze_excite", "normalization", "vector", "broadcast_add"])
def test_binary_ops_bit_exact(kind, keras, nx):
    model, shape = _binary_model(keras, kind)
    data = np.random.default_rng(1).normal(0, 1, (64, *shape)).astype(np.float32)
    tflite = nx.convert(model, data)
    ops = _ops(tflite)
    assert ops & {"MUL", "SUB", "ADD"}, ops
    if kind == "normalization":  # tflite_micro segfaults searching this model's smallest arena: outputs only
        backend = NativeBackend()
        lowered = backend.lower(tflite, weight_layouts(tflite))
        x = nx.int8_inputs(tflite, 6)
        np.testing.assert_array_equal(backend.run_host(lowered, x), run_tflm(tflite, x))
    else:
        lowered = nx.check_bit_exact(tflite, n=6)
    kernels = {step.kernel for step in lowered.details.program.steps}
    assert kernels & {"ec_binary", "ec_binary_const", "ec_add"}


def test_every_unsupported_op_named_at_once():
    from edgeclust.backends.native.lowering import unsupported_reason
    from edgeclust.lower.graph import GraphTensor

    t = GraphTensor(0, "x", (1, 4), "int8")
    ops = [GraphOp(i, name, (0,), (0,), {}) for i, name in enumerate(["CUSTOM_A", "CUSTOM_B", "CUSTOM_A", "CUSTOM_C"])]
    graph = Graph((t,), tuple(ops), (0,), (0,))
    assert unsupported_reason(graph) == (
        "the native backend does not support 4 ops: CUSTOM_A x2, CUSTOM_B x1, CUSTOM_C x1; use --backend tflm"
    )


def test_gemmlowp_helpers_against_float():
    """The Python gemmlowp port is the function it claims to be (within its fixed-point error)."""
    for real in np.linspace(-7.9, 7.9, 41):
        raw = int(round(real * 2**27))
        assert abs(fp.gemmlowp_logistic(raw) / 2**31 - 1 / (1 + np.exp(-real))) < 1e-6
        assert abs(fp.gemmlowp_tanh(raw) / 2**31 - np.tanh(real)) < 1e-6


def test_elementwise_kernels_in_one_qemu_firmware(keras, nx, tmp_path):
    """Squeeze-excite MUL, constant SUB / MUL, a broadcast ADD and every table op in one firmware on
    qemu_mps2_an386: the self-test (the host build's outputs) passes bit for bit."""
    keras.utils.set_random_seed(3)
    L = keras.layers
    inputs = keras.Input((4, 4, 8), batch_size=1)
    x = L.Conv2D(8, 1)(inputs)
    x = L.Activation(keras.activations.hard_swish)(x)
    s = L.GlobalAveragePooling2D(keepdims=True)(x)
    s = L.Conv2D(8, 1, activation="sigmoid")(s)
    x = L.Multiply()([x, s])
    x = L.Lambda(lambda t: (t - np.linspace(-1, 1, 8, dtype=np.float32)) * np.linspace(0.5, 2, 8, dtype=np.float32))(x)
    x = L.Add()([x, L.Conv2D(8, (4, 1))(x)])
    x = L.Activation("tanh")(x)
    x = L.LeakyReLU(negative_slope=0.2)(x)
    x = L.Conv2D(8, 1)(L.ReLU(max_value=6.0)(x))
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(4)(x)
    model = keras.Model(inputs, outputs)
    data = np.random.default_rng(0).normal(size=(64, 4, 4, 8)).astype(np.float32)
    tflite = nx.convert(model, data)
    assert {"MUL", "SUB", "ADD", "LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "RELU6"} <= _ops(tflite)
    lowered = nx.check_bit_exact(tflite, n=4)
    kernels = {step.kernel for step in lowered.details.program.steps}
    assert {"ec_lut", "ec_binary", "ec_binary_const"} <= kernels
    nx.qemu_self_test(tflite, "qemu_mps2_an386", tmp_path, lowered=lowered)


def _fuzz_module():
    """test_fuzz_native's harness (run_case: one clear error, or sanitized C equal to TFLM) and its editors."""
    import importlib.util
    import sys
    from pathlib import Path

    if "native_fuzz_harness" in sys.modules:
        return sys.modules["native_fuzz_harness"]
    path = Path(__file__).with_name("test_fuzz_native.py")
    spec = importlib.util.spec_from_file_location("native_fuzz_harness", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def elementwise_seed(keras, nx):
    keras.utils.set_random_seed(5)
    L = keras.layers
    inputs = keras.Input((3, 3, 4), batch_size=1)
    x = L.Conv2D(4, 1)(inputs)
    s = L.Conv2D(4, 3, activation="sigmoid")(inputs)  # [1, 1, 1, 4]
    x = L.Multiply()([x, s])
    x = L.Lambda(lambda t: t - np.array([0.5, -0.25, 1.0, 0.0], np.float32))(x)
    x = L.Activation("tanh")(x)
    x = L.Activation(keras.activations.hard_swish)(L.Conv2D(4, 1)(x))
    x = L.LeakyReLU(negative_slope=0.1)(x)
    data = np.random.default_rng(2).normal(size=(32, 3, 3, 4)).astype(np.float32)
    return nx.convert(keras.Model(inputs, x), data)


ELEMENTWISE_MUTATIONS = {
    "logistic input scale tiny": ("quant", "LOGISTIC", 0, "inputs", {"scale": [1e-12]}),
    "logistic output zero point 0": ("quant", "LOGISTIC", 0, "outputs", {"zeroPoint": [0]}),
    "hard_swish output scale tiny": ("quant", "HARD_SWISH", 0, "outputs", {"scale": [1e-7]}),
    "sub constant scale tiny": ("quant", "SUB", 1, "inputs", {"scale": [1e-30]}),
    "mul operand shape [1,1,1,3]": ("shape", "MUL", 1, "inputs", {"shape": [1, 1, 1, 3]}),
    "leaky alpha negative": ("options", "LEAKY_RELU", 0, "", {"alpha": -3.0}),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_MUTATIONS))
def test_elementwise_mutations_end_in_a_clear_error_or_matching_c(elementwise_seed, name):
    """Odd scales, zero points, shapes and options on each new op: a one-line refusal, or C that runs clean
    under ASan/UBSan and equals TFLM."""
    fuzz = _fuzz_module()
    kind, op, position, side, fields = ELEMENTWISE_MUTATIONS[name]
    if kind == "quant":
        change = fuzz._set_quant(fuzz._tensor(op, position, side), **fields)
    elif kind == "shape":
        change = fuzz._set_tensor(fuzz._tensor(op, position, side), **fields)
    else:
        change = fuzz._set_options(op, **fields)
    assert fuzz.run_case(fuzz._edit(elementwise_seed, change)).kind in ("refused", "matched", "unverified")
