"""Boards for the CLI and the build: loaded once, from boards/ (resources.py knows where it is)."""

from __future__ import annotations

from edgeclust.codegen.board import BoardSpec


def board_spec(board: BoardSpec | str) -> BoardSpec:
    """`board` itself, or the board with that id loaded from boards/ (an unknown id lists the known ones)."""
    if isinstance(board, BoardSpec):
        return board
    from edgeclust import resources
    from edgeclust.codegen.board import load_board

    return load_board(board, resources.boards_dir())


def with_ram_budget(board: BoardSpec, ram_budget: int | None) -> BoardSpec:
    """The board with `ram_budget` bytes of RAM in place of its own (a smaller part of the family, or RAM the
    application keeps for itself): the budget check and the linker script both use it."""
    if ram_budget is None:
        return board
    if ram_budget > board.ram_bytes:
        from edgeclust.errors import ConfigError

        raise ConfigError(
            f"--ram-budget {ram_budget:,} is more than {board.id}'s RAM ({board.ram_bytes:,} bytes); "
            "give at most that, or pick a board with more RAM (see `edgeclust boards`)"
        )
    from dataclasses import replace

    return replace(board, ram_bytes=ram_budget, name=f"{board.name}, --ram-budget {ram_budget:,}")


def board_ids() -> list[str]:
    """Every board id in boards/, sorted."""
    from edgeclust import resources
    from edgeclust.codegen.board import list_boards

    return list_boards(resources.boards_dir())


def all_boards() -> list[BoardSpec]:
    """Every board in boards/, by id."""
    return [board_spec(board_id) for board_id in board_ids()]


def project_board(project_dir) -> BoardSpec:
    """The board a generated project was made for (its board.json)."""
    from edgeclust.codegen.project import read_project_board

    return read_project_board(project_dir)
