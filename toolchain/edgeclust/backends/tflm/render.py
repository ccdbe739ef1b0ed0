"""The TFLite Micro firmware project's files for a board, from firmware_templates/runtime/tflm/ and the
board's templates, as {relative path: bytes}, deterministically (the pipeline writes them).

The project holds the model as a C array, the model's settings, an op resolver with exactly its ops, a boot
self-test (inputs with the outputs the TFLM host interpreter gave), the board's build files and a
board.json that lets `edgeclust flash DIR` work without --board. jinja2 + numpy + stdlib only.
"""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

from edgeclust.backends.base import ModelInterface, SelfTestCase, TensorSpec
from edgeclust.backends.tflm import resolver
from edgeclust.backends.tflm.arena import TflmArena
from edgeclust.backends.tflm.cmsis import CmsisNnArena
from edgeclust.codegen import carray
from edgeclust.codegen.board import BoardSpec
from edgeclust.codegen.project import PROJECT_FILE, project_json
from edgeclust.codegen.templates import board_groups, render_groups, source_dir
from edgeclust.errors import CodegenError

# Float outputs: newlib's expf() on FPU cores (built with fused multiply-add) differs from the host's by 1-2 ULP.
FLOAT_ULP_TOLERANCE = 4
# numpy dtype -> (C type of the tensor, C type the self-test arrays store it as)
_CTYPES = {
    "int8": ("int8_t", "int8_t"),
    "uint8": ("uint8_t", "uint8_t"),
    "int16": ("int16_t", "int16_t"),
    "int32": ("int32_t", "int32_t"),
    "float32": ("float", "uint32_t"),  # float values kept as IEEE-754 bits: the check is bit for bit
    "bool": ("bool", "uint8_t"),
}
__all__ = ["FLOAT_ULP_TOLERANCE", "ModelInterface", "SelfTestCase", "TensorSpec", "render_files"]


def render_files(
    *,
    model_data: bytes,
    op_names,
    board: BoardSpec,
    interface: ModelInterface,
    self_test: list[SelfTestCase],
    arena: TflmArena,
    templates_dir,
    compressed: bool = False,
    model_symbol: str = "g_model",
    cmsis: CmsisNnArena | None = None,
) -> dict[str, bytes]:
    """The project's files as {relative path: bytes}, sorted by path.

    `arena` is the tensor arena lower() decided (arena.tflm_arena): the firmware reserves `arena.reserved`, and
    `cmsis.extra` more where it is built with CMSIS-NN (cmsis.cmsis_nn_arena for the board's core).
    """
    model_data = bytes(model_data)
    _check_model(model_data)
    carray.check_identifier(model_symbol)
    if not isinstance(arena, TflmArena) or arena.reserved <= 0:
        raise CodegenError(f"`arena` must be a TflmArena of more than 0 bytes (arena.tflm_arena). Received: {arena!r}")
    op_names = sorted(set(op_names))
    calls = resolver.resolver_calls(op_names, compressed=compressed)
    if len(interface.inputs) != 1 or len(interface.outputs) != 1:
        raise CodegenError(
            f"the firmware templates support models with one input and one output; this one has "
            f"{len(interface.inputs)} and {len(interface.outputs)}"
        )
    cases = [_case_context(i, case, interface) for i, case in enumerate(self_test or [])]
    context = {
        "board": board,
        "model_symbol": model_symbol,
        "model_bytes": len(model_data),
        "model_sha256": hashlib.sha256(model_data).hexdigest(),
        "model_crc32": zlib.crc32(model_data),
        "model_array": carray.c_array(model_symbol, model_data).rstrip("\n"),
        "op_names": op_names,
        "op_count": len(calls),
        "resolver_calls": calls,
        "compressed": compressed,
        "arena_measured": arena.measured,
        "arena_margin_percent": f"{arena.margin * 100:.6g}",
        "arena_size": arena.reserved,
        "cmsis": cmsis or CmsisNnArena("plain", 0, 0),
        "float_ulp_tolerance": FLOAT_ULP_TOLERANCE,
        "decoded_bytes": arena.decoded,
        "input": _tensor_context(interface.inputs[0], 0),
        "output": _tensor_context(interface.outputs[0], 0),
        "cases": cases,
        "source_dir": source_dir(board),
    }
    files = render_groups(templates_dir, _groups(board), context)
    files[PROJECT_FILE] = project_json(board, _project_facts(context, len(cases)))
    return dict(sorted(files.items()))


