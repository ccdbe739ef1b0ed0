"""Hostile .tflite files through the native backend: lowering, generated C, host build with sanitizers.

The mutations are the .tflite fuzzer's (scripts/fuzz_tflite.py: bit flips, 32-bit fields set to telling
values, truncations, splices, and fields of the unpacked model set to odd values), plus targeted ones on the
fields the native kernels read (strides, dilations, padding, activations, shapes, scales, zero points, buffer
sizes). Each case must end in one of two ways: one clear one-line EdgeclustError from `unsupported`/`lower`,
or C that compiles with -fsanitize=address,undefined, runs clean and gives exactly what the tflite_micro
interpreter gives. Never a Python crash, a hang, a sanitizer report, or output for a model TFLM refuses.
(Where the TFLM interpreter itself crashes on a file, the clean sanitized run is all there is to check.)
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import random
import signal
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgeclust.backends.native import NativeBackend
from edgeclust.errors import EdgeclustError
from edgeclust.pipeline.layouts import weight_layouts
from edgeclust.tflite import parity

CASE_TIMEOUT_S = 120  # lowering + a sanitizer build + the run; a hang is far beyond it
RANDOM_CASES = 60
DATA_CASES = 24


def _load_fuzz_script():
    """scripts/fuzz_tflite.py: its seed models and Mutator are the fuzzer this test reuses."""
    path = Path(__file__).resolve().parents[3] / "scripts" / "fuzz_tflite.py"
    spec = importlib.util.spec_from_file_location("fuzz_tflite", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fuzz_script = _load_fuzz_script()


class Hang(BaseException):
    """Raised by the alarm; a BaseException so no `except Exception` in the code under test swallows it."""


@dataclass(frozen=True)
class Outcome:
    """How a case ended: "refused" (a clear error before any C is built), "matched" (C ran, equal to TFLM) or
    "unverified" (C ran clean under the sanitizers, but the TFLM interpreter crashed on the file)."""

    kind: str
    detail: str = ""


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    """The fuzzer's real seed models: a Conv/Depthwise/Dense CNN as float32, int8 (per channel, per tensor)
    and LUT-compressed; the int8 ones are what the native backend supports."""
    return fuzz_script.seed_models()


def _tolerate_python_model_scan() -> None:
    """In the forked child only: tflite_micro's Python wrapper unpacks the whole model with the flatbuffers
    object API just to count VAR_HANDLE ops, and that Python scan fails on odd values in fields the C++
    interpreter never reads. The native backend runs no VAR_HANDLE, so 0 resource variables is TFLM's answer."""
    from tflite_micro.python.tflite_micro import runtime as tflm_runtime

    count = tflm_runtime.count_resource_variables

    def tolerant(model) -> int:
        try:
            return count(model)
        except Exception:  # noqa: BLE001 - any failure of the Python-side scan, not of TFLM itself
            return 0

    tflm_runtime.count_resource_variables = tolerant


@dataclass(frozen=True, eq=False)
class TflmRun:
    """What the TFLM interpreter made of a case: "ran" (with outputs), "refused" (an error) or "crashed"."""

    kind: str
    outputs: np.ndarray | None = None
    detail: str = ""


