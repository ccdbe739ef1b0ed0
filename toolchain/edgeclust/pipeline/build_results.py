"""What each stage of `edgeclust build` hands to the next: small frozen results, decided once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeclust.backends.base import Cost, Lowered
from edgeclust.codegen.board import BoardSpec
from edgeclust.data import Dataset
from edgeclust.lower.weights import WeightLayout


@dataclass(frozen=True, eq=False)
class LoadedInputs:
    """The model (stripped of wrappers) and data, where they came from, and the original model's outputs."""

    model: object  # keras.Model
    data: Dataset
    model_path: Path
    data_path: Path
    model_sha256: str
    data_sha256: str
    was_wrapped: bool
    probabilities: bool  # the model ends in a softmax
    x_eval: np.ndarray  # the parity examples
    y_eval: np.ndarray
    keras_outputs: np.ndarray | None  # the original model's outputs on x_eval (None for a .tflite input)
    keras_bytes: bytes  # the original model as a reproducible .keras archive (empty for a .tflite input)
    model_format: str = "keras"  # or "tflite": a model converted elsewhere, clustering and conversion skipped
    tflite: bytes | None = None  # the .tflite input itself
    task: object = None  # pipeline.task.Task: what the model is for, its labels and its metric


@dataclass(frozen=True, eq=False)
class ClusteredModel:
    """The model to deploy (clustered and stripped, BN folded, or as loaded) and what clustering did."""

    model: object
    report: object | None  # cluster.ClusteringReport
    folded_batch_norm: bool
    outputs: np.ndarray  # on x_eval
    keras_bytes: bytes
    recovery: object | None = None  # training.Recovery, when fine-tuned to a target (--max-drop)


@dataclass(frozen=True)
class ConvertedModels:
    """The .tflite files: float32 always (unless the input was an int8 .tflite), int8 when asked."""

    float32: bytes | None
    int8: bytes | None
    per_channel: bool
    calibration_samples: int  # 0 for a float32 build

    @property
    def deployed(self) -> bytes:
        """The .tflite the board runs."""
        return self.int8 if self.int8 is not None else self.float32


@dataclass(frozen=True)
class Verification:
    """Unique values per weight tensor of the deployed .tflite, and the check against --clusters (or None)."""

    weight_stats: list
    result: object | None  # tflite.inspect.VerifyResult
    layers: dict = field(default_factory=dict)  # {weight tensor name: Keras layer}, found by content


@dataclass(frozen=True, eq=False)
class LoweredModel:
    """The model lowered by the chosen backend, with the backend itself and why it was chosen."""

    backend: object  # backends.base.Backend
    why: str
    result: Lowered  # what backend.lower() returned
    layouts: tuple[WeightLayout, ...]


@dataclass(frozen=True)
class ParityResult:
    """Accuracy per interpreter and the agreements that matter (report.json's "parity")."""

    section: dict


@dataclass(frozen=True)
class PricedModel:
    """What the board pays, and the board."""

    cost: Cost
    board: BoardSpec


@dataclass(frozen=True, eq=False)
class RenderedFiles:
    """Every file the build writes, {relative path: bytes}, report.json and timings.json aside; the firmware
    project among them as the backend rendered it (what the budget prices), and its self-test cases."""

    files: dict[str, bytes] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # report.json's "sizes" (after the budget)
    project: dict[str, bytes] = field(default_factory=dict)  # the firmware/ files, paths inside the project
    cases: tuple = ()  # backends.base.SelfTestCase, in the project's self-test


@dataclass(frozen=True, eq=False)
class BuildResult:
    """Where the build wrote its files, its report, and the results it was made of (what the demo compares
    other backends against: the deployed .tflite, its layouts, the lowering, the project and its price)."""

    out_dir: Path
    report: dict
    deployed: bytes = b""
    layouts: tuple[WeightLayout, ...] = ()
    lowered: LoweredModel | None = None
    rendered: RenderedFiles | None = None
    priced: PricedModel | None = None
