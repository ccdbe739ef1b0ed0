"""Render a TFLite Micro firmware project for a board from firmware_templates/, atomically and deterministically.

The project holds the model as a C array, the model's settings, an op resolver with exactly its ops, a boot
self-test (inputs with the outputs the TFLM host interpreter gave), the board's build files and a
board.json that lets `edgeclust flash DIR` work without --board. jinja2 + numpy + stdlib only.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from edgeclust.atomic import check_out_dir, staged_dir
from edgeclust.codegen import carray, resolver
from edgeclust.codegen.board import BoardSpec
from edgeclust.errors import CodegenError

PROJECT_FILE = "board.json"
ARENA_ALIGNMENT = 16
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
# where the common sources go, per build system (ESP-IDF wants them in its `main` component)
_SOURCE_DIR = {"cmake-esp-idf": "main"}


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: shape with the batch dimension, numpy dtype name, quantization (or None)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None


@dataclass(frozen=True)
class ModelInterface:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...] | list[str] | None = None


@dataclass(frozen=True, eq=False)
class SelfTestCase:
    """One boot self-test case, already in the model's input and output dtypes (e.g. int8)."""

    input: np.ndarray
    expected_output: np.ndarray


def arena_size(arena_bytes: int, arena_margin: float, decoded_bytes: int = 0) -> int:
    """The firmware's tensor arena: the measured bytes plus the margin (decoded LUT weights get none), 16-aligned."""
    plain = max(arena_bytes - decoded_bytes, 0)
    return _align(math.ceil(plain * (1 + arena_margin))) + _align(decoded_bytes)


def render_project(*, model_data: bytes, op_names, board: BoardSpec, interface: ModelInterface, self_test,
                   arena_bytes: int, out_dir, templates_dir, compressed: bool = False, arena_margin: float = 0.25,
                   force: bool = False, decoded_bytes: int = 0, model_symbol: str = "g_model") -> list[Path]:
    """Write the project for `board` into `out_dir` (all files or none) and return the written paths, sorted.

    `arena_bytes` is the arena TFLM's host interpreter needed (decoded LUT weights included); the firmware's
    arena adds `arena_margin` to it. An existing non-empty `out_dir` is refused unless `force`.
    """
    files = render_files(model_data=model_data, op_names=op_names, board=board, interface=interface,
                         self_test=self_test, arena_bytes=arena_bytes, templates_dir=templates_dir,
                         compressed=compressed, arena_margin=arena_margin, decoded_bytes=decoded_bytes,
                         model_symbol=model_symbol)
    out_dir = check_out_dir(out_dir, force)
    with staged_dir(out_dir, force) as staging:
        for relative, content in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    return [out_dir / relative for relative in sorted(files)]


def render_files(*, model_data: bytes, op_names, board: BoardSpec, interface: ModelInterface, self_test,
                 arena_bytes: int, templates_dir, compressed: bool = False, arena_margin: float = 0.25,
                 decoded_bytes: int = 0, model_symbol: str = "g_model") -> dict[str, bytes]:
    """The project's files as {relative path: bytes}, without writing anything (see render_project)."""
    model_data = bytes(model_data)
    _check_model(model_data)
    carray.check_identifier(model_symbol)
    if not isinstance(arena_bytes, int) or isinstance(arena_bytes, bool) or arena_bytes <= 0:
        raise CodegenError(f"`arena_bytes` must be an integer > 0. Received: {arena_bytes!r}")
    if not isinstance(arena_margin, (int, float)) or not 0 <= arena_margin <= 10:
        raise CodegenError(f"`arena_margin` must be a number between 0 and 10. Received: {arena_margin!r}")
    if not isinstance(decoded_bytes, int) or not 0 <= decoded_bytes <= arena_bytes:
        raise CodegenError(f"`decoded_bytes` must be an integer between 0 and arena_bytes. Received: {decoded_bytes!r}")
    op_names = sorted(set(op_names))
    calls = resolver.resolver_calls(op_names, compressed=compressed)
    if len(interface.inputs) != 1 or len(interface.outputs) != 1:
        raise CodegenError(
            f"the firmware templates support models with one input and one output; this one has "
            f"{len(interface.inputs)} and {len(interface.outputs)}"
        )
    labels = list(interface.labels) if interface.labels is not None else None
    tin = _tensor_context(interface.inputs[0], 0)
    tout = _tensor_context(interface.outputs[0], 0)
    cases = [_case_context(i, case, interface, labels) for i, case in enumerate(self_test or [])]
    templates_dir = Path(templates_dir)
    if not (templates_dir / "runtime" / "tflm").is_dir():
        raise CodegenError(f"{templates_dir}: no firmware templates (runtime/tflm) there")

    arena = arena_size(arena_bytes, arena_margin, decoded_bytes)
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
        "arena_measured": arena_bytes,
        "arena_margin_percent": _percent(arena_margin),
        "arena_size": arena,
        "float_ulp_tolerance": FLOAT_ULP_TOLERANCE,
        "decoded_bytes": decoded_bytes,
        "input": tin,
        "output": tout,
        "labels": [carray.c_string(label) for label in labels] if labels else None,
        "label_names": labels,
        "cases": cases,
        "source_dir": _SOURCE_DIR.get(board.build_system, ""),
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    files: dict[str, bytes] = {}
    source_dir = context["source_dir"]
    # runtime sources and the board's console interface go where the build system compiles sources;
    # the project README and the board's build files, startup code and linker script go to the top.
    groups = [("runtime/tflm/src", source_dir), ("board/common", source_dir), ("runtime/tflm/project", ""),
              (f"board/{board.build_system}", "")]
    if board.build_system == "make":
        groups.append(("smoke", ""))
    for group, target in groups:
        folder = templates_dir / group
        if not folder.is_dir():
            raise CodegenError(f"{templates_dir}: no templates for {group!r} (board {board.id})")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder).as_posix()
            name = relative[: -len(".j2")] if relative.endswith(".j2") else relative
            destination = f"{target}/{name}" if target else name
            if relative.endswith(".j2"):
                try:
                    text = env.get_template(f"{group}/{relative}").render(context)
                except jinja2.TemplateError as exc:
                    raise CodegenError(f"template {group}/{relative}: {exc}") from None
                files[destination] = text.encode("utf-8")
            else:
                files[destination] = path.read_bytes()
    files[PROJECT_FILE] = _project_json(board, model_data, context, len(cases)).encode("utf-8")
    return dict(sorted(files.items()))


