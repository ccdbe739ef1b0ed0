"""Rendered projects: one for every board, golden files, the model's bytes and ops, determinism, atomicity."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from edgeclust.backends.tflm import render, resolver
from edgeclust.backends.tflm.arena import tflm_arena
from edgeclust.codegen import board as board_mod
from edgeclust.codegen import carray, project
from edgeclust.errors import BoardError, CodegenError, InputError

GOLDEN = Path(__file__).parent / "golden"
COMMON = {
    "main.cc",
    "main_functions.h",
    "model_data.cc",
    "model_data.h",
    "model_settings.h",
    "op_resolver.h",
    "platform.cc",
    "platform.h",
    "self_test_data.cc",
    "self_test_data.h",
}
BUILD_FILES = {
    "make": {"Makefile", "linker.ld", "startup.c", "console.h", "smoke_test.cc"},
    "cmake-pico-sdk": {"CMakeLists.txt"},
    "cmake-esp-idf": {
        "CMakeLists.txt",
        "main/CMakeLists.txt",
        "main/idf_component.yml",
        "sdkconfig.defaults",
        "partitions.csv",
    },
    "platformio": {"platformio.ini"},
}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("board_id", sorted(board_mod.list_boards(Path(__file__).parents[2] / "boards")))
def test_a_project_for_every_board(board_id, make_project, tiny_model, tmp_path):
    out = tmp_path / board_id
    written = make_project(board_id, out)
    spec = board_mod.load_board(board_id, Path(__file__).parents[2] / "boards")
    source_dir = "main/" if spec.build_system == "cmake-esp-idf" else ""
    expected = {source_dir + name for name in COMMON} | BUILD_FILES[spec.build_system] | {"README.md", "board.json"}
    assert {p.relative_to(out).as_posix() for p in written} == expected
    assert set(_files(out)) == expected
    # the model's bytes, read back from the generated C++, are the .tflite's
    assert carray.bytes_from_c_array((out / source_dir / "model_data.cc").read_text()) == tiny_model.tflite
    # the resolver holds exactly the model's ops
    calls = re.findall(r"resolver\.(Add\w+\(\))", (out / source_dir / "op_resolver.h").read_text())
    assert sorted(calls) == sorted(resolver.resolver_calls(tiny_model.op_names, compressed=False))
    assert "MicroMutableOpResolver<kOpCount>" in (out / source_dir / "op_resolver.h").read_text()
    assert f"constexpr int kOpCount = {len(calls)};" in (out / source_dir / "op_resolver.h").read_text()
    # the project knows its board
    assert project.read_project_board(out) == spec
    readme = (out / "README.md").read_text()
    assert spec.name in readme and "{{" not in readme and "self-test: PASS" in readme


def test_the_settings_hold_the_interface_and_arena(make_project, tiny_model, tmp_path):
    make_project("qemu_mps2_an386", tmp_path / "p", arena=tflm_arena(tiny_model.arena, margin=0.5))
    settings = (tmp_path / "p" / "model_settings.h").read_text()
    tin, tout = tiny_model.interface.inputs[0], tiny_model.interface.outputs[0]
    assert f"constexpr int kInputShape[kInputDims] = {{{', '.join(map(str, tin.shape))}}};" in settings
    assert f"constexpr int kOutputElements = {int(np.prod(tout.shape))};" in settings
    assert f"constexpr int kInputZeroPoint = {tin.zero_point};" in settings
    assert "using InputType = int8_t;" in settings
    scale = float(re.search(r"kInputScale = ([0-9.e+-]+)f;", settings).group(1))
    assert np.float32(scale) == np.float32(tin.scale)
    arena = int(re.search(r"kTensorArenaSize = (\d+);", settings).group(1))
    assert arena % 16 == 0 and arena >= tiny_model.arena * 1.5 and arena < tiny_model.arena * 1.5 + 16


def test_the_self_test_holds_the_cases_inputs_and_host_outputs(make_project, tiny_model, tmp_path):
    make_project("qemu_mps2_an386", tmp_path / "p")
    text = (tmp_path / "p" / "self_test_data.cc").read_text()
    inputs, expected = text.split("kSelfTestExpected")
    for i, case in enumerate(tiny_model.cases):
        block = re.search(rf"// case {i}[^\n]*\n(.*?)\n  }}", inputs, re.S).group(1)
        assert [int(v) for v in re.findall(r"-?\d+", block)] == case.input.reshape(-1).tolist()
        block = re.search(rf"// case {i}[^\n]*\n(.*?)\n  }}", expected, re.S).group(1)
        assert [int(v) for v in re.findall(r"-?\d+", block)] == case.expected_output.reshape(-1).tolist()
    assert "constexpr int kSelfTestCases = 3;" in (tmp_path / "p" / "self_test_data.h").read_text()


def test_a_lut_compressed_model_registers_decode(make_project, tiny_model, tmp_path):
    make_project("qemu_mps2_an386", tmp_path / "p", compressed=True, arena=tflm_arena(tiny_model.arena, decoded=1000))
    assert "resolver.AddDecode()" in (tmp_path / "p" / "op_resolver.h").read_text()
    # TFLM's DECODE op needs no USE_TFLM_COMPRESSION build (measured: bit-identical on QEMU without it)
    assert "USE_TFLM_COMPRESSION" not in (tmp_path / "p" / "Makefile").read_text()
    assert "decoded weights into the tensor arena" in (tmp_path / "p" / "README.md").read_text()
    assert json.loads((tmp_path / "p" / "board.json").read_text())["compressed"] is True


def test_rendering_is_deterministic(make_project, tmp_path):
    make_project("rpi_pico", tmp_path / "a")
    make_project("rpi_pico", tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_an_unknown_op_is_refused_and_nothing_is_written(make_project, tiny_model, tmp_path):
    with pytest.raises(CodegenError, match="RFFT2D"):
        make_project("qemu_mps2_an386", tmp_path / "p", op_names=[*tiny_model.op_names, "RFFT2D"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model_data": b"not a model at all"}, "TFL3"),
        ({"arena": tflm_arena(0)}, "arena"),
        ({"arena": 4096}, "TflmArena"),
        ({"model_symbol": "int"}, "keyword"),
        ({"self_test": "bad dtype"}, "dtype"),
        ({"self_test": "bad size"}, "values"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_written(make_project, tiny_model, tmp_path, overrides, message):
    if overrides.get("self_test") == "bad dtype":
        case = tiny_model.cases[0]
        overrides = {"self_test": [render.SelfTestCase(case.input.astype(np.float32), case.expected_output)]}
    elif overrides.get("self_test") == "bad size":
        case = tiny_model.cases[0]
        overrides = {"self_test": [render.SelfTestCase(case.input.reshape(-1)[:5], case.expected_output)]}
    with pytest.raises(CodegenError, match=message):
        make_project("qemu_mps2_an386", tmp_path / "p", **overrides)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_refused_unless_forced(make_project, tmp_path):
    out = tmp_path / "p"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="--force"):
        make_project("qemu_mps2_an386", out)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    make_project("qemu_mps2_an386", out, force=True)
    assert not (out / "mine.txt").exists() and (out / "main.cc").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no staging folder left behind


def test_a_project_json_with_a_broken_board_is_refused(make_project, tmp_path):
    make_project("qemu_lm3s6965evb", tmp_path / "p")
    path = tmp_path / "p" / "board.json"
    data = json.loads(path.read_text())
    del data["board"]["ram_bytes"]
    path.write_text(json.dumps(data))
    with pytest.raises(BoardError, match="missing field 'ram_bytes'"):
        project.read_project_board(tmp_path / "p")
    with pytest.raises(InputError, match="no board.json"):
        project.read_project_board(tmp_path)


# A tiny synthetic project: every rendered file is compared with tests/codegen/golden/<board>/.
# After an intended template change: EDGECLUST_UPDATE_GOLDEN=1 pytest tests/codegen/test_project.py -k golden
def _golden_inputs():
    model = b"\x1c\x00\x00\x00TFL3" + bytes(range(20))
    interface = render.ModelInterface(
        inputs=(render.TensorSpec("serving_default_x:0", (1, 2, 2, 1), "int8", 0.00392156886, -128),),
        outputs=(render.TensorSpec("Identity:0", (1, 3), "int8", 0.00390625, -128),),
    )
    cases = [
        render.SelfTestCase(
            np.array([[-128, -1, 0, 127]], np.int8).reshape(1, 2, 2, 1), np.array([[-128, 127, -100]], np.int8)
        ),
        render.SelfTestCase(np.zeros((1, 2, 2, 1), np.int8), np.array([[127, -128, -128]], np.int8)),
    ]
    return dict(
        model_data=model,
        op_names=["FULLY_CONNECTED", "SOFTMAX", "RESHAPE"],
        interface=interface,
        self_test=cases,
        arena=tflm_arena(1000),
    )


@pytest.mark.parametrize("board_id", ["qemu_lm3s6965evb", "esp32s3_devkitc"])
def test_golden_files(board_id, boards_dir, templates_dir, tmp_path):
    board = board_mod.load_board(board_id, boards_dir)
    files = render.render_files(board=board, templates_dir=templates_dir, **_golden_inputs())
    golden = GOLDEN / board_id
    if os.environ.get("EDGECLUST_UPDATE_GOLDEN") == "1":
        for name, content in files.items():
            (golden / name).parent.mkdir(parents=True, exist_ok=True)
            (golden / name).write_bytes(content)
    expected = _files(golden)
    assert sorted(files) == sorted(expected)
    for name, content in files.items():
        assert content.decode() == expected[name].decode(), name


def test_float_values_are_kept_as_bits(boards_dir, templates_dir):
    inputs = _golden_inputs()
    inputs["interface"] = render.ModelInterface(
        inputs=(render.TensorSpec("x", (1, 2), "float32"),), outputs=(render.TensorSpec("y", (1, 2), "float32"),)
    )
    inputs["self_test"] = [
        render.SelfTestCase(np.array([[1.0, -0.1]], np.float32), np.array([[0.5, 3e-39]], np.float32))
    ]
    files = render.render_files(
        board=board_mod.load_board("qemu_mps2_an386", boards_dir), templates_dir=templates_dir, **inputs
    )
    data = files["self_test_data.cc"].decode()
    assert "0x3f800000, 0xbdcccccd," in data and "0x3f000000, 0x0020aac8," in data
    assert "using OutputStorage = uint32_t;" in files["model_settings.h"].decode()
