"""Each weight tensor's own most unique values (per-layer numbers of clusters), checked in a .tflite file.

A tensor's layer comes, first, from a map {tensor name: layer} found by content when the model was built
(pipeline/tensor_layers.py; report.json's "weight_layers"); without one, from the tensor's name, which the
converter makes from the Keras scopes ("mnist_cnn_1/dense1_1/MatMul"): the deepest path component that names
a layer (the converter may add "_1"; with Keras' default names that guess can be wrong). Layers get their N
from a build's report.json or from NAME=N pairs (name or glob); tensors of other layers get the default N,
or are left unchecked when there is none (layers left unclustered).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path

from edgeclust.errors import ConfigError, InputError


@dataclass(frozen=True)
class TensorCheck:
    """One weight tensor: its layer (if known), the most values it may hold (None: unchecked), what it holds."""

    name: str
    layer: str | None
    limit: int | None
    count: int

    @property
    def passed(self) -> bool:
        return self.limit is None or self.count <= self.limit


@dataclass(frozen=True)
class LimitsResult:
    """Every weight tensor checked against its own N."""

    checks: tuple[TensorCheck, ...]
    per_channel: bool

    @property
    def failures(self) -> tuple[TensorCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        checked = [c for c in self.checks if c.limit is not None]
        scope = "per channel" if self.per_channel else "per tensor"
        if not checked:
            return "no weight tensor has an expected count; nothing verified (do the layer names match?)"
        if self.passed:
            return f"all {len(checked)} checked weight tensors hold at most their own N unique values {scope}"
        return f"{len(self.failures)} of {len(checked)} checked weight tensors hold more than their N values {scope}"


def parse_pairs(values) -> tuple[int | None, dict[str, int]]:
    """(default N, {layer name or glob: N}) from "N" and "NAME=N" strings (the CLI's repeatable options)."""
    default, by_layer = None, {}
    for value in values:
        name, _, number = value.rpartition("=")
        try:
            n = int(number)
        except ValueError:
            raise ConfigError(f"expected N or NAME=N with an integer N. Received: {value!r}") from None
        if n < 0 or n == 1:
            raise ConfigError(f"N must be 0 (leave it alone) or an integer >= 2. Received: {value!r}")
        if name:
            by_layer[name] = n
        else:
            default = n
    return default, by_layer


def counts_from_report(path: Path) -> tuple[dict[str, int], bool]:
    """({layer: N}, per_channel) of every clustered or unchanged weight in a build's report.json."""
    report = _read_report(path)
    try:
        section = report["clustering"] or {}
        entries = [*section.get("clustered", []), *section.get("unchanged", [])]
        return {e["layer"]: int(e["clusters"]) for e in entries}, any(e.get("per_channel") for e in entries)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a build's report.json with a clustering section ({exc})") from None


def layers_from_report(path: Path) -> dict[str, str]:
    """{weight tensor name: Keras layer} that a build found by content (empty for older reports)."""
    layers = _read_report(path).get("weight_layers") or {}
    return {str(k): str(v) for k, v in layers.items()} if isinstance(layers, dict) else {}


def _read_report(path: Path) -> dict:
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a build's report.json with a clustering section ({exc})") from None
    if not isinstance(report, dict):
        raise InputError(f"{path}: not a build's report.json with a clustering section")
    return report


def layer_of(tensor_name: str, patterns) -> str | None:
    """The pattern (layer name or glob) of the deepest path component of `tensor_name` that one matches;
    of several patterns, the last."""
    components = tensor_name.split("/")[:-1] or tensor_name.split("/")
    for component in reversed(components):
        candidates = {component, re.sub(r"_\d+$", "", component)}
        matched = [p for p in patterns if any(c == p or fnmatch.fnmatchcase(c, p) for c in candidates)]
        if matched:
            return matched[-1]
    return None


def check_limits(
    weight_stats, by_layer: dict[str, int], default: int | None, *, per_channel: bool, layers: dict | None = None
) -> LimitsResult:
    """Each tensor against the N of its layer (0: unchecked), or `default` (None: unchecked). `layers` maps
    tensor names to their Keras layers (found by content); other tensors' layers are read from their names."""
    checks = []
    for stats in weight_stats:
        layer = (layers or {}).get(stats.name)
        pattern = _pattern_of(layer, list(by_layer)) if layer is not None else layer_of(stats.name, list(by_layer))
        limit = by_layer[pattern] if pattern is not None else default
        count = stats.max_unique_per_channel if per_channel else stats.unique_values
        checks.append(TensorCheck(stats.name, pattern or layer, limit or None, count))
    return LimitsResult(tuple(checks), per_channel)


def _pattern_of(layer: str, patterns) -> str | None:
    """The last pattern (layer name or glob) that names `layer`."""
    matched = [p for p in patterns if layer == p or fnmatch.fnmatchcase(layer, p)]
    return matched[-1] if matched else None