def tflm_outputs(data: bytes, x: np.ndarray) -> TflmRun:
    """TFLM's outputs for `x`, run in a forked child so that a file that crashes the interpreter (it reads
    metadata the native backend ignores, and segfaults on some corrupted ones) cannot take the tests down."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run TFLM, send back what happened
        os.close(read_fd)
        try:
            try:
                _tolerate_python_model_scan()
                result = TflmRun("ran", parity.run_tflm(data, x))
            except Exception as exc:  # noqa: BLE001 - any error is TFLM refusing the model
                result = TflmRun("refused", detail=f"{type(exc).__name__}: {str(exc)[:200]}")
            payload = pickle.dumps(result)
        except BaseException:  # noqa: BLE001 - the parent reads an empty answer as a crash
            payload = b""
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(payload)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not payload or not os.WIFEXITED(status):
        signal_number = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        return TflmRun("crashed", detail=f"signal {signal_number}")
    return pickle.loads(payload)


def run_case(data: bytes) -> Outcome:
    """Lower `data` with the native backend and, when it is accepted, build it with sanitizers and compare
    it with TFLM. Raises AssertionError (or the crash itself) for every outcome the rules forbid."""

    def alarm(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT_S)
    try:
        backend = NativeBackend(sanitize=True)
        try:
            reason = backend.unsupported(data)
            if reason is not None:
                assert "\n" not in reason and reason.strip(), f"unsupported() gave {reason!r}"
                return Outcome("refused", reason)
            lowered = backend.lower(data, weight_layouts(data))
        except EdgeclustError as exc:
            message = str(exc)
            assert "\n" not in message and message.strip(), f"{type(exc).__name__} is not one line: {message!r}"
            return Outcome("refused", message)
        spec = lowered.interface.inputs[0]
        x = np.random.default_rng(0).integers(-128, 128, size=(3, *spec.shape[1:]), dtype=np.int8)
        x[0] = -128
        expected = tflm_outputs(data, x)
        try:
            got = backend.run_host(lowered, x)
        except EdgeclustError as exc:  # C that does not compile, or a sanitizer report: both forbidden
            raise AssertionError(f"native accepted the model but its C failed: {exc}") from None
        if expected.kind == "crashed":  # TFLM's own bug; native's C ran clean under the sanitizers
            return Outcome("unverified", f"TFLM crashed ({expected.detail})")
        assert expected.kind == "ran", f"native ran a model that TFLM refuses ({expected.detail})"
        want = expected.outputs
        assert got.dtype == want.dtype and got.shape == want.shape, (
            got.shape,
            want.shape,
        )
        assert np.array_equal(got, want), f"{int(np.count_nonzero(got != want))} of {got.size} outputs differ from TFLM"
        return Outcome("matched")
    except Hang:
        raise AssertionError(f"the case ran past {CASE_TIMEOUT_S} s: a hang") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_unmutated_int8_seeds_match_tflm(seeds):
    """The starting points run: both int8 seeds lower, build with sanitizers and match TFLM."""
    for name in ("int8", "int8-per-tensor"):
        assert run_case(seeds[name]) == Outcome("matched"), name


def test_unsupported_seeds_are_refused_in_one_line(seeds):
    """A float32 model and a LUT-compressed one (TFLM_DECODE) are outside the native backend: one clear line."""
    for name in ("float32", "int8-lut"):
        outcome = run_case(seeds[name])
        assert outcome.kind == "refused" and outcome.detail, name


@pytest.mark.parametrize("case", range(RANDOM_CASES))
def test_fuzzer_mutations_end_in_a_clear_error_or_matching_c(seeds, case):
    """One seeded case of scripts/fuzz_tflite.py's Mutator (one to three mutations of an int8 seed)."""
    mutator = fuzz_script.Mutator({k: v for k, v in seeds.items() if k.startswith("int8")}, random.Random(case))
    _, data, steps = mutator.case()
    try:
        run_case(data)
    except AssertionError as exc:
        raise AssertionError(f"after {'; '.join(steps)}: {exc}") from None


@pytest.mark.parametrize("case", range(DATA_CASES))
def test_weight_and_bias_data_mutations_end_in_a_clear_error_or_matching_c(seeds, case):
    """Bytes overwritten inside one buffer (weights at -128/127, extreme biases): the file stays well formed,
    so most cases must run and match TFLM exactly; overflow in the C is a failure, not an answer."""
    rng = random.Random(case)
    name = rng.choice(["int8", "int8-per-tensor"])
    data = bytearray(seeds[name])
    start, end = rng.choice(fuzz_script.data_ranges(seeds[name], min_size=1))
    for _ in range(rng.randint(1, 20)):
        data[rng.randrange(start, end)] = rng.choice([0x80, 0x7F, 0xFF, 0x00, rng.randrange(256)])
    run_case(bytes(data))


# Targeted mutations through the flatbuffer object API: each names what it does to the int8 seed.
def _edit(blob: bytes, change) -> bytes:
    """`blob` unpacked with the flatbuffer object API, changed by `change(obj, subgraph, fb)`, packed again."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    obj = fb.ModelT.InitFromObj(fb.Model.GetRootAs(bytearray(blob), 0))
    change(obj, obj.subgraphs[0], fb)
    builder = flatbuffers.Builder(len(blob) + 4096)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _op(obj, sg, name: str, nth: int = 0):
    """The `nth` operator of subgraph `sg` whose builtin code is `name` (e.g. "CONV_2D")."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    codes = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    ops = [
        op
        for op in sg.operators
        if codes.get(
            max(
                obj.operatorCodes[op.opcodeIndex].builtinCode,
                obj.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode,
            )
        )
        == name
    ]
    return ops[nth]


