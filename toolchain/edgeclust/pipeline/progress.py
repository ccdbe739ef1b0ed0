"""Progress events: the pipeline reports what it is doing through a callback; the CLI renders them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """One step of progress. kind: "start" and "done" frame a stage, "info" is a line within it,
    "tick" is a frequent update (training steps) that a terminal may overwrite in place."""

    kind: str
    stage: int
    total: int
    title: str
    detail: str = ""
    seconds: float | None = None


ProgressCallback = Callable[[ProgressEvent], None]


def ignore_progress(event: ProgressEvent) -> None:
    """The default callback: the library itself never prints."""


class Stages:
    """Numbers the stages of a run and times each one, sending events to a callback."""

    def __init__(self, titles: list[str], on_progress: ProgressCallback | None):
        self.titles = titles
        self.on_progress = on_progress or ignore_progress
        self.timings: dict[str, float] = {}
        self._current: tuple[int, str, float] | None = None

    def start(self, title: str) -> None:
        self.finish()
        number = self.titles.index(title) + 1
        self._current = (number, title, time.perf_counter())
        self.on_progress(ProgressEvent("start", number, len(self.titles), title))

    def info(self, detail: str) -> None:
        number, title, _ = self._current or (0, "", 0.0)
        self.on_progress(ProgressEvent("info", number, len(self.titles), title, detail))

    def tick(self, detail: str) -> None:
        number, title, _ = self._current or (0, "", 0.0)
        self.on_progress(ProgressEvent("tick", number, len(self.titles), title, detail))

    def finish(self, detail: str = "") -> None:
        if self._current is None:
            return
        number, title, started = self._current
        seconds = time.perf_counter() - started
        self.timings[title] = round(seconds, 3)
        self._current = None
        self.on_progress(ProgressEvent("done", number, len(self.titles), title, detail, seconds))
