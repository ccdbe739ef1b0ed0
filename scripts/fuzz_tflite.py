#!/usr/bin/env python3
"""Fuzz `edgeclust inspect` and `edgeclust verify` with mutated real .tflite files.

Seeds are real models made by the real converter (float32, int8 per channel, int8 per tensor, and the
per-tensor model LUT-compressed for TFLite Micro), or the files given with --models. Each case applies one
to three mutations (bit flips, overwritten bytes, 32-bit length/offset fields set to telling values,
truncation, splices of two models, repeated chunks), aimed at the flatbuffer's tables and vectors more
often than at weight data, and runs the commands in-process through the CLI's entry point.

A case passes when every command exits 0, 1 or 2, prints no traceback and no "internal error", and
finishes within --case-timeout seconds. The summary prints cases tried, outcome counts and each failure
(saved with --save-failures DIR for replay: `edgeclust inspect DIR/fail-0.tflite`).

    python scripts/fuzz_tflite.py --cases 5000 --seconds 600
    python scripts/fuzz_tflite.py --models a.tflite b.tflite --cases 20000 --save-failures /tmp/fuzz
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import os
import random
import resource
import signal
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "toolchain"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

INTERESTING_U32 = (
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFE,
    0xFFFFFFFF,
)
COMMANDS = (
    ["inspect"],
    ["inspect", "--json"],
    ["verify", "--max-unique", "16"],
    ["verify", "--max-unique", "16", "--per-channel", "--json"],
)


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so the CLI's `except Exception` cannot swallow it."""


def seed_models() -> dict[str, bytes]:
    """Four real models from the converter: a small Conv/Depthwise/Dense CNN with 16-level kernels."""
    import keras
    import numpy as np
    from keras import layers

    from edgeclust.backends.tflm.lut import lut_compress
    from edgeclust.pipeline.layouts import weight_layouts
    from edgeclust.tflite import convert

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(8, 8, 1))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    model = keras.Model(inputs, layers.Dense(10)(x))
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            kernel = weights[0]
            levels = np.linspace(kernel.min(), kernel.max(), 16, dtype=np.float32)
            weights[0] = levels[np.abs(kernel[..., None] - levels).argmin(-1)]
            layer.set_weights(weights)
    calibration = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32)
    per_tensor = convert.to_tflite(model, quantize="int8", representative_data=calibration, per_channel=False)
    return {
        "float32": convert.to_tflite(model, quantize="float32"),
        "int8": convert.to_tflite(model, quantize="int8", representative_data=calibration),
        "int8-per-tensor": per_tensor,
        "int8-lut": lut_compress(per_tensor, weight_layouts(per_tensor)).model,
    }


