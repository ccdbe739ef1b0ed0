"""A generated project's board.json (which board, which model, what the firmware reserves), so that
`edgeclust flash DIR` works without --board; and writing a project's files atomically."""

from __future__ import annotations

import json
from pathlib import Path

from edgeclust.atomic import check_out_dir, staged_dir
from edgeclust.codegen.board import BoardSpec, board_from_dict
from edgeclust.errors import InputError

PROJECT_FILE = "board.json"


def project_json(board: BoardSpec, facts: dict) -> bytes:
    """board.json's bytes: the board's fields and the backend's `facts` (model hash, ops, arena, ...)."""
    return (
        json.dumps({"generator": "edgeclust", "board": board.to_dict(), **facts}, indent=2, sort_keys=True) + "\n"
    ).encode("utf-8")


def read_project_board(project_dir) -> BoardSpec:
    """The board a project was generated for, from its board.json."""
    path = Path(project_dir) / PROJECT_FILE
    if not path.is_file():
        raise InputError(
            f"{project_dir}: no {PROJECT_FILE}; give a folder that `edgeclust build` wrote (its firmware/ folder), "
            "or name the board with --board"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        raw = dict(data["board"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a valid project file ({exc}); regenerate the project") from None
    board_id = raw.pop("id", None)
    if not isinstance(board_id, str):
        raise InputError(f"{path}: the board has no id; regenerate the project")
    return board_from_dict(board_id, raw, source=str(path))


def write_files(out_dir, files: dict[str, bytes], *, force: bool = False) -> list[Path]:
    """Write {relative path: bytes} into `out_dir`, all or nothing; an existing non-empty folder is refused
    unless `force`. Returns the written paths, sorted."""
    out_dir = check_out_dir(out_dir, force)
    with staged_dir(out_dir, force) as staging:
        for relative, content in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    return [out_dir / relative for relative in sorted(files)]
