"""C identifiers are checked; arrays keep every byte, are 16-byte aligned and compile for Cortex-M."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from edgeclust.codegen import carray
from edgeclust.errors import CodegenError


@pytest.mark.parametrize("name", ["g_model", "model_int8", "_x", "A1", "kModel"])
def test_valid_identifiers_pass(name):
    assert carray.check_identifier(name) == name


@pytest.mark.parametrize(
    "name, reason",
    [
        ("1model", "not a valid C identifier"),
        ("model-data", "not a valid C identifier"),
        ("", "not a valid C identifier"),
        ("mödel", "not a valid C identifier"),
        ("int", "keyword"),
        ("class", "keyword"),
        ("alignas", "keyword"),
        ("_Bool", "keyword"),
        ("__model", "reserved"),
        ("_Model", "reserved"),
    ],
)
def test_invalid_identifiers_are_refused_with_the_reason(name, reason):
    with pytest.raises(CodegenError, match=reason):
        carray.check_identifier(name)


@pytest.mark.parametrize("size", [0, 1, 11, 12, 13, 1000])
def test_bytes_round_trip_exactly(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    text = carray.c_array("g_model", data)
    assert text.startswith("alignas(16) const unsigned char g_model[] = {")
    assert f"const unsigned int g_model_len = {size};" in text
    assert carray.bytes_from_c_array(text) == data
    assert carray.bytes_from_c_array(text, "g_model") == data


def test_a_bad_symbol_is_refused_before_anything_is_formatted():
    with pytest.raises(CodegenError, match="keyword"):
        carray.c_array("float", b"abc")
    with pytest.raises(CodegenError, match="power of two"):
        carray.c_array("g_model", b"abc", alignment=12)


def test_c_strings_escape_quotes_backslashes_and_non_ascii():
    assert carray.c_string('say "hi"\\') == r'"say \"hi\"\\"'
    assert carray.c_string("é?") == r'"\303\251\077"'


def test_generated_model_data_compiles_with_arm_none_eabi_gpp(tiny_model, make_project, tmp_path, cross_tools):
    make_project("qemu_lm3s6965evb", tmp_path / "p")
    cc = tmp_path / "p" / "model_data.cc"
    obj = tmp_path / "model_data.o"
    done = subprocess.run(
        [
            "arm-none-eabi-g++",
            "-mcpu=cortex-m3",
            "-mthumb",
            "-std=c++17",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-c",
            str(cc),
            "-o",
            str(obj),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    symbols = subprocess.run(["arm-none-eabi-nm", "-S", str(obj)], capture_output=True, text=True, check=True).stdout
    model_line = next(line for line in symbols.splitlines() if line.endswith(" g_model"))
    address, size = (int(v, 16) for v in model_line.split()[:2])
    assert size == len(tiny_model.tflite)
    assert " R g_model_len" in symbols  # external linkage, read-only
    sections = subprocess.run(["arm-none-eabi-objdump", "-h", str(obj)], capture_output=True, text=True).stdout
    rodata = next(line for line in sections.splitlines() if ".rodata" in line)
    assert rodata.split()[-1] in ("2**4", "2**5", "2**6")  # the section keeps alignas(16)
