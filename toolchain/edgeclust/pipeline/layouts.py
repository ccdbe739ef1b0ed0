"""Weight layouts, decided once: for every weight tensor of the deployed .tflite, the fewest index bits per
tensor or per channel along its output-channel axis (lower/weights.py), which every backend then packs from.

`weight_layouts` is the one rule: the build, the scripts and the tests all call it; a backend given a layout it
cannot honour raises CodegenError naming the tensor rather than dropping it."""

from __future__ import annotations

from edgeclust.lower.weights import WeightLayout, smallest_layout
from edgeclust.tflite.inspect import find_weights


def weight_layouts(tflite: bytes) -> tuple[WeightLayout, ...]:
    """The layout of each stored weight tensor with at most 256 distinct values (per tensor or per channel)."""
    layouts = []
    for weight in find_weights(tflite):
        if weight.stored_as != "raw":
            continue  # already compressed, or feeding a DEQUANTIZE: not ours to re-pack
        layout = smallest_layout(
            weight.values,
            channel_axis=weight.channel_axis,
            subgraph=weight.subgraph,
            tensor=weight.tensor,
            name=weight.name,
            consumer=weight.consumer,
        )
        if layout is not None:
            layouts.append(layout)
    return tuple(layouts)


def layout_line(layouts: tuple[WeightLayout, ...], weights: int) -> str:
    """One line for the progress: how many tensors got a layout and their bit widths."""
    if not layouts:
        return f"no weight tensor holds 256 or fewer distinct values (of {weights})"
    bits = sorted({layout.bits for layout in layouts})
    per_channel = sum(layout.per_channel for layout in layouts)
    return (
        f"{len(layouts)} of {weights} weight tensors can be packed as {'/'.join(map(str, bits))}-bit indices "
        f"({per_channel} per channel): indices + tables {sum(x.packed_index_bytes + x.table_bytes for x in layouts):,} "
        "bytes, where the backend packs them"
    )


def stored_line(backend: str, packed: tuple[WeightLayout, ...], layouts: tuple[WeightLayout, ...]) -> str:
    """What the backend actually stores on flash: which weight tensors as packed indices, which as they are."""
    raw = len(layouts) - len(packed)
    if not packed:
        return f"{backend} stores every weight tensor as it is in the .tflite (int8): no packed indices"
    bits = "/".join(map(str, sorted({layout.bits for layout in packed})))
    size = sum(x.packed_index_bytes + x.table_bytes for x in packed)
    rest = f"; {raw} as they are in the .tflite" if raw else ""
    return f"{backend} stores {len(packed)} weight tensor(s) as {bits}-bit indices + tables ({size:,} bytes){rest}"
