"""Where the firmware templates and board files live: inside the wheel, or at the repository top.

The only module that knows; everything else takes the folder as an argument.
"""

from pathlib import Path

_PACKAGE_DATA = Path(__file__).resolve().parent / "_data"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def _data_dir(name: str) -> Path:
    installed = _PACKAGE_DATA / name
    if installed.is_dir():
        return installed
    return _REPO_ROOT / name


def templates_dir() -> Path:
    """The folder holding firmware_templates/ (jinja2)."""
    return _data_dir("firmware_templates")


def boards_dir() -> Path:
    """The folder holding boards/<id>.toml."""
    return _data_dir("boards")