def _groups(board: BoardSpec) -> list[tuple[str, str]]:
    """The TFLM runtime's sources, its README, the board's files, and (make boards) the smoke firmware."""
    groups = [("runtime/tflm/src", source_dir(board)), ("runtime/tflm/project", ""), *board_groups(board)]
    if board.build_system == "make":
        groups.append(("smoke", ""))
    return groups


def _project_facts(context: dict, n_cases: int) -> dict:
    """What board.json records about the TFLM project besides the board."""
    return {
        "backend": "tflm",
        "model": {
            "bytes": context["model_bytes"],
            "sha256": context["model_sha256"],
            "crc32": f"0x{context['model_crc32']:08x}",
            "symbol": context["model_symbol"],
        },
        "ops": context["op_names"],
        "compressed": context["compressed"],
        "tensor_arena_bytes": context["arena_size"],
        "tensor_arena_measured_bytes": context["arena_measured"],
        "self_test_cases": n_cases,
        "source_dir": context["source_dir"],
    }


def _check_model(data: bytes) -> None:
    """Refuse bytes that are not a .tflite flatbuffer before anything is formatted."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise CodegenError(
            "model_data is not a .tflite flatbuffer (no 'TFL3' identifier at offset 4); "
            "pass the converted model's bytes"
        )


def _tensor_context(spec: TensorSpec, index: int) -> dict:
    """What the templates need to know about one input or output tensor (C types, sizes, quantization)."""
    dtype = str(np.dtype(spec.dtype)) if spec.dtype in _CTYPES else spec.dtype
    if dtype not in _CTYPES:
        raise CodegenError(
            f"tensor {spec.name!r} has dtype {spec.dtype}; the firmware templates handle {', '.join(_CTYPES)}"
        )
    shape = [int(d) for d in spec.shape]
    if not shape or any(d <= 0 for d in shape):
        raise CodegenError(f"tensor {spec.name!r} has shape {tuple(spec.shape)}; the firmware needs fixed sizes > 0")
    ctype, storage = _CTYPES[dtype]
    elements = int(np.prod(shape))
    quantized = spec.scale is not None and np.dtype(dtype).kind in "iu"
    return {
        "index": index,
        "name_c": "".join(ch if ch.isprintable() and ch != '"' else "?" for ch in spec.name),
        "dtype": dtype,
        "shape": shape,
        "elements": elements,
        "nbytes": elements * np.dtype(dtype).itemsize,
        "ctype": ctype,
        "storage": storage,
        "is_float": dtype == "float32",
        "quantized": quantized,
        "scale_c": carray.c_float(spec.scale) if quantized else None,
        "zero_point": int(spec.zero_point or 0),
    }


def _case_context(i: int, case: SelfTestCase, interface: ModelInterface) -> dict:
    """One self-test case as C initialiser lines, checked against the model's tensors."""
    x = _case_array(f"self-test case {i} input", case.input, interface.inputs[0])
    y = _case_array(f"self-test case {i} expected output", case.expected_output, interface.outputs[0])
    return {"input": _values(x), "expected": _values(y)}


def _case_array(what: str, value, spec: TensorSpec) -> np.ndarray:
    """A case's array, flat, refused when its dtype or size is not the tensor's."""
    array = np.asarray(value)
    expected = int(np.prod(spec.shape))
    if array.dtype != np.dtype(spec.dtype):
        raise CodegenError(f"{what} has dtype {array.dtype}; the model's tensor is {spec.dtype} (quantize it first)")
    if array.size != expected:
        raise CodegenError(f"{what} has {array.size} values; the model's tensor {tuple(spec.shape)} holds {expected}")
    return array.reshape(-1)


def _values(array: np.ndarray, per_line: int = 16) -> str:
    """C initialiser lines; float32 values as their IEEE-754 bits (hex), so the check is bit for bit."""
    if array.dtype == np.float32:
        items = [f"0x{v:08x}" for v in array.view(np.uint32).tolist()]
        lines = (", ".join(items[k : k + per_line]) for k in range(0, len(items), per_line))
        return "\n".join(f"    {line}," for line in lines)
    return carray.c_values(array, per_line=per_line)
