"""Board files: every shipped board loads with real sizes; bad files fail naming the file and the field."""

from __future__ import annotations

import shutil
import tomllib

import pytest

from edgeclust.codegen.board import BUILD_SYSTEMS, BoardSpec, list_boards, load_board
from edgeclust.errors import BoardError

REQUIRED_BOARDS = {"qemu_mps2_an386", "qemu_lm3s6965evb", "arduino_nano33_ble", "stm32f746g_disco", "rpi_pico",
                   "esp32s3_devkitc"}


def test_the_shipped_boards_load_with_their_real_parts_and_sizes(boards_dir):
    assert set(list_boards(boards_dir)) >= REQUIRED_BOARDS
    boards = {b: load_board(b, boards_dir) for b in list_boards(boards_dir)}
    lm3s = boards["qemu_lm3s6965evb"]
    assert (lm3s.mcu, lm3s.cpu, lm3s.fpu, lm3s.flash_bytes, lm3s.ram_bytes) == ("LM3S6965", "cortex-m3", "none",
                                                                                   256 * 1024, 64 * 1024)
    assert lm3s.qemu_machine == "lm3s6965evb" and lm3s.is_qemu and not lm3s.hard_float
    an386 = boards["qemu_mps2_an386"]
    assert an386.cpu == "cortex-m4" and an386.hard_float and an386.qemu_machine == "mps2-an386"
    assert boards["stm32f746g_disco"].mcu == "STM32F746NGH6" and boards["stm32f746g_disco"].flash_origin == 0x08000000
    assert boards["stm32f746g_disco"].ram_bytes == 320 * 1024
    assert boards["arduino_nano33_ble"].mcu == "nRF52840" and boards["arduino_nano33_ble"].ram_bytes == 256 * 1024
    assert boards["rpi_pico"].mcu == "RP2040" and boards["rpi_pico"].ram_bytes == 264 * 1024
    assert boards["esp32s3_devkitc"].mcu == "ESP32-S3"
    for board in boards.values():
        assert isinstance(board, BoardSpec) and board.build_system in BUILD_SYSTEMS
        assert board.stack_bytes + board.heap_bytes < board.ram_bytes
        assert board.flash_tool and board.flash_tool_install and board.flash_command
        assert board.to_dict()["id"] == board.id and isinstance(board.to_dict()["cflags"], list)
    # a real board is not run by QEMU
    assert not any(b.is_qemu for k, b in boards.items() if not k.startswith("qemu_"))


def test_an_unknown_board_lists_the_known_ones(boards_dir):
    with pytest.raises(BoardError) as info:
        load_board("esp8266", boards_dir)
    message = str(info.value)
    assert "unknown board 'esp8266'" in message and "qemu_mps2_an386" in message and "rpi_pico" in message
    assert info.value.exit_code == 2 and "\n" not in message


def _copy_board(tmp_path, boards_dir, edit):
    folder = tmp_path / "boards"
    folder.mkdir()
    source = (boards_dir / "qemu_lm3s6965evb.toml").read_text()
    (folder / "myboard.toml").write_text(edit(source))
    return folder


@pytest.mark.parametrize("edit, fragments", [
    (lambda s: s.replace('mcu = "LM3S6965"\n', ""), ["missing field 'mcu'"]),
    (lambda s: s.replace("flash_bytes = 262144", 'flash_bytes = "256K"'), ["'flash_bytes' must be an integer", "'256K'"]),
    (lambda s: s.replace("ram_bytes = 65536", "ram_bytes = 0"), ["'ram_bytes' must be > 0"]),
    (lambda s: s.replace('build_system = "make"', 'build_system = "scons"'), ["'build_system' must be one of", "scons"]),
    (lambda s: s.replace('cflags = ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"]', 'cflags = "-mcpu=cortex-m3"'),
     ["'cflags' must be a list of strings"]),
    (lambda s: s + "ram_size = 1\n", ["unknown field 'ram_size'"]),
    (lambda s: s.replace("stack_bytes = 4096", "stack_bytes = 70000"), ["leave no RAM"]),
    (lambda s: s + "name = [\n", ["not valid TOML"]),
])
def test_a_bad_board_file_names_the_file_and_the_field(tmp_path, boards_dir, edit, fragments):
    folder = _copy_board(tmp_path, boards_dir, edit)
    with pytest.raises(BoardError) as info:
        load_board("myboard", folder)
    message = str(info.value)
    assert "myboard.toml" in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_the_toml_files_are_flat(boards_dir):
    for path in boards_dir.glob("*.toml"):
        data = tomllib.loads(path.read_text())
        assert not any(isinstance(v, dict) for v in data.values()), path


def test_a_board_folder_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(BoardError, match="no such boards folder"):
        list_boards(tmp_path / "nope")


def test_file_names_that_are_not_board_ids_are_ignored(tmp_path, boards_dir):
    folder = tmp_path / "b"
    folder.mkdir()
    shutil.copy(boards_dir / "rpi_pico.toml", folder / "rpi_pico.toml")
    (folder / "Bad Name.toml").write_text("")
    assert list_boards(folder) == ["rpi_pico"]
