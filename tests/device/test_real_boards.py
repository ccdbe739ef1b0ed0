"""Real boards compile here, where their toolchain is a Debian package: the STM32F746G-DISCO's Makefile project
with the native backend links with arm-none-eabi-gcc (no BKPT in it: it prints over USART1), and the native
backend's sources compile for the Raspberry Pi Pico's Cortex-M0+ and the Nano 33 BLE's Cortex-M4F.
The ESP32-S3 (Xtensa) needs ESP-IDF's compiler, which Debian does not package."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from edgeclust.codegen import board as board_mod


@pytest.fixture(scope="module")
def small_native(boards_dir):
    """A small int8 CNN (conv, depthwise, dense, softmax) lowered by the native backend, with 2 self-test cases."""
    import keras

    from edgeclust.backends.base import SelfTestCase
    from edgeclust.backends.native import NativeBackend
    from edgeclust.pipeline.layouts import weight_layouts
    from edgeclust.tflite.convert import to_tflite
    from edgeclust.tflite.parity import model_interface, quantize, run_tflm

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), batch_size=1),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    data = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32)
    tflite = to_tflite(model, quantize="int8", representative_data=data, num_calibration=32)
    x = quantize(data[:2], model_interface(tflite).inputs[0])
    backend = NativeBackend()
    lowered = backend.lower(tflite, weight_layouts(tflite))
    return backend, lowered, [SelfTestCase(a, b) for a, b in zip(x, run_tflm(tflite, x))]


def test_the_stm32f746g_disco_native_project_links_and_fits(small_native, boards_dir, tmp_path, cross_tools):
    from edgeclust.device.build import build_make_project, elf_size, write_project

    backend, lowered, cases = small_native
    board = board_mod.load_board("stm32f746g_disco", boards_dir)
    folder = write_project(backend.render(lowered, board, cases), tmp_path / "disco")
    elf = build_make_project(folder, board)
    size = elf_size(elf, board)
    print(
        f"stm32f746g_disco native: text {size.text:,} data {size.data:,} bss {size.bss:,} bytes; "
        f"flash {size.flash:,} of {board.flash_bytes:,}, RAM {size.ram:,} of {board.ram_bytes:,}"
    )
    assert 0 < size.flash < board.flash_bytes and 0 < size.ram < board.ram_bytes
    disassembly = subprocess.run(
        ["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"\bbkpt\b", disassembly) is None  # no semihosting on a board without a debugger
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r" T console_write$", symbols, re.M) and re.search(r" T ec_model_invoke$", symbols, re.M)
    # linked in the part's flash at 0x08000000 and its SRAM at 0x20000000
    vector = int(re.search(r"^([0-9a-f]+) [A-Za-z] g_vector_table$", symbols, re.M).group(1), 16)
    assert vector == board.flash_origin


@pytest.mark.parametrize(
    "board_id, extra_flags",
    [
        ("rpi_pico", ()),  # -mcpu=cortex-m0plus: ARMv6-M, no divide
        ("arduino_nano33_ble", ()),  # -mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=softfp: the Arduino mbed core's ABI
        ("arduino_nano33_ble", ("-mfloat-abi=hard",)),  # and hard float, as a bare-metal nRF52840 build would use
    ],
)
def test_the_native_sources_compile_for_the_real_boards_cpus(
    board_id, extra_flags, small_native, boards_dir, tmp_path, cross_tools
):
    backend, lowered, cases = small_native
    board = board_mod.load_board(board_id, boards_dir)
    files = backend.render(lowered, board, cases)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    sources = sorted(name for name in files if name.endswith(".c") and name != "ec_host_main.c")
    assert {"ec_kernels.c", "ec_model.c", "main.c"} <= set(sources)
    flags = [*board.cflags, *extra_flags, "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(tmp_path)]
    for source in sources:
        done = subprocess.run(
            ["arm-none-eabi-gcc", *flags, "-c", str(tmp_path / source), "-o", str(tmp_path / (source + ".o"))],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{board_id} {source}: {done.stderr}"
    if board.cpu == "cortex-m0plus":  # the kernels need no divide instruction on ARMv6-M
        objdump = subprocess.run(
            ["arm-none-eabi-objdump", "-d", str(tmp_path / "ec_kernels.c.o")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert re.search(r"\b[su]div\b", objdump) is None
