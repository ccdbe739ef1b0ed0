#!/usr/bin/env python3
"""How `inspect` and `verify` scale: a ~20-million-parameter model, float32 (~80 MB) and int8 (~20 MB).

The model is a chain of FULLY_CONNECTED layers written with the .tflite flatbuffer schema (the one that
ships in `tflite-micro`), its weights drawn from 16 values per tensor (float32) or 16 codes per tensor with
per-channel scales (int8), as clustering leaves them. With --check-interpreter the LiteRT interpreter first
allocates and runs each model once, to show they are real models. Then, for each model:

  - in this process: read + inspect_weights, verify per tensor, verify per channel; seconds, and the
    tracemalloc peak (numpy's allocations included) beside the file size;
  - in a fresh subprocess: the same calls, and how much the peak RSS grew over the peak after imports
    (the file's bytes are part of the work);
  - the CLI as users run it (`python -m edgeclust inspect/verify`): seconds and its peak RSS, imports included.

Peak RSS is the kernel's VmHWM of the measured process (/proc/self/status). resource.getrusage's ru_maxrss
is printed beside it but misleads here: Linux carries the parent's high-water mark across fork and exec
into the child's ru_maxrss, so every child of this (large) script reports at least the script's own peak.

    python scripts/scale_inspect.py                      # ~20M parameters
    python scripts/scale_inspect.py --dims 1024 2048 2048 10 --keep /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TOOLCHAIN = HERE.parent / "toolchain"
sys.path.insert(0, str(TOOLCHAIN))

DEFAULT_DIMS = (1024, 4096, 2048, 2048, 1024, 1024, 10)  # 19.9M weights
LEVELS = 16


def fc_chain_model(dims, quantized: bool, seed: int = 0) -> bytes:
    """FULLY_CONNECTED layers dims[0] -> dims[1] -> ... as .tflite bytes; weights from 16 values per tensor."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    rng = np.random.default_rng(seed)
    tensors, buffers, operators = [], [fb.BufferT()], []

    def add_buffer(array: np.ndarray | None) -> int:
        buf = fb.BufferT()
        if array is not None:
            buf.data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        buffers.append(buf)
        return len(buffers) - 1

    def add_tensor(name, shape, ttype, data=None, scales=None, zero_points=None, axis=0) -> int:
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), list(shape), ttype, add_buffer(data)
        if scales is not None:
            q = fb.QuantizationParametersT()
            q.scale = [float(s) for s in scales]
            q.zeroPoint = [0] * len(q.scale) if zero_points is None else list(zero_points)
            q.quantizedDimension = axis
            t.quantization = q
        tensors.append(t)
        return len(tensors) - 1

    act_type = fb.TensorType.INT8 if quantized else fb.TensorType.FLOAT32
    act_scale = [0.05] if quantized else None
    x = add_tensor("input", (1, dims[0]), act_type, scales=act_scale)
    first_input = x
    for i, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:])):
        codes = rng.integers(0, LEVELS, size=(n_out, n_in), dtype=np.uint8)
        if quantized:
            levels = np.linspace(-120, 120, LEVELS).astype(np.int8)
            weight_scales = rng.uniform(0.001, 0.01, n_out)
            w = add_tensor(
                f"dense_{i}/kernel",
                (n_out, n_in),
                fb.TensorType.INT8,
                levels[codes],
                scales=weight_scales,
                zero_points=[0] * n_out,
            )
            b = add_tensor(
                f"dense_{i}/bias",
                (n_out,),
                fb.TensorType.INT32,
                np.zeros(n_out, np.int32),
                scales=0.05 * weight_scales,
                zero_points=[0] * n_out,
            )
        else:
            levels = np.linspace(-0.1, 0.1, LEVELS).astype(np.float32)
            w = add_tensor(f"dense_{i}/kernel", (n_out, n_in), fb.TensorType.FLOAT32, levels[codes])
            b = add_tensor(f"dense_{i}/bias", (n_out,), fb.TensorType.FLOAT32, np.zeros(n_out, np.float32))
        del codes
        y = add_tensor(f"dense_{i}/out", (1, n_out), act_type, scales=act_scale)
        op = fb.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, [x, w, b], [y]
        op.builtinOptionsType = fb.BuiltinOptions.FullyConnectedOptions
        op.builtinOptions = fb.FullyConnectedOptionsT()
        if i < len(dims) - 2:
            op.builtinOptions.fusedActivationFunction = fb.ActivationFunctionType.RELU
        operators.append(op)
        x = y
    sg = fb.SubGraphT()
    sg.tensors, sg.operators, sg.inputs, sg.outputs = tensors, operators, [first_input], [x]
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.FULLY_CONNECTED
    code.version = 4 if quantized else 1
    model = fb.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [sg], buffers
    model.description = b"edgeclust scale test"
    total = sum(n_in * n_out for n_in, n_out in zip(dims[:-1], dims[1:]))
    builder = flatbuffers.Builder(total * (1 if quantized else 4) + (1 << 20))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def check_with_interpreter(path: Path) -> str:
    """Allocate and invoke the model once in LiteRT: proof that the bytes are a real model."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.ones(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    out = interpreter.get_output_details()[0]
    return f"LiteRT ran it: output shape {tuple(int(d) for d in out['shape'])}, {np.dtype(out['dtype']).name}"


def library_steps(path: Path):
    """(label, function) for each in-process step; each reads the file itself, as the CLI does."""
    from edgeclust.tflite import flatbuffer, inspect

    return [
        ("read + inspect_weights", lambda: inspect.inspect_weights(flatbuffer.read_model_file(path))),
        ("read + verify (per tensor, 16)", lambda: inspect.verify(flatbuffer.read_model_file(path), 16)),
        (
            "read + verify (per channel, 16)",
            lambda: inspect.verify(flatbuffer.read_model_file(path), 16, per_channel=True),
        ),
    ]


def measure_in_process(path: Path) -> list[dict]:
    rows = []
    for label, step in library_steps(path):
        step()  # warm: imports and first-touch costs out of the timing
        began = time.perf_counter()
        result = step()
        seconds = time.perf_counter() - began
        tracemalloc.start()
        step()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        passed = getattr(result, "passed", None)
        rows.append({"step": label, "seconds": seconds, "tracemalloc_peak": peak, "passed": passed})
    return rows


def vm_hwm_kib() -> int:
    """This process's peak resident set size in KiB (VmHWM), 0 where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_child(path: Path) -> None:
    """Subprocess mode: import, note the peak RSS, run every step, print the growth as JSON."""
    from edgeclust.tflite import flatbuffer, inspect  # noqa: F401  (imports before the baseline)

    before, maxrss_before = vm_hwm_kib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _, step in library_steps(path):
        step()
    after, maxrss_after = vm_hwm_kib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "rss_before_kib": before,
                "rss_delta_kib": after - before,
                "ru_maxrss_before_kib": maxrss_before,
                "ru_maxrss_delta_kib": maxrss_after - maxrss_before,
            }
        )
    )


