"""Fuzz `edgeclust inspect` and `verify` with mutated real .tflite files: every outcome is exit 0, 1 or 2,
one 'edgeclust: error:' line for exit 2, no traceback, no "internal error", no hang.

Seeds are real converter output (float32, int8 per channel, int8 per tensor) and the per-tensor model
LUT-compressed for TFLite Micro. Mutations: bit flips, overwritten bytes, 32-bit length/offset fields set
to telling values (one or a run of them), truncation, splices of two models, repeated chunks; aimed at the
flatbuffer's structure (outside weight data) most of the time. Bounded and derandomized for CI;
scripts/fuzz_tflite.py runs the same idea for longer.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TOOLCHAIN = Path(__file__).resolve().parents[2] / "toolchain"
CASE_TIMEOUT_S = 20
INTERESTING_U32 = (0, 1, 2, 4, 8, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def _load_fuzz_script():
    """scripts/fuzz_tflite.py, whose in-process runner and verdict this test shares (one rule, one place)."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "fuzz_tflite.py"
    spec = importlib.util.spec_from_file_location("fuzz_tflite", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fuzz_script = _load_fuzz_script()
problem = fuzz_script.judge
COMMANDS = fuzz_script.COMMANDS


def run_in_process(args: list[str]) -> tuple[int | str, str]:
    """`edgeclust ARGS` through the console entry point: (exit code, or "hang"; stderr)."""
    return fuzz_script.run_command(args, CASE_TIMEOUT_S)


def structure_positions(blob: bytes) -> list[int]:
    """Byte positions outside every buffer's data: the flatbuffer's tables, vectors, strings."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    model = fb.Model.GetRootAs(blob, 0)
    inside = bytearray(len(blob))
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        slot = buf._tab.Offset(4)
        if slot and buf.DataLength() > 64:
            start = buf._tab.Vector(slot)
            inside[start : start + buf.DataLength()] = b"\x01" * buf.DataLength()
    return [i for i in range(len(blob)) if not inside[i]]


@pytest.fixture(scope="module")
def seeds(plain, lut_per_tensor) -> dict[str, tuple[bytes, list[int]]]:
    models = {
        "float32": plain.float32,
        "int8": plain.int8,
        "int8-per-tensor": plain.int8_per_tensor,
        "int8-lut": lut_per_tensor.model,
    }
    return {name: (blob, structure_positions(blob)) for name, blob in models.items()}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# A mutation is a tuple drawn by hypothesis; positions are fractions so that shrinking moves towards byte 0.
fraction = st.floats(0, 1, exclude_max=True)
mutation = st.one_of(
    st.tuples(st.just("flip"), st.booleans(), fraction, st.integers(0, 7)),
    st.tuples(st.just("overwrite"), st.booleans(), fraction, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("u32"), st.booleans(), fraction, st.sampled_from(INTERESTING_U32) | st.integers(0, 2**32 - 1)),
    st.tuples(st.just("u32_run"), st.booleans(), fraction, st.integers(2, 6), st.sampled_from(INTERESTING_U32)),
    st.tuples(st.just("truncate"), fraction),
    st.tuples(
        st.just("splice"), fraction, st.sampled_from(["float32", "int8", "int8-lut"]), fraction, fraction, fraction
    ),
    st.tuples(st.just("repeat"), fraction, st.integers(1, 256)),
)


def mutate(seeds, name: str, steps) -> bytes:
    blob, structure = seeds[name]
    data = bytearray(blob)

    def at(in_structure: bool, where: float, align: int = 1) -> int:
        if in_structure and structure:
            pos = structure[int(where * len(structure))]
        else:
            pos = int(where * len(data))
        pos -= pos % align
        return max(0, min(pos, len(data) - align))

    for step in steps:
        kind = step[0]
        if kind == "flip" and data:
            pos = at(step[1], step[2])
            data[pos] ^= 1 << step[3]
        elif kind == "overwrite" and data:
            pos = at(step[1], step[2])
            data[pos : pos + len(step[3])] = step[3]
        elif kind == "u32" and len(data) >= 4:
            struct.pack_into("<I", data, at(step[1], step[2], 4), step[3])
        elif kind == "u32_run" and len(data) >= 24:
            pos = at(step[1], step[2], 4)
            for i in range(min(step[3], (len(data) - pos) // 4)):
                struct.pack_into("<I", data, pos + 4 * i, step[4])
        elif kind == "truncate":
            del data[int(step[1] * (len(data) + 1)) :]
        elif kind == "splice":
            other = seeds[step[2]][0]
            a = int(step[1] * (len(data) + 1))
            b = int(step[3] * (len(other) + 1))
            c = b + int(step[4] * (len(other) + 1 - b))
            d = a + int(step[5] * (len(data) + 1 - a))
            data = bytearray(data[:a] + other[b:c] + data[d:])
        elif kind == "repeat":
            a = int(step[1] * (len(data) + 1))
            b = min(len(data), a + step[2])
            data = bytearray(data[:b] + data[a:b] + data[b:])
    return bytes(data)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    name=st.sampled_from(["float32", "int8", "int8-per-tensor", "int8-lut"]),
    steps=st.lists(mutation, min_size=1, max_size=3),
)
def test_mutated_models_end_in_a_defined_outcome(seeds, work, name, steps):
    path = work / "case.tflite"
    path.write_bytes(mutate(seeds, name, steps))
    for command in COMMANDS:
        code, stderr = run_in_process([command[0], str(path), *command[1:]])
        assert problem(code, stderr) is None, f"{problem(code, stderr)}: {' '.join(command)}: {stderr[-600:]}"


def test_unmutated_seeds_pass(seeds, work):
    """The fuzz starts from readable models: each seed inspects (0) and verifies against 16 (0 or 1)."""
    for name, (blob, structure) in seeds.items():
        path = work / f"{name}.tflite"
        path.write_bytes(blob)
        assert run_in_process(["inspect", str(path)]) == (0, ""), name
        assert run_in_process(["verify", str(path), "-n", "16"])[0] in (0, 1), name
        assert 0 < len(structure) < len(blob)


def test_decoded_shape_overflowing_int64_is_a_format_error(seeds, work):
    """Found by scripts/fuzz_tflite.py: a shape vector length raised from 2 to 8 in the LUT model read six
    dimensions from the bytes after it; their product overflowed int64 ("negative dimensions")."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    blob = seeds["int8-lut"][0]
    obj = fb.ModelT.InitFromObj(fb.Model.GetRootAs(bytearray(blob), 0))
    sg = obj.subgraphs[0]
    decode = next(op for op in sg.operators if obj.operatorCodes[op.opcodeIndex].customCode == b"TFLM_DECODE")
    sg.tensors[int(decode.outputs[0])].shape = [0x7FFFFFFF] * 5
    builder = flatbuffers.Builder(len(blob) + 1024)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    path = work / "overflow.tflite"
    path.write_bytes(bytes(builder.Output()))
    for command in COMMANDS:
        code, stderr = run_in_process([command[0], str(path), *command[1:]])
        assert code == 2 and "corrupted .tflite file" in stderr and problem(code, stderr) is None, stderr


SUBPROCESS_CASES = {
    "flipped root offset": ("int8", [("flip", False, 0.0, 3)]),
    "vector length in structure": ("float32", [("u32", True, 0.5, 0xFFFFFFFF)]),
    "half of a LUT model": ("int8-lut", [("truncate", 0.5)]),
    "splice of two models": ("int8", [("splice", 0.3, "float32", 0.1, 0.2, 0.4)]),
}


@pytest.mark.parametrize("case", sorted(SUBPROCESS_CASES))
def test_mutated_models_in_a_subprocess(seeds, work, case):
    name, steps = SUBPROCESS_CASES[case]
    path = work / f"sub-{case.replace(' ', '-')}.tflite"
    path.write_bytes(mutate(seeds, name, steps))
    env = {**os.environ, "PYTHONPATH": str(TOOLCHAIN), "EDGECLUST_DEBUG": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    for command in (COMMANDS[0], COMMANDS[2]):
        done = subprocess.run(
            [sys.executable, "-m", "edgeclust", command[0], str(path), *command[1:]],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert problem(done.returncode, done.stderr) is None, done.stderr
