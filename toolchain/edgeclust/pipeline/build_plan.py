"""The stages of `edgeclust build`, declared once: their titles, and which of them a build's options run.

Progress counters count exactly the stages that will run, so they read [1/N] ... [N/N].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgeclust.backends import BACKEND_CHOICES

QUANTIZE_CHOICES = ("int8", "float32")
COMPRESS_CHOICES = ("none", "lut")
__all__ = [
    "BACKEND_CHOICES",
    "BUILD_STAGES",
    "COMPRESS_CHOICES",
    "QUANTIZE_CHOICES",
    "TITLES",
    "build_titles",
    "skipped_titles",
]


@dataclass(frozen=True)
class Stage:
    """One stage: a key the build refers to it by, the title progress shows, and whether options run it."""

    key: str
    title: str
    runs: Callable[[object], bool] = lambda options: True


BUILD_STAGES = (
    Stage("load", "Load model and data"),
    Stage("cluster", "Cluster and fine-tune", lambda o: _keras(o) and o.cluster.clusters > 0),
    Stage("fold", "Fold BatchNorm", lambda o: _keras(o) and o.cluster.clusters == 0 and o.cluster.fold_bn),
    Stage("convert", "Convert to .tflite", lambda o: _keras(o)),
    Stage("verify", "Inspect and verify unique values"),
    Stage("layouts", "Decide weight layouts"),
    Stage("lower", "Lower the model for its backend"),
    Stage("parity", "Check parity across interpreters"),
    Stage("render", "Generate firmware project"),
    Stage("budget", "Check the board's budget"),
    Stage("plots", "Plot", lambda o: o.plots),
    Stage("report", "Write report"),
)


def _keras(options) -> bool:
    """Whether the build starts from a Keras model (a .tflite input skips clustering and conversion)."""
    return getattr(options, "model_format", "keras") == "keras"


TITLES = {stage.key: stage.title for stage in BUILD_STAGES}


def build_titles(options) -> list[str]:
    """The titles of the stages these BuildOptions run, in order."""
    return [stage.title for stage in BUILD_STAGES if stage.runs(options)]


def skipped_titles(options) -> list[str]:
    """The titles of the stages these BuildOptions skip, in order (report.json names them)."""
    return [stage.title for stage in BUILD_STAGES if not stage.runs(options)]
