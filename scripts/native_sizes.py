#!/usr/bin/env python3
"""Measure the native runtime's code per kernel with arm-none-eabi-gcc and write it to
toolchain/edgeclust/backends/native/runtime_sizes.toml (price() uses it where no cross compiler is installed).

Builds one firmware with every int8 kernel and one with float edges (QUANTIZE/DEQUANTIZE) per CPU profile,
reads each kernel's bytes with arm-none-eabi-nm -S (static helpers counted with the kernel that calls them),
and the rest of the code (startup, console, main, libc, libgcc) as `base`.

    python scripts/native_sizes.py            # prints the table and writes the file
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "toolchain"))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROFILES = {"cortex-m3": "qemu_lm3s6965evb", "cortex-m4f": "qemu_mps2_an386"}
# static helpers -> the kernel whose code they are
HELPERS = {
    "ec_conv_acc": "ec_conv",
    "ec_pool": "ec_max_pool",
    "ec_exp_quarter": "ec_softmax",
    "ec_exp_on_negative_values": "ec_softmax",
    "ec_one_over_one_plus_x": "ec_softmax",
    "ec_conv_pixel_1x2": "ec_conv",
    "ec_depthwise_fast": "ec_depthwise_conv",
    "ec_dw3x3_run": "ec_depthwise_conv",
    "ec_conv_fast": "ec_conv",
    "ec_conv_patch": "ec_conv",
    "ec_dot_pairs": "ec_conv",
    "ec_dot_halves": "ec_conv",
    "ec_fc_pairs_4bit": "ec_fully_connected",
    "ec_pair_table": "ec_fully_connected",
    "ec_conv_pool_fast": "ec_conv",
    "ec_conv_pool_block": "ec_conv",
    "ec_conv_pool_locate": "ec_conv",
    "ec_pool_run4": "ec_conv",
    "ec_pool_widen": "ec_conv",
    "ec_pool_requantize": "ec_conv",
    "ec_dot_4rows": "ec_fully_connected",
    "ec_widen_pairs": "ec_fully_connected",
    "ec_fc_int8": "ec_fully_connected",
    "ec_fc_4bit": "ec_fully_connected",
    "ec_dot_4bit_2rows": "ec_fully_connected",
    "ec_fully_connected_fast": "ec_fully_connected",
    "ec_conv_1x1": "ec_conv",
    "ec_1x1_pair": "ec_conv",
    "ec_conv_pixel_major": "ec_conv",
    "ec_conv_im2col": "ec_conv",
    "ec_im2col_group": "ec_conv",
    "ec_im2col_channels4": "ec_conv",
    "ec_im2col_channels": "ec_conv",
    "ec_depthwise_planes": "ec_depthwise_conv",
    "ec_depthwise_planes_scratch": "ec_depthwise_conv",
    "ec_dw_plane_bytes": "ec_depthwise_conv",
    "ec_dw3x3_plane": "ec_depthwise_conv",
    "ec_add_plain": "ec_add",
    "ec_add_tables": "ec_add",
    "ec_add_fast": "ec_add",
}
OUT = HERE.parent / "toolchain" / "edgeclust" / "backends" / "native" / "runtime_sizes.toml"


def models():
    import keras
    import numpy as np
    import tensorflow as tf

    from edgeclust.tflite.convert import to_tflite

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((8, 8, 2), batch_size=1)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(x)
    y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Add()([x, y])
    x = layers.AveragePooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4, activation="softmax")(layers.Dense(8, activation="relu")(x))
    data = np.random.default_rng(0).normal(size=(32, 8, 8, 2)).astype(np.float32)
    int8 = to_tflite(keras.Model(inputs, outputs), quantize="int8", representative_data=data, num_calibration=32)
    small = keras.Sequential([keras.Input((8, 8, 2)), layers.Flatten(), layers.Dense(4)])
    converter = tf.lite.TFLiteConverter.from_keras_model(small)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[None]] for row in data)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    floats = converter.convert()
    return int8, floats


def measure(tflite: bytes, board):
    import numpy as np

    from edgeclust.backends.base import SelfTestCase
    from edgeclust.backends.native import NativeBackend
    from edgeclust.device.build import build_make_project, elf_size, write_project
    from edgeclust.pipeline.layouts import weight_layouts

    backend = NativeBackend()
    lowered = backend.lower(tflite, weight_layouts(tflite))
    spec_in, spec_out = lowered.interface.inputs[0], lowered.interface.outputs[0]
    case = SelfTestCase(np.zeros(spec_in.shape[1:], spec_in.dtype), np.zeros(spec_out.shape[1:], spec_out.dtype))
    with tempfile.TemporaryDirectory() as tmp:
        elf = build_make_project(write_project(backend.render(lowered, board, [case]), Path(tmp)), board)
        sizes = elf_size(elf, board)
        nm = subprocess.run(
            ["arm-none-eabi-nm", "-S", "--size-sort", str(elf)], capture_output=True, text=True, check=True
        ).stdout
    kernels: dict[str, int] = {}
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tT" and parts[3].startswith("ec_"):
            base_name = parts[3].split(".")[0]  # gcc's clones: ec_x.constprop.0, ec_x.part.1
            name = HELPERS.get(base_name, base_name)
            if name.startswith(
                (
                    "ec_model",
                    "ec_platform",
                    "ec_print",
                    "ec_exit",
                    "ec_ticks",
                    "ec_run",
                    "ec_self_test",
                    "ec_stream",
                    "ec_multiply",
                    "ec_systick",
                    "ec_row",  # the row decoder every weighted kernel shares
                    "ec_use_scratch",
                )
            ):  # the shared part of the runtime: counted in base
                continue
            kernels[name] = kernels.get(name, 0) + int(parts[1], 16)
    program = lowered.details.program
    model_bytes = sum(c.nbytes for c in program.consts) + program.input.size + program.output.size
    base = sizes.text + sizes.data - model_bytes - sum(kernels.values())
    return kernels, base


def main() -> int:
    from edgeclust.codegen.board import load_board
    from edgeclust.resources import boards_dir

    int8, floats = models()
    lines = [
        "# Code bytes of the native runtime per CPU profile, measured by scripts/native_sizes.py with",
        "# arm-none-eabi-gcc -O2 (nm -S per kernel; base = startup, console, main, libc, libgcc).",
        "# price() uses it only where no cross compiler is installed; with one it links the firmware.",
    ]
    earlier = tomllib.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {}
    for profile, board_id in PROFILES.items():
        board = load_board(board_id, boards_dir())
        kernels, base = measure(int8, board)
        float_kernels, float_base = measure(floats, board)
        kernels.update({k: v for k, v in float_kernels.items() if k in ("ec_quantize", "ec_dequantize")})
        float_support = max(0, float_base - base)  # libgcc/libm float code the edges pull in
        for name in ("ec_quantize", "ec_dequantize"):
            kernels[name] = kernels.get(name, 0) + float_support // 2
        kernels["ec_average_pool"] = kernels.get("ec_average_pool", 0) + kernels.get("ec_max_pool", 0)
        # kernels these two models do not use (the elementwise, data-movement and reduce ops) keep the sizes
        # measured for them before (nm -S of their own object file)
        kept = {
            k: v
            for k, v in earlier.get(profile, {}).items()
            if k not in kernels and k.startswith("ec_") and k not in HELPERS and k != "ec_use_scratch"
        }
        kernels.update(kept)
        lines += ["", f"[{profile}]", f"base = {base}", f"default_kernel = {max(kernels.values())}"]
        lines += [f"{name} = {size}" for name, size in sorted(kernels.items())]
    text = "\n".join(lines) + "\n"
    OUT.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
