"""What every lowering function shares: the one-line refusal, a step's C name, and the checks on a tensor's
quantization and shape. A leaf of the native backend (lowering.py and the op-family modules import it, it
imports neither), so the families need no late import of lowering for these."""

from __future__ import annotations

from edgeclust.backends.native import fixed_point as fp
from edgeclust.codegen.carray import check_identifier
from edgeclust.errors import CodegenError
from edgeclust.lower.graph import GraphOp, GraphTensor

HINT = "use --backend tflm"


class Unsupported(CodegenError):
    """The model holds an op or option the native backend does not implement (one line, with the way out)."""


def refuse(what: str) -> Unsupported:
    return Unsupported(f"the native backend does not support {what}; {HINT}")


def step_name(op: GraphOp) -> str:
    """The C name of an op's step: its name and TFLite op index, as the comments cite it (`conv_2d_3`)."""
    return check_identifier(f"{op.name.lower()}_{op.index}")


def quant(t: GraphTensor, what: str):
    if t.quant is None:
        raise refuse(f"an unquantized {what} tensor ({t.name!r})")
    return t.quant


def dims4(t: GraphTensor, what: str) -> tuple[int, int, int]:
    if len(t.shape) != 4 or t.shape[0] != 1:
        raise refuse(f"{what} of shape {list(t.shape)} (NHWC with batch 1 is supported)")
    return t.shape[1], t.shape[2], t.shape[3]


def activation_range(op: GraphOp, t: GraphTensor) -> tuple[int, int]:
    q = quant(t, "output")
    return fp.activation_range(op.options.get("fused_activation_function", "NONE"), q.scale, q.zero_point)
