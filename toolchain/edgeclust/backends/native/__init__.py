"""The native C backend: int8 kernels with packed weights decoded in their loops, no interpreter, no TFLM.

lower() reads the .tflite into a graph and turns it into typed step records (lowering.py: every kernel
parameter as TFLM's Prepare computes it, weights packed from the pipeline's WeightLayouts, the arena planned),
then C (emit_c.py); run_host() runs the generated C built with
the host's gcc; price() links the firmware with arm-none-eabi-gcc (or uses the measured size table);
render() writes the C99 project for the board.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from edgeclust.backends.base import FlashItem, Lowered, ModelInterface, TensorSpec
from edgeclust.backends.native import emit_c, host
from edgeclust.backends.native.from_tflite import graph_from_tflite
from edgeclust.backends.native.lowering import Unsupported, lower_graph, unsupported_reason
from edgeclust.backends.native.program import Program
from edgeclust.errors import CodegenError, DataError, ModelFormatError
from edgeclust.lower.weights import WeightLayout
from edgeclust.tflite.flatbuffer import read_model

__all__ = ["NativeBackend", "Program", "Unsupported"]


class NativeBackend:
    """`--backend native`: a self-contained C99 project generated for one model."""

    name = "native"

    def __init__(self, *, sanitize: bool = False):
        self.sanitize = sanitize  # host build with -fsanitize=address,undefined (the fuzz tests)

    def unsupported(self, tflite: bytes) -> str | None:
        """Why the native backend cannot run the model: an op or option outside its set (checked by lowering
        it without packing, which is cheap), one line; None when it can."""
        try:
            graph = graph_from_tflite(tflite)
            reason = unsupported_reason(graph)
            if reason is None:
                lower_graph(graph, ())
        except (ModelFormatError, CodegenError) as exc:
            return str(exc)
        return reason

    def lower(self, tflite: bytes, layouts: Sequence[WeightLayout]) -> Lowered:
        model = read_model(tflite)
        graph = graph_from_tflite(model)
        try:
            program = lower_graph(graph, layouts)
        except (ValueError, OverflowError) as exc:  # numbers from a hostile file that numpy refuses
            raise CodegenError(f"the model cannot be lowered: {exc}; convert it again") from None
        files = {
            "ec_model.c": emit_c.model_source(program).encode(),
            "ec_model.h": emit_c.model_header(program).encode(),
        }
        interface = ModelInterface(
            tuple(_spec(graph.tensors[i]) for i in graph.inputs), tuple(_spec(graph.tensors[i]) for i in graph.outputs)
        )
        flash = tuple(FlashItem(kind, size) for kind, size in sorted(program.flash_parts().items()))
        notes = tuple(
            f"{p.name or p.tensor}: {p.bits}-bit indices, {'per channel' if p.per_channel else 'per tensor'}"
            for p in program.packed
            if p.table_bytes
        ) + tuple(f"{p.name or p.tensor}: kept as int8, {p.fallback}" for p in program.packed if p.fallback)
        notes += (plan_line(program),) if program.in_place else ()
        used = {p.tensor for p in program.packed if p.table_bytes}
        extra = {"summary": _summary(program)} if "summary" in _field_names(Lowered) else {}
        return Lowered(
            backend=self.name,
            model=bytes(tflite),
            interface=interface,
            op_names=program.op_names,
            arena_bytes=program.arena_bytes,
            flash=flash,
            packed=tuple(layout for layout in layouts if layout.tensor in used),
            arena_lower_bound=program.arena_lower_bound,
            notes=notes,
            details=NativeDetails(program, files),
            **extra,
        )

    def run_host(self, lowered: Lowered, x: np.ndarray) -> np.ndarray:
        details: NativeDetails = lowered.details
        spec_in, spec_out = lowered.interface.inputs[0], lowered.interface.outputs[0]
        x = np.asarray(x)
        if x.dtype != np.dtype(spec_in.dtype) or x.shape[1:] != tuple(spec_in.shape[1:]):
            raise DataError(
                f"the native host build takes {spec_in.dtype} examples of shape "
                f"{tuple(spec_in.shape[1:])}; "
                f"got {x.dtype} {x.shape}"
            )
        binary = host.build_host(details.files, sanitize=self.sanitize)
        return host.run_host_binary(binary, x, tuple(spec_out.shape[1:]), spec_out.dtype)

    def price(self, lowered: Lowered, board, files=None):
        from edgeclust.backends.native.price import price

        return price(lowered, board, files)

    def render(self, lowered: Lowered, board, cases) -> dict[str, bytes]:
        from edgeclust.backends.native.project import render_project

        return render_project(lowered, board, cases)


class NativeDetails:
    """What only this backend reads from a Lowered: the program and the generated model sources."""

    def __init__(self, program: Program, files: dict[str, bytes]):
        self.program = program
        self.files = files


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _summary(program: Program) -> dict:
    """Backend facts for report.json: the arena against its bound, and how each weight tensor was stored."""
    return {
        "arena_bytes": program.arena_bytes,
        "arena_lower_bound": program.arena_lower_bound,  # every tensor whole: the whole-tensor bound
        "in_place": [choice.facts() for choice in program.in_place],
        "kernel_calls": len(program.steps),
        "flash_parts": program.flash_parts(),
        "weights": [
            {
                "tensor": p.name,
                "op": p.op,
                "bits": p.bits,
                "per_channel": p.per_channel,
                "index_bytes": p.index_bytes,
                "table_bytes": p.table_bytes,
                "layout_not_packed": p.fallback,
            }
            for p in program.packed
        ],
    }


def plan_line(program: Program) -> str:
    """The arena against the whole-tensor bound, and what each convolution run in place saved."""
    bound = program.arena_lower_bound
    ratio = f" ({program.arena_bytes / bound:.2f}x)" if bound else ""
    tricks = ", ".join(f"{c.step} ({c.kind}, {c.saved_bytes:,} bytes saved)" for c in program.in_place)
    return f"arena {program.arena_bytes:,} bytes, whole-tensor bound {bound:,}{ratio}; in place: {tricks}"


def _spec(t) -> TensorSpec:
    q = t.quant
    return TensorSpec(t.name, tuple(t.shape), t.dtype, q.scale if q else None, q.zero_point if q else None)
