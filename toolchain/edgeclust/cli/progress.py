"""Renders pipeline progress events on stderr: a numbered line per stage, ticks overwritten in place."""

from __future__ import annotations

import sys

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
