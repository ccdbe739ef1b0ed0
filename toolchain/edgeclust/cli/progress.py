"""Renders pipeline progress events on stderr: a numbered line per stage, ticks overwritten in place; and
Python warnings raised during a command (edgeclust's, Keras') as edgeclust's own "note:" lines."""

from __future__ import annotations

import contextlib
import sys
import warnings

import click

from edgeclust.pipeline.progress import ProgressEvent


class ProgressPrinter:
    """A callable for the pipeline's `on_progress`; quiet=True prints nothing."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._tick_shown = False

    def _clear_tick(self):
        if self._tick_shown:
            click.echo("\r\033[K", nl=False, file=self.stream)
            self._tick_shown = False

    def __call__(self, event: ProgressEvent) -> None:
        if self.quiet:
            return
        if event.kind == "tick":
            if self.interactive:
                self._clear_tick()
                click.echo(f"      {event.detail}", nl=False, file=self.stream)
                self._tick_shown = True
            return
        self._clear_tick()
        if event.kind == "start":
            click.echo(f"[{event.stage}/{event.total}] {event.title} ...", file=self.stream)
        elif event.kind == "info":
            click.echo(f"      {event.detail}", file=self.stream)
        elif event.kind == "done":
            tail = f": {event.detail}" if event.detail else ""
            click.echo(f"      done in {event.seconds:.1f} s{tail}", file=self.stream)


@contextlib.contextmanager
def warnings_as_notes(stream=None):
    """Within the block, each distinct warning is one line "note: MESSAGE" on stderr (its first line; never the
    source line that raised it); repeats of a message are counted and said once at the end."""
    seen: dict[str, int] = {}

    def show(message, category, filename, lineno, file=None, line=None):
        text = (str(message).strip().splitlines() or [category.__name__])[0]
        seen[text] = seen.get(text, 0) + 1
        if seen[text] == 1:
            click.echo(f"note: {text}", file=stream or sys.stderr)

    saved = warnings.showwarning
    with warnings.catch_warnings():
        warnings.filterwarnings("always", category=UserWarning)  # counted here, said once
        warnings.showwarning = show
        try:
            yield
        finally:
            warnings.showwarning = saved
            repeated = {text: n for text, n in seen.items() if n > 1}
            for text, n in repeated.items():
                click.echo(f"note: (said {n} times) {text}", file=stream or sys.stderr)
