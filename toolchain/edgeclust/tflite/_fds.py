"""Keep C-level chatter (TensorFlow's converter, TFLM's allocator, the LUT compressor) off the console.

Those libraries write to file descriptors 1 and 2 directly, below Python's sys.stdout/sys.stderr, so the
descriptors themselves are pointed at a temporary file for the duration and restored afterwards.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile


class Captured:
    """What was written while the descriptors were redirected."""

    def __init__(self, file):
        self._file = file
        self._text: str | None = None

    def text(self) -> str:
        if self._text is None:
            self._file.flush()
            self._file.seek(0)
            return self._file.read().decode("utf-8", errors="replace")
        return self._text

    def _close(self) -> None:
        self._text = self.text()


@contextlib.contextmanager
def captured_output(fds: tuple[int, ...] = (1, 2)):
    """Redirect the given descriptors (and Python's own streams) to one temporary file; yield a Captured."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = []
        try:
            for fd in fds:
                try:
                    copy = os.dup(fd)
                except OSError:  # no such descriptor (a daemon): nothing to silence
                    continue
                saved.append((fd, copy))
                os.dup2(sink.fileno(), fd)
            captured = Captured(sink)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            if "captured" in locals():
                captured._close()
