"""Render folders of firmware_templates/ into {relative path: bytes}: jinja2 for *.j2, plain files copied.

Backend-neutral: a backend names its runtime's folders; `board_groups` names the board's (console
interface, build files, startup code, linker script). Nothing is written to disk here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgeclust.codegen.board import BoardSpec
from edgeclust.errors import CodegenError

if TYPE_CHECKING:  # jinja2 is imported when a template is rendered, so `edgeclust --help` stays light
    import jinja2

# where sources go, per build system (ESP-IDF wants them in its `main` component); the top otherwise
_SOURCE_DIR = {"cmake-esp-idf": "main"}


def source_dir(board: BoardSpec) -> str:
    """The project folder the board's build system compiles sources from ("" for the project's top)."""
    return _SOURCE_DIR.get(board.build_system, "")


def board_groups(board: BoardSpec) -> list[tuple[str, str]]:
    """(template folder, destination folder) for the board's part of a project: the console interface goes
    with the sources, the build files, startup code and linker script to the top."""
    return [("board/common", source_dir(board)), (f"board/{board.build_system}", "")]


def render_template(templates_dir, name: str, context: dict) -> bytes:
    """One template (a path under templates_dir, e.g. "board/make/startup.c.j2") rendered with `context`."""
    return _render(_environment(Path(templates_dir)), name, context)


def render_groups(templates_dir, groups, context: dict) -> dict[str, bytes]:
    """Every file of every (folder, destination) group, rendered with `context`; StrictUndefined, so a
    template that names a missing value fails with CodegenError instead of writing an empty string."""
    templates_dir = Path(templates_dir)
    env = _environment(templates_dir)
    files: dict[str, bytes] = {}
    for group, target in groups:
        folder = templates_dir / group
        if not folder.is_dir():
            raise CodegenError(f"{templates_dir}: no templates for {group!r}")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder).as_posix()
            name = relative.removesuffix(".j2")
            destination = f"{target}/{name}" if target else name
            files[destination] = (
                _render(env, f"{group}/{relative}", context) if relative.endswith(".j2") else path.read_bytes()
            )
    return files


def _environment(templates_dir: Path) -> jinja2.Environment:
    """The one jinja2 set-up for firmware templates: strict about missing values, files kept as written."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _render(env: jinja2.Environment, name: str, context: dict) -> bytes:
    """One template rendered to UTF-8 bytes; a template error names the template."""
    import jinja2

    try:
        return env.get_template(name).render(context).encode("utf-8")
    except jinja2.TemplateError as exc:
        raise CodegenError(f"template {name}: {exc}") from None
