"""Per-layer numbers of clusters: a mapping of layer names or globs to N, resolved against a model's layers."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from edgeclust.errors import ConfigError

#: N that leaves a layer unclustered.
UNCLUSTERED = 0


def check_count(n, where: str) -> int:
    """n if it is a valid number of clusters for one layer (0 = unclustered, or an integer >= 2)."""
    if isinstance(n, bool) or not isinstance(n, int) or (n != UNCLUSTERED and n < 2):
        raise ConfigError(
            f"The number of clusters for {where} must be 0 (leave it unclustered) or an integer >= 2. Received: {n!r}"
        )
    return n


def resolve_layer_counts(layer_names: list[str], default: int, layer_clusters: Mapping[str, int] | None) -> dict:
    """{layer name: N} for every name in layer_names: `default`, overridden by the entries of layer_clusters
    (a layer name or an fnmatch glob -> N) in their order, so that a later entry wins over an earlier one.

    Raises ConfigError for an entry that matches no layer (a typo would otherwise be ignored silently)."""
    counts = {name: default for name in layer_names}
    for pattern, n in (layer_clusters or {}).items():
        check_count(n, f"layer {pattern!r}")
        matched = [name for name in layer_names if name == pattern or fnmatch.fnmatchcase(name, pattern)]
        if not matched:
            shown = ", ".join(layer_names[:20]) + (", ..." if len(layer_names) > 20 else "")
            raise ConfigError(f"{pattern!r} matches no clusterable layer; the model's clusterable layers are: {shown}")
        for name in matched:
            counts[name] = n
    return counts
