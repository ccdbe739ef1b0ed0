"""Where the firmware templates and board files live (inside the wheel, or at the repository top), and where
edgeclust caches what it compiles.

The only module that knows; everything else takes the folder as an argument.
"""

import os
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


def cache_dir(kind: str) -> Path:
    """The folder where edgeclust keeps compiled things of one `kind` ("tflm", "native-host", "kernels"):
    $EDGECLUST_CACHE_DIR/<kind> when that variable is set and not empty, else
    $XDG_CACHE_HOME/edgeclust/<kind> (~/.cache/edgeclust/<kind>). The only reader of EDGECLUST_CACHE_DIR."""
    root = os.environ.get("EDGECLUST_CACHE_DIR", "").strip()
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.expanduser("~/.cache")
        root = os.path.join(xdg, "edgeclust")
    return Path(root).expanduser() / kind