def read_project_board(project_dir) -> BoardSpec:
    """The board a project was generated for, from its board.json."""
    from edgeclust.codegen.board import board_from_dict
    from edgeclust.errors import InputError

    path = Path(project_dir) / PROJECT_FILE
    if not path.is_file():
        raise InputError(
            f"{project_dir}: no {PROJECT_FILE}; give a folder that `edgeclust build` wrote (its firmware/ folder), "
            "or name the board with --board"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        raw = dict(data["board"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a valid project file ({exc}); regenerate the project") from None
    board_id = raw.pop("id", None)
    if not isinstance(board_id, str):
        raise InputError(f"{path}: the board has no id; regenerate the project")
    return board_from_dict(board_id, raw, source=str(path))


def _project_json(board: BoardSpec, model_data: bytes, context: dict, n_cases: int) -> str:
    return json.dumps({
        "generator": "edgeclust",
        "board": board.to_dict(),
        "model": {
            "bytes": len(model_data),
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
    }, indent=2, sort_keys=True) + "\n"


def _check_model(data: bytes) -> None:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise CodegenError(
            "model_data is not a .tflite flatbuffer (no 'TFL3' identifier at offset 4); pass the converted model's bytes"
        )


def _tensor_context(spec: TensorSpec, index: int) -> dict:
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
        "scale_c": _float_literal(spec.scale) if quantized else None,
        "zero_point": int(spec.zero_point or 0),
    }


def _case_context(i: int, case, interface: ModelInterface, labels) -> dict:
    tin, tout = interface.inputs[0], interface.outputs[0]
    x = _case_array(f"self-test case {i} input", case.input, tin)
    y = _case_array(f"self-test case {i} expected output", case.expected_output, tout)
    label = None
    if labels:
        top = int(np.argmax(y.reshape(-1)))
        label = f"top-1 {top} ({labels[top]})" if top < len(labels) else None
    return {"input": _values(x), "expected": _values(y), "label": _comment(label) if label else None}


def _case_array(what: str, value, spec: TensorSpec) -> np.ndarray:
    array = np.asarray(value)
    expected = int(np.prod(spec.shape))
    if array.dtype != np.dtype(spec.dtype):
        raise CodegenError(f"{what} has dtype {array.dtype}; the model's tensor is {spec.dtype} (quantize it first)")
    if array.size != expected:
        raise CodegenError(f"{what} has {array.size} values; the model's tensor {tuple(spec.shape)} holds {expected}")
    return array.reshape(-1)


def _values(array: np.ndarray, per_line: int = 16) -> str:
    if array.dtype == np.float32:
        items = [f"0x{v:08x}" for v in array.view(np.uint32).tolist()]
    else:
        items = [str(int(v)) for v in array.tolist()]
    lines = (", ".join(items[k : k + per_line]) for k in range(0, len(items), per_line))
    return "\n".join(f"    {line}," for line in lines)


def _float_literal(value: float) -> str:
    text = f"{float(np.float32(value)):.9g}"
    if not any(ch in text for ch in ".en"):
        text += ".0"
    return text + "f"


def _percent(margin: float) -> str:
    return f"{margin * 100:.6g}"


def _comment(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _align(n: int) -> int:
    return (int(n) + ARENA_ALIGNMENT - 1) // ARENA_ALIGNMENT * ARENA_ALIGNMENT