def _set_options(name: str, **fields):
    """Builtin options of the first `name` op set to `fields` (object API names: strideW, padding, ...)."""

    def change(obj, sg, fb):
        for key, value in fields.items():
            setattr(_op(obj, sg, name).builtinOptions, key, value)

    return change


def _tensor(name: str, position: int, kind: str = "inputs"):
    """A function of (obj, sg) -> the tensor at `position` of the first `name` op's inputs or outputs."""
    return lambda obj, sg: sg.tensors[getattr(_op(obj, sg, name), kind)[position]]


def _set_tensor(where, **fields):
    """Fields of the tensor `where(obj, sg)` (shape, type, buffer) set to `fields`."""

    def change(obj, sg, fb):
        tensor = where(obj, sg)
        for key, value in fields.items():
            setattr(tensor, key, value)

    return change


def _set_quant(where, **fields):
    """Quantization fields of the tensor `where(obj, sg)` (scale, zeroPoint, quantizedDimension) set."""

    def change(obj, sg, fb):
        q = where(obj, sg).quantization
        for key, value in fields.items():
            setattr(q, key, value)

    return change


def _truncate_buffer(where, keep: int):
    """The data of the tensor `where(obj, sg)` cut to its first `keep` bytes."""

    def change(obj, sg, fb):
        buffer = obj.buffers[where(obj, sg).buffer]
        buffer.data = buffer.data[:keep]

    return change


def _set_int32(where, index: int, value: int):
    """Element `index` of an int32 constant (a bias) set to `value` in its buffer's bytes."""

    def change(obj, sg, fb):
        buffer = obj.buffers[where(obj, sg).buffer]
        raw = bytearray(bytes(buffer.data))
        struct.pack_into("<i", raw, 4 * index, value)
        buffer.data = list(raw)

    return change


def _set_input(name: str, position: int, to):
    """The `position`th input of the first `name` op set to tensor `to(obj, sg)` (-1: absent)."""

    def change(obj, sg, fb):
        op = _op(obj, sg, name)
        op.inputs = [(to(obj, sg) if i == position else int(v)) for i, v in enumerate(op.inputs)]

    return change


conv_in, conv_w, conv_b = (_tensor("CONV_2D", i) for i in range(3))
conv_out = _tensor("CONV_2D", 0, "outputs")
dense_w = _tensor("FULLY_CONNECTED", 1)
dw_w = _tensor("DEPTHWISE_CONV_2D", 1)

