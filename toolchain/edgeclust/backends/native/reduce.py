"""REDUCE_MAX for the native backend (Keras GlobalMaxPooling2D / GlobalMaxPooling1D): record, lowering and C
emitter in one module; the kernel is `ec_reduce_max` in firmware_templates/runtime/native/ec_reduce.c.

TFLM (reduce_common.cc EvalMaxHelper, int8) requires the input's and output's scale and zero point to be
equal and takes the plain maximum of the raw int8 values over the reduced axes (ReduceGeneric, initial value
-128): no requantization. The lowering resolves the axes as TFLM's ResolveAxis does (negative axes count
from the end, repeats ignored) and describes the input as a walk over its kept dims, then its reduced dims
(counts and element strides, unit dims dropped and neighbours merged), so that any axes of a tensor up to 6-D
run through one kernel. lowering.py registers LOWERINGS, OPS and INPUTS; emit_c.py registers EMITTERS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeclust.backends.native.records import Step
from edgeclust.backends.native.refusals import quant, refuse, step_name
from edgeclust.errors import CodegenError

RANK = 6  # EC_REDUCE_RANK in ec_reduce.h
OPS = ("REDUCE_MAX",)
INPUTS = {"REDUCE_MAX": 2}  # the data and the axes, as TFLM's PrepareSimple requires


@dataclass(frozen=True, eq=False)
class ReduceMaxStep(Step):
    """REDUCE_MAX: the input walked as kept dims (outer, `kept_rank` of them, one output each in order)
    then reduced dims; `count` and `stride` (in elements) per walked dim."""

    KERNEL: ClassVar[str] = "ec_reduce_max"
    OP: ClassVar[str] = "REDUCE_MAX"

    kept_rank: int
    count: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def outputs_count(self) -> int:
        return int(np.prod(self.count[: self.kept_rank], dtype=np.int64))

    @property
    def reduced_count(self) -> int:
        return int(np.prod(self.count[self.kept_rank :], dtype=np.int64))


def resolve_axes(axes: np.ndarray, rank: int) -> list[int] | None:
    """TFLM's ResolveAxis: each axis in -rank..rank-1, negative ones from the end, repeats once; None if out
    of range."""
    out: list[int] = []
    for a in (int(v) for v in axes):
        if not -rank <= a < rank:
            return None
        a = a % rank if rank else a
        if a not in out:
            out.append(a)
    return sorted(out)


def walk(shape: tuple[int, ...], axes: list[int]) -> tuple[int, list[int], list[int]]:
    """(kept_rank, counts, strides): the row-major tensor walked as its kept dims then its reduced dims,
    unit dims dropped and neighbours in the same group that walk memory as one dim merged."""
    strides = [int(np.prod(shape[d + 1 :], dtype=np.int64)) for d in range(len(shape))]
    kept = [d for d in range(len(shape)) if d not in axes]
    groups: list[list[tuple[int, int]]] = []
    for dims in (kept, axes):
        merged: list[tuple[int, int]] = []  # (count, stride)
        for d in dims:
            if shape[d] == 1:
                continue
            if merged and merged[-1][1] == strides[d] * shape[d]:
                merged[-1] = (merged[-1][0] * shape[d], strides[d])
            else:
                merged.append((shape[d], strides[d]))
        groups.append(merged)
    dims = groups[0] + groups[1]
    return len(groups[0]), [c for c, _ in dims], [s for _, s in dims]


def lower_reduce_max(b, op, _pool) -> ReduceMaxStep:
    """REDUCE_MAX int8 (TFLM reduce_common.cc PrepareMinMaxHelper / EvalMaxHelper)."""

    x, y = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    axis_t = b.tensor(op.inputs[1])
    if axis_t.data is None or axis_t.dtype != "int32":
        raise refuse(f"REDUCE_MAX (op {op.index}) over {axis_t.dtype} axes computed at run time")
    axes = resolve_axes(np.asarray(axis_t.data).reshape(-1), len(x.shape))
    if axes is None:
        raise CodegenError(
            f"REDUCE_MAX (op {op.index}) over axes {np.asarray(axis_t.data).reshape(-1).tolist()} of a "
            f"{len(x.shape)}-D tensor; the model is inconsistent: convert it again"
        )
    xq, yq = quant(x, "input"), quant(y, "output")
    if np.float32(xq.scale) != np.float32(yq.scale) or xq.zero_point != yq.zero_point:
        raise refuse(
            f"REDUCE_MAX (op {op.index}) whose input and output differ in scale or zero point (TFLM refuses it too)"
        )
    kept_rank, count, stride = walk(tuple(x.shape), axes)
    if len(count) > RANK:
        raise refuse(f"REDUCE_MAX (op {op.index}) over a {len(count)}-D walk")
    kept_size = int(np.prod([x.shape[d] for d in range(len(x.shape)) if d not in axes], dtype=np.int64))
    if y.size != kept_size:
        raise CodegenError(
            f"REDUCE_MAX (op {op.index}) output {list(y.shape)} for input {list(x.shape)} over axes {axes}; "
            "convert the model again"
        )
    name = step_name(op)
    return ReduceMaxStep(
        name=name,
        op_index=op.index,
        inputs=b.reads(op.inputs[0]),
        outputs=b.writes(op.outputs[0], name),
        kept_rank=kept_rank,
        count=tuple(count),
        stride=tuple(stride),
    )


LOWERINGS = {"REDUCE_MAX": lower_reduce_max}


def _list(values) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}" if values else "{0}"


def emit_reduce_max(step: ReduceMaxStep):
    fields = [
        ("rank", str(len(step.count))),
        ("kept_rank", str(step.kept_rank)),
        ("outputs", str(step.outputs_count)),
        ("count", _list(step.count)),
        ("stride", _list(step.stride)),
    ]
    return [("ec_reduce_max_params", step.name, fields)]


EMITTERS = {ReduceMaxStep: emit_reduce_max}