def data_ranges(blob: bytes, min_size: int = 65) -> list[tuple[int, int]]:
    """(start, end) of the data of every buffer of at least `min_size` bytes in `blob`: the bytes that are
    weights, not flatbuffer structure."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    model = fb.Model.GetRootAs(blob, 0)
    ranges = []
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        slot = buf._tab.Offset(4)
        if slot and buf.DataLength() >= min_size:
            start = buf._tab.Vector(slot)
            ranges.append((start, start + buf.DataLength()))
    return ranges


class Mutator:
    """Seeded mutations of real models, aimed at structure (outside weight data) four times in five."""

    def __init__(self, seeds: dict[str, bytes], rng: random.Random):
        self.seeds = seeds
        self.names = sorted(seeds)
        self.rng = rng
        self.structure = {}
        for name, blob in seeds.items():
            inside = bytearray(len(blob))
            for start, end in data_ranges(blob):
                inside[start:end] = b"\x01" * (end - start)
            self.structure[name] = [i for i in range(len(blob)) if not inside[i]]

    def position(self, name: str, data: bytearray, align: int = 1) -> int:
        positions = self.structure[name]
        if positions and self.rng.random() < 0.8:
            pos = self.rng.choice(positions)
        else:
            pos = self.rng.randrange(max(1, len(data)))
        return min(pos - pos % align, max(0, len(data) - align))

    def case(self) -> tuple[str, bytes, list[str]]:
        name = self.rng.choice(self.names)
        data = bytearray(self.seeds[name])
        steps = []
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            kind = self.rng.choice(
                (
                    "flip",
                    "flip",
                    "overwrite",
                    "u32",
                    "u32",
                    "u32",
                    "u32_run",
                    "truncate",
                    "splice",
                    "repeat",
                    "field",
                    "field",
                )
            )
            data, step = getattr(self, kind)(name, data)
            steps.append(step)
        return name, bytes(data), steps

    def flip(self, name, data):
        flips = []
        for _ in range(self.rng.randint(1, 8)):
            pos = self.position(name, data)
            bit = self.rng.randrange(8)
            if pos < len(data):
                data[pos] ^= 1 << bit
            flips.append(f"{pos}.{bit}")
        return data, f"flip {' '.join(flips)}"

    def overwrite(self, name, data):
        pos = self.position(name, data)
        chunk = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 16)))
        data[pos : pos + len(chunk)] = chunk
        return data, f"overwrite {pos} {chunk.hex()}"

    def u32(self, name, data):
        if len(data) < 4:
            return data, "u32 skipped"
        pos = self.position(name, data, align=4)
        old = struct.unpack_from("<I", data, pos)[0]
        value = self.rng.choice(
            INTERESTING_U32 + (len(data), len(data) - pos, old + 1, old - 1, old * 2, old + self.rng.randint(-64, 64))
        )
        struct.pack_into("<I", data, pos, value & 0xFFFFFFFF)
        return data, f"u32 {pos} {old}->{value & 0xFFFFFFFF}"

    def u32_run(self, name, data):
        """Two to six consecutive 32-bit fields set to large values: overflows in shapes and counts."""
        if len(data) < 24:
            return data, "u32_run skipped"
        pos = self.position(name, data, align=4)
        count = min(self.rng.randint(2, 6), (len(data) - pos) // 4)
        value = self.rng.choice((0x7FFFFFFF, 0x10000, 0xFFFFFFFF, 0x80000000, 0x40000000))
        for i in range(count):
            struct.pack_into("<I", data, pos + 4 * i, value)
        return data, f"u32_run {pos} {count}x{value}"

    def field(self, name, data):
        """One field of the unpacked model (tensor type, shape, buffer, quantization, operator inputs, opcode,
        buffer offset) set to an odd value, the model packed again: wrong meaning behind valid structure."""
        import flatbuffers
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

        try:
            obj = fb.ModelT.InitFromObj(fb.Model.GetRootAs(bytearray(data), 0))
        except Exception:  # an earlier mutation broke it: the object API cannot unpack it
            return data, "field skipped"
        if not obj.subgraphs or not obj.subgraphs[0].tensors:
            return data, "field skipped"
        rng = self.rng
        sg = obj.subgraphs[0]
        tensor = rng.choice(sg.tensors)
        odd = rng.choice((-1, 0, 1, 2, 3, 255, 2**16, 2**31 - 1, -(2**31)))
        what = rng.choice(
            (
                "type",
                "shape",
                "shape_len",
                "buffer",
                "scale",
                "zero_point",
                "qdim",
                "op_input",
                "op_output",
                "opcode",
                "builtin",
                "offset",
                "sg_io",
            )
        )
        if what == "type":
            tensor.type = rng.randrange(0, 20)
        elif what == "shape":
            if tensor.shape is not None and len(tensor.shape):
                tensor.shape[rng.randrange(len(tensor.shape))] = odd
        elif what == "shape_len":
            tensor.shape = [rng.choice((1, 2, 3, odd)) for _ in range(rng.randint(0, 6))]
        elif what == "buffer":
            tensor.buffer = rng.choice((odd, rng.randrange(len(obj.buffers) or 1)))
        elif what in ("scale", "zero_point", "qdim"):
            q = tensor.quantization or fb.QuantizationParametersT()
            n = rng.choice((0, 1, 2, 3, 4, 8, 10, 16, 32))
            if what == "scale":
                q.scale = [rng.choice((0.0, -1.0, 1e-3, float("nan"), float("inf"))) for _ in range(n)]
            elif what == "zero_point":
                q.zeroPoint = [rng.choice((0, 127, -128, odd)) for _ in range(n)]
            else:
                q.quantizedDimension = rng.choice((odd, 0, 1, 2, 3, 4))
            tensor.quantization = q
        elif what in ("op_input", "op_output") and sg.operators:
            op = rng.choice(sg.operators)
            values = op.inputs if what == "op_input" else op.outputs
            vector = ([] if values is None else [int(v) for v in values]) or [0]
            vector[rng.randrange(len(vector))] = rng.choice((odd, rng.randrange(len(sg.tensors))))
            if what == "op_input":
                op.inputs = vector
            else:
                op.outputs = vector
        elif what == "opcode" and sg.operators:
            rng.choice(sg.operators).opcodeIndex = rng.choice((odd, rng.randrange(len(obj.operatorCodes) or 1)))
        elif what == "builtin" and obj.operatorCodes:
            code = rng.choice(obj.operatorCodes)
            code.builtinCode = code.deprecatedBuiltinCode = rng.choice((0, 1, 3, 4, 6, 9, 22, 32, 114, 127, 160))
        elif what == "offset" and obj.buffers:
            buf = rng.choice(obj.buffers)
            buf.offset, buf.size = rng.choice((0, 1, 2, 8, len(data) - 8, 2**40)), rng.choice((0, 1, 16, 2**20))
        elif what == "sg_io":
            sg.inputs = [rng.choice((odd, 0))]
        try:
            builder = flatbuffers.Builder(len(data) + 1024)
            builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
        except Exception:  # a value the schema's field type cannot hold
            return data, f"field {what} unpackable"
        return bytearray(builder.Output()), f"field {what} ({odd})"

    def truncate(self, name, data):
        pos = self.rng.randrange(len(data) + 1)
        return data[:pos], f"truncate {pos}"

    def splice(self, name, data):
        other = self.seeds[self.rng.choice(self.names)]
        a = self.rng.randrange(len(data) + 1)
        b = self.rng.randrange(len(other) + 1)
        c = self.rng.randrange(b, len(other) + 1)
        d = self.rng.randrange(a, len(data) + 1)
        return bytearray(data[:a] + other[b:c] + data[d:]), f"splice {a} [{b}:{c}] {d}"

    def repeat(self, name, data):
        a = self.rng.randrange(len(data) + 1)
        b = min(len(data), a + self.rng.randint(1, 256))
        return bytearray(data[:b] + data[a:b] + data[b:]), f"repeat [{a}:{b}]"


def run_command(args: list[str], timeout: float) -> tuple[int | str, str]:
    """Run `edgeclust ARGS` in-process: (exit code or "hang", stderr)."""
    from edgeclust.cli.main import main

    out, err = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    code: int | str = 0
    saved_debug = os.environ.pop("EDGECLUST_DEBUG", None)  # tracebacks on purpose would read as failures
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    except Hang:
        code = "hang"
    except BaseException as exc:  # anything escaping main() is a failure to report, not to crash on
        code = "escaped"
        err.write(f"Traceback (escaped main): {type(exc).__name__}: {exc}\n")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if saved_debug is not None:
            os.environ["EDGECLUST_DEBUG"] = saved_debug
    return code, err.getvalue() + out.getvalue()[-2000:] if code not in (0, 1, 2) else err.getvalue()


def _address_space() -> int:
    """This process's mapped address space in bytes (VmSize)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def judge(code, stderr: str) -> str | None:
    """Why an outcome is a failure, or None when it is one of the allowed outcomes."""
    if code not in (0, 1, 2):
        return f"exit {code}"
    if "Traceback" in stderr:
        return "traceback"
    if "internal error" in stderr:
        return "internal error"
    if code == 2 and not any(line.startswith("edgeclust: error:") for line in stderr.splitlines()):
        return "exit 2 without an 'edgeclust: error:' line"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000, help="stop after this many cases")
    parser.add_argument("--seconds", type=float, default=300, help="stop after this much time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", type=Path, nargs="*", help="seed .tflite files (default: built here)")
    parser.add_argument("--case-timeout", type=float, default=20.0, help="seconds before a command counts as hung")
    parser.add_argument(
        "--memory-limit-gb", type=float, default=2.0, help="address space the fuzzed commands may add to this process"
    )
    parser.add_argument("--save-failures", type=Path, help="write each failing input here")
    args = parser.parse_args()

    seeds = {p.name: p.read_bytes() for p in args.models} if args.models else seed_models()
    from edgeclust.tflite import flatbuffer

    for blob in seeds.values():
        flatbuffer.read_model(blob)  # a seed must be a readable model
    limit = _address_space() + int(args.memory_limit_gb * 2**30)  # TensorFlow alone maps gigabytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))

    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"edgeclust-fuzz-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    target = work / "case.tflite"
    mutator = Mutator(seeds, random.Random(args.seed))
    outcomes: collections.Counter[str] = collections.Counter()
    failures = []
    slowest = (0.0, "")
    start = time.monotonic()
    cases = 0
    try:
        while cases < args.cases and time.monotonic() - start < args.seconds:
            seed_name, data, steps = mutator.case()
            target.write_bytes(data)
            cases += 1
            for command in COMMANDS:
                argv = command[:1] + [str(target)] + command[1:]
                began = time.monotonic()
                code, stderr = run_command(argv, args.case_timeout)
                took = time.monotonic() - began
                if took > slowest[0]:
                    slowest = (took, f"{' '.join(command)} on {seed_name} ({'; '.join(steps)})")
                outcomes[f"{command[0]} exit {code}"] += 1
                why = judge(code, stderr)
                if why:
                    failures.append((why, seed_name, steps, command, stderr.strip().splitlines()[-3:], data))
    finally:
        target.unlink(missing_ok=True)
        work.rmdir()

    elapsed = time.monotonic() - start
    print(f"seeds: {', '.join(f'{n} ({len(b):,} B)' for n, b in sorted(seeds.items()))}")
    print(
        f"cases tried: {cases:,} in {elapsed:.1f} s ({len(COMMANDS)} commands each, "
        f"{cases * len(COMMANDS) / max(elapsed, 1e-9):.0f} runs/s); slowest run {slowest[0]:.2f} s: {slowest[1]}"
    )
    for outcome, count in sorted(outcomes.items()):
        print(f"  {outcome}: {count:,}")
    print(f"failures: {len(failures)}")
    if args.save_failures and failures:
        args.save_failures.mkdir(parents=True, exist_ok=True)
    for i, (why, seed_name, steps, command, tail, data) in enumerate(failures[:50]):
        print(f"  [{i}] {why}: {' '.join(command)} on {seed_name} after {'; '.join(steps)}")
        for line in tail:
            print(f"        {line[:300]}")
        if args.save_failures:
            (args.save_failures / f"fail-{i}.tflite").write_bytes(data)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