TARGETED = {
    "conv stride 0": _set_options("CONV_2D", strideW=0),
    "conv stride -1": _set_options("CONV_2D", strideH=-1),
    "conv stride 1000": _set_options("CONV_2D", strideW=1000, strideH=1000),
    "conv dilation 0": _set_options("CONV_2D", dilationWFactor=0),
    "conv dilation 1000": _set_options("CONV_2D", dilationHFactor=1000),
    "conv padding 7": _set_options("CONV_2D", padding=7),
    "conv activation TANH": _set_options("CONV_2D", fusedActivationFunction=4),
    "conv activation 99": _set_options("CONV_2D", fusedActivationFunction=99),
    "depthwise multiplier 3": _set_options("DEPTHWISE_CONV_2D", depthMultiplier=3),
    "depthwise stride 0": _set_options("DEPTHWISE_CONV_2D", strideH=0),
    "depthwise dilation 50": _set_options("DEPTHWISE_CONV_2D", dilationWFactor=50),
    "dense activation 99": _set_options("FULLY_CONNECTED", fusedActivationFunction=99),
    "input scale 0": _set_quant(conv_in, scale=[0.0]),
    "input scale NaN": _set_quant(conv_in, scale=[float("nan")]),
    "input scale -1": _set_quant(conv_in, scale=[-1.0]),
    "input scale inf": _set_quant(conv_in, scale=[float("inf")]),
    "input scale 1e-30": _set_quant(conv_in, scale=[1e-30]),
    "input zero point 300": _set_quant(conv_in, zeroPoint=[300]),
    "conv output scale 1e30": _set_quant(conv_out, scale=[1e30]),
    "conv output zero point -200": _set_quant(conv_out, zeroPoint=[-200]),
    "conv output zero points empty": _set_quant(conv_out, zeroPoint=[]),
    "conv weight scales too few": _set_quant(conv_w, scale=[0.01, 0.02]),
    "conv weight scale 0": lambda obj, sg, fb: setattr(
        conv_w(obj, sg).quantization,
        "scale",
        [0.0] * len(conv_w(obj, sg).quantization.scale),
    ),
    "conv weight zero point 5": lambda obj, sg, fb: setattr(
        conv_w(obj, sg).quantization,
        "zeroPoint",
        [5] * len(conv_w(obj, sg).quantization.zeroPoint),
    ),
    "conv weight quantized dimension 3": _set_quant(conv_w, quantizedDimension=3),
    "conv weight buffer truncated": _truncate_buffer(conv_w, 10),
    "conv bias buffer truncated": _truncate_buffer(conv_b, 3),
    "dense weight buffer truncated": _truncate_buffer(dense_w, 100),
    "depthwise weight buffer empty": _truncate_buffer(dw_w, 0),
    "conv weight shape larger": _set_tensor(conv_w, shape=[8, 5, 5, 1]),
    "conv weight shape channels": _set_tensor(conv_w, shape=[8, 3, 3, 4]),
    "conv weight shape 2**31-1": _set_tensor(conv_w, shape=[2**31 - 1, 3, 3, 1]),
    "conv output shape larger": _set_tensor(conv_out, shape=[1, 9, 9, 8]),
    "conv output shape fewer channels": _set_tensor(conv_out, shape=[1, 8, 8, 4]),
    "conv input shape 0": _set_tensor(conv_in, shape=[1, 0, 8, 1]),
    "conv input shape huge": _set_tensor(conv_in, shape=[1, 2**31 - 1, 2**31 - 1, 1]),
    "conv input rank 2": _set_tensor(conv_in, shape=[1, 64]),
    "conv input type INT16": _set_tensor(conv_in, type=7),
    "conv weight type UINT8": _set_tensor(conv_w, type=3),
    "conv bias type INT8": _set_tensor(conv_b, type=9),
    "conv bias -2**31": _set_int32(conv_b, 0, -(2**31)),
    "conv bias 2**31-1": _set_int32(conv_b, 3, 2**31 - 1),
    "depthwise op made a RESHAPE (3 inputs)": lambda obj, sg, fb: setattr(
        _op(obj, sg, "DEPTHWISE_CONV_2D"),
        "opcodeIndex",
        _op(obj, sg, "RESHAPE").opcodeIndex,
    ),
    "reshape with custom options": lambda obj, sg, fb: setattr(_op(obj, sg, "RESHAPE"), "customOptions", [1, 2, 3]),
    "conv bias missing": _set_input("CONV_2D", 2, lambda obj, sg: -1),
    "dense bias of 8 for 32 outputs": _set_input(
        "FULLY_CONNECTED", 2, lambda obj, sg: _op(obj, sg, "CONV_2D").inputs[2]
    ),
    "conv bias is the weights": _set_input("CONV_2D", 2, lambda obj, sg: _op(obj, sg, "CONV_2D").inputs[1]),
    "conv input is its output": _set_input("CONV_2D", 0, lambda obj, sg: _op(obj, sg, "CONV_2D").outputs[0]),
    "dense input is a constant": _set_input("FULLY_CONNECTED", 0, lambda obj, sg: _op(obj, sg, "CONV_2D").inputs[1]),
    "dense weight shape rows": _set_tensor(dense_w, shape=[33, 512]),
}


@pytest.mark.parametrize("name", sorted(TARGETED))
def test_targeted_mutations_end_in_a_clear_error_or_matching_c(seeds, name):
    """One field the native kernels read, set out of range in the int8 seed (see TARGETED)."""
    data = _edit(seeds["int8"], TARGETED[name])
    assert data != seeds["int8"]
    run_case(data)
