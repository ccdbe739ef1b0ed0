"""Atomic outputs: a folder appears whole or not at all, an existing one needs force."""

import pytest

from edgeclust.atomic import staged_dir, write_bytes_atomic
from edgeclust.errors import InputError


def test_staged_dir_appears_only_on_success(tmp_path):
    out = tmp_path / "out"
    with staged_dir(out, force=False) as staging:
        (staging / "a.txt").write_text("a")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_staged_dir_leaves_nothing_on_error_or_interrupt(tmp_path, error):
    out = tmp_path / "out"
    with pytest.raises(type(error)):
        with staged_dir(out, force=False) as staging:
            (staging / "half.txt").write_text("half")
            raise error
    assert list(tmp_path.iterdir()) == []


def test_existing_non_empty_needs_force_and_is_kept_on_failure(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(InputError, match="exists and is not empty.*--force"):
        with staged_dir(out, force=False):
            pass
    with pytest.raises(RuntimeError):
        with staged_dir(out, force=True) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError("fails half-way")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with staged_dir(out, force=True) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_empty_existing_folder_is_fine_and_a_file_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with staged_dir(tmp_path / "empty", force=False) as staging:
        (staging / "x").write_text("x")
    (tmp_path / "file").write_text("f")
    with pytest.raises(InputError, match="not a folder"):
        with staged_dir(tmp_path / "file", force=True):
            pass


def test_write_bytes_atomic_replaces_whole(tmp_path):
    path = write_bytes_atomic(tmp_path / "sub" / "f.bin", b"12345")
    assert path.read_bytes() == b"12345"
    write_bytes_atomic(path, b"6")
    assert path.read_bytes() == b"6" and len(list(path.parent.iterdir())) == 1
