"""Where templates, boards and caches live: one rule for every cache (resources.cache_dir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeclust import resources


def test_templates_and_boards_are_found():
    assert (resources.templates_dir() / "board" / "make").is_dir()
    assert any(resources.boards_dir().glob("*.toml"))


@pytest.mark.parametrize("kind", ["tflm", "native-host", "kernels"])
def test_cache_dir_defaults_to_the_user_cache(kind, monkeypatch):
    monkeypatch.delenv("EDGECLUST_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert resources.cache_dir(kind) == Path.home() / ".cache" / "edgeclust" / kind


def test_xdg_cache_home_moves_it(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGECLUST_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert resources.cache_dir("tflm") == tmp_path / "edgeclust" / "tflm"


@pytest.mark.parametrize("empty", ["", "  "])
def test_edgeclust_cache_dir_wins_and_empty_means_unset(empty, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("EDGECLUST_CACHE_DIR", str(tmp_path / "mine"))
    assert resources.cache_dir("native-host") == tmp_path / "mine" / "native-host"
    monkeypatch.setenv("EDGECLUST_CACHE_DIR", empty)
    assert resources.cache_dir("native-host") == tmp_path / "xdg" / "edgeclust" / "native-host"


def test_one_module_reads_edgeclust_cache_dir():
    package = Path(resources.__file__).parent
    readers = [
        p.relative_to(package).as_posix() for p in package.rglob("*.py") if "EDGECLUST_CACHE_DIR" in p.read_text()
    ]
    assert readers == ["resources.py"]
