"""Board files: every shipped board loads with real sizes; bad files fail naming the file and the field."""

from __future__ import annotations

import shutil
import tomllib

import pytest

from edgeclust.codegen.board import BUILD_SYSTEMS, CONSOLES, BoardSpec, list_boards, load_board
from edgeclust.errors import BoardError

REQUIRED_BOARDS = {
    "qemu_mps2_an386",
    "qemu_lm3s6965evb",
    "arduino_nano33_ble",
    "stm32f746g_disco",
    "rpi_pico",
    "esp32s3_devkitc",
    "qemu_microbit",
    "qemu_mps2_an500",
    "qemu_mps3_an547",
    "qemu_netduinoplus2",
}


def test_the_shipped_boards_load_with_their_real_parts_and_sizes(boards_dir):
    assert set(list_boards(boards_dir)) >= REQUIRED_BOARDS
    boards = {b: load_board(b, boards_dir) for b in list_boards(boards_dir)}
    lm3s = boards["qemu_lm3s6965evb"]
    assert (lm3s.mcu, lm3s.cpu, lm3s.fpu, lm3s.flash_bytes, lm3s.ram_bytes) == (
        "LM3S6965",
        "cortex-m3",
        "none",
        256 * 1024,
        64 * 1024,
    )
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


def test_every_cpu_family_has_a_qemu_board_with_the_parts_real_memory(boards_dir):
    boards = {b: load_board(b, boards_dir) for b in list_boards(boards_dir)}
    microbit = boards["qemu_microbit"]
    assert (microbit.mcu, microbit.cpu, microbit.fpu, microbit.qemu_machine) == (
        "nRF51822",
        "cortex-m0",
        "none",
        "microbit",
    )
    assert (microbit.flash_bytes, microbit.ram_bytes, microbit.runtime_profile) == (256 * 1024, 16 * 1024, "cortex-m0")
    assert "-mcpu=cortex-m0" in microbit.cflags and not microbit.hard_float
    an500 = boards["qemu_mps2_an500"]
    assert (an500.cpu, an500.qemu_machine, an500.runtime_profile) == ("cortex-m7", "mps2-an500", "cortex-m7")
    an547 = boards["qemu_mps3_an547"]
    assert (an547.cpu, an547.qemu_machine, an547.runtime_profile) == ("cortex-m55", "mps3-an547", "cortex-m55")
    assert (an547.flash_origin, an547.flash_bytes) == (0x10000000, 512 * 1024)  # ITCM, Secure alias
    assert (an547.ram_origin, an547.ram_bytes) == (0x30000000, 512 * 1024)  # DTCM, Secure alias
    assert {"-mcpu=cortex-m55", "-mfloat-abi=hard"} <= set(an547.cflags)
    netduino = boards["qemu_netduinoplus2"]
    assert (netduino.mcu, netduino.cpu, netduino.qemu_machine) == ("STM32F405RG", "cortex-m4", "netduinoplus2")
    assert (netduino.flash_origin, netduino.flash_bytes) == (0x08000000, 1024 * 1024)
    assert (netduino.ram_origin, netduino.ram_bytes) == (0x20000000, 128 * 1024)
    # its console is the STM32's USART1 on QEMU's -serial stdio, not semihosting
    assert netduino.console == "uart-stm32f4" and not netduino.uses_semihosting
    assert "-serial stdio" in netduino.flash_command and "semihosting" not in netduino.flash_command
    for board_id in ("qemu_microbit", "qemu_mps2_an500", "qemu_mps3_an547"):
        board = boards[board_id]
        assert board.uses_semihosting and "-M " + board.qemu_machine in board.flash_command


def test_only_emulated_boards_print_through_semihosting_and_real_boards_name_their_serial_port(boards_dir):
    for board_id in list_boards(boards_dir):
        board = load_board(board_id, boards_dir)
        assert board.console in CONSOLES
        if not board.is_qemu:
            assert not board.uses_semihosting, board_id
            assert board.serial_port.startswith("/dev/tty") and board.serial_baud == 115200, board_id
    disco = load_board("stm32f746g_disco", boards_dir)
    assert disco.console == "uart-stm32f7" and disco.runtime_profile == "cortex-m7"
    assert "semihosting" not in disco.flash_command
    assert load_board("rpi_pico", boards_dir).runtime_profile == "cortex-m0"


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


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (lambda s: s.replace('mcu = "LM3S6965"\n', ""), ["missing field 'mcu'"]),
        (
            lambda s: s.replace("flash_bytes = 262144", 'flash_bytes = "256K"'),
            ["'flash_bytes' must be an integer", "'256K'"],
        ),
        (lambda s: s.replace("ram_bytes = 65536", "ram_bytes = 0"), ["'ram_bytes' must be > 0"]),
        (
            lambda s: s.replace('build_system = "make"', 'build_system = "scons"'),
            ["'build_system' must be one of", "scons"],
        ),
        (
            lambda s: s.replace(
                'cflags = ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"]', 'cflags = "-mcpu=cortex-m3"'
            ),
            ["'cflags' must be a list of strings"],
        ),
        (lambda s: s + "ram_size = 1\n", ["unknown field 'ram_size'"]),
        (lambda s: s.replace("stack_bytes = 4096", "stack_bytes = 70000"), ["leave no RAM"]),
        (lambda s: s + "name = [\n", ["not valid TOML"]),
        (
            lambda s: s.replace('console = "semihosting"', 'console = "uart"'),
            ["'console' must be one of", "uart-stm32f4"],
        ),
        (
            lambda s: s.replace('runtime_profile = "cortex-m3"', 'runtime_profile = "cortex-a53"'),
            ["'runtime_profile' must be one of", "cortex-m0", "cortex-m55"],
        ),
        (
            lambda s: s.replace('console = "semihosting"', 'console = "sdk-stdio"'),
            ["console 'sdk-stdio' cannot be used with build_system 'make'", "cmake-pico-sdk"],
        ),
        (lambda s: s.replace('qemu_machine = "lm3s6965evb"\n', ""), ["'semihosting' needs a debugger", "uart-stm32f4"]),
        (
            lambda s: s.replace('qemu_machine = "lm3s6965evb"\n', "").replace('"semihosting"', '"uart-stm32f4"'),
            ["needs field 'serial_port'", "/dev/ttyACM*"],
        ),
        (lambda s: s + "serial_baud = 0\n", ["'serial_baud' must be > 0"]),
    ],
)
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