def measure_rss(path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# `python -m edgeclust ARGS`, plus an exit hook that writes the process's VmHWM to $EDGECLUST_SCALE_HWM
_CLI_LAUNCHER = """
import atexit, os, runpy, sys
def _hwm():
    status = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]
    open(os.environ['EDGECLUST_SCALE_HWM'], 'w').write(status)
atexit.register(_hwm)
sys.argv = ['edgeclust'] + sys.argv[1:]
runpy.run_module('edgeclust', run_name='__main__', alter_sys=True)
"""


def measure_cli(path: Path, args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        hwm_file = Path(tmp) / "hwm"
        env = {
            **os.environ,
            "PYTHONPATH": str(TOOLCHAIN),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "EDGECLUST_SCALE_HWM": str(hwm_file),
        }
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _CLI_LAUNCHER, args[0], str(path), *args[1:]],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        seconds = time.perf_counter() - began
        hwm = int(hwm_file.read_text()) if hwm_file.exists() else 0
    return {
        "command": "edgeclust " + " ".join([args[0], path.name, *args[1:]]),
        "exit": done.returncode,
        "seconds": seconds,
        "max_rss_kib": hwm,
        "stderr": done.stderr.strip(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dims",
        type=int,
        nargs="+",
        default=list(DEFAULT_DIMS),
        help="layer widths, input first (default: ~20M weights)",
    )
    parser.add_argument("--keep", type=Path, help="write the models here (default: a temporary folder)")
    parser.add_argument("--check-interpreter", action="store_true", help="run each model once in LiteRT first")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return 0

    params = sum(a * b for a, b in zip(args.dims[:-1], args.dims[1:]))
    folder = args.keep or Path(tempfile.mkdtemp(prefix="edgeclust-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"model: FULLY_CONNECTED chain {' -> '.join(map(str, args.dims))}: {params:,} weights, "
        f"{LEVELS} values per tensor"
    )
    for kind, quantized in (("float32", False), ("int8", True)):
        began = time.perf_counter()
        path = folder / f"scale_{kind}.tflite"
        path.write_bytes(fc_chain_model(args.dims, quantized))
        size = path.stat().st_size
        print(f"\n{kind}: {path} {size:,} bytes ({size / 2**20:.1f} MiB), built in {time.perf_counter() - began:.1f} s")
        if args.check_interpreter:
            print(f"  {check_with_interpreter(path)}")
        print(f"  {'in-process step':<34} {'seconds':>8} {'tracemalloc peak':>17} {'peak/file':>10}  result")
        for row in measure_in_process(path):
            result = "" if row["passed"] is None else ("PASS" if row["passed"] else "FAIL")
            print(
                f"  {row['step']:<34} {row['seconds']:>8.2f} {row['tracemalloc_peak'] / 2**20:>13.1f} MiB "
                f"{row['tracemalloc_peak'] / size:>9.2f}x  {result}"
            )
        rss = measure_rss(path)
        print(
            f"  fresh subprocess, all three steps: peak RSS grew {rss['rss_delta_kib'] / 1024:.1f} MiB "
            f"({rss['rss_delta_kib'] * 1024 / size:.2f}x the file) over {rss['rss_before_kib'] / 1024:.1f} MiB "
            f"after imports (ru_maxrss: +{rss['ru_maxrss_delta_kib'] / 1024:.1f} MiB over an inherited "
            f"{rss['ru_maxrss_before_kib'] / 1024:.1f} MiB)"
        )
        for cli_args in (
            ["inspect"],
            ["verify", "--max-unique", "16"],
            ["verify", "--max-unique", "16", "--per-channel"],
        ):
            row = measure_cli(path, cli_args)
            print(
                f"  CLI {row['command']:<62} exit {row['exit']}  {row['seconds']:.2f} s  "
                f"peak RSS {row['max_rss_kib'] / 1024:.1f} MiB{'  ' + row['stderr'] if row['stderr'] else ''}"
            )
    if not args.keep:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
