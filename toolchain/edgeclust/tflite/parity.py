"""Run a .tflite model in the host interpreters and compare their outputs.

LiteRT (`ai-edge-litert`, the maintained successor of tflite-runtime) is the desktop reference; the TFLite
Micro interpreter (`tflite_micro.runtime`) runs the same kernels as the board and is its oracle. Outputs
are returned raw (an int8 model's outputs stay int8); an int8 model's inputs are quantized with its input
scale and zero point. `tflm_arena_bytes` finds the arena the model really needs.

Both interpreters run in the isolated worker process (`isolated`): a crash in their C++ becomes a
VerificationError line, and a softmax TFLM would abort on is refused before the call (`check_tflm_can_run`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeclust.align import TENSOR_ALIGNMENT
from edgeclust.errors import ConfigError, ConversionError, DataError, ModelFormatError, VerificationError, first_line
from edgeclust.tflite import isolated
from edgeclust.tflite._fds import captured_output
from edgeclust.tflite.flatbuffer import Tensor, TfliteModel, numpy_dtype, read_model
from edgeclust.tflite.inspect import DECODE_OP

_MAX_ARENA = 1 << 31


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: shape with the batch dimension, numpy dtype name, quantization (or None)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name: "int8", "float32", ...
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None and np.dtype(self.dtype).kind in "iu"


@dataclass(frozen=True)
class ModelInterface:
    """A model's inputs and outputs as the firmware and the host interpreters see them (the one such type)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class Comparison:
    """How one interpreter's outputs compare with the labels and with a reference run.

    max_abs_diff is in output units (dequantized); max_lsb_diff counts quantization steps and is set only
    when both runs give integer outputs with the same quantization.
    """

    name: str
    examples: int
    top1_accuracy: float | None
    top1_agreement: float | None
    max_abs_diff: float | None
    max_lsb_diff: int | None
    outputs_differing: int | None
    bit_exact: bool | None


def model_interface(data: bytes | TfliteModel) -> ModelInterface:
    """Shape, dtype, scale and zero point of the main subgraph's inputs and outputs."""
    model = data if isinstance(data, TfliteModel) else read_model(data)
    return ModelInterface(tuple(_interface(t) for t in model.inputs), tuple(_interface(t) for t in model.outputs))


def _interface(tensor: Tensor) -> TensorSpec:
    np_dtype = numpy_dtype(tensor.dtype)
    dtype = np_dtype.name if np_dtype is not None else tensor.dtype.lower()
    q = tensor.quantization
    quantized = q is not None and len(q.scales) >= 1
    return TensorSpec(
        name=tensor.name,
        shape=tuple(tensor.shape),
        dtype=dtype,
        scale=float(q.scales[0]) if quantized else None,
        zero_point=int(q.zero_points[0]) if quantized else None,
    )


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Real values -> the tensor's dtype (rounded, saturated); arrays already in that dtype pass unchanged."""
    x = np.asarray(x)
    target = np.dtype(spec.dtype)
    if x.dtype == target:
        return x
    if spec.quantized:
        info = np.iinfo(target)
        q = np.round(x.astype(np.float64) / spec.scale) + spec.zero_point
        return np.clip(q, info.min, info.max).astype(target)
    return x.astype(target)


def dequantize(y: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Raw outputs -> real values (float32); float outputs pass unchanged."""
    y = np.asarray(y)
    if spec.quantized and y.dtype.kind in "iu":
        return ((y.astype(np.float64) - spec.zero_point) * spec.scale).astype(np.float32)
    return y.astype(np.float32, copy=False)


def run_litert(data: bytes, x, *, xnnpack: bool = False) -> np.ndarray:
    """Outputs of the LiteRT interpreter, one example at a time (the model's batch size is 1).

    LiteRT's own builtin kernels by default; `xnnpack=True` adds its default XNNPACK delegate, whose int8
    rounding differs more from TFLM's (measured: up to 7 LSB on a softmax output, against 0-1 LSB) and may
    depend on the CPU's instruction set. It runs in the isolated worker: a crash raises VerificationError.
    """
    model = read_model(data)
    if DECODE_OP in model.op_names:
        raise ModelFormatError(
            f"LiteRT cannot run a LUT-compressed model (custom op {DECODE_OP}); use run_tflm, or the model before "
            "compression"
        )
    inputs = _examples(x, model_interface(model))
    return _isolated("LiteRT interpreter", "_run_litert_here", bytes(data), inputs, xnnpack)


def _run_litert_here(data: bytes, inputs: list[np.ndarray], xnnpack: bool):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interface = model_interface(data)
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with captured_output():  # LiteRT announces its XNNPACK delegate on stderr
            interpreter = Interpreter(model_content=bytes(data), num_threads=1, experimental_op_resolver_type=resolver)
            interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise ModelFormatError(f"LiteRT cannot load the model: {first_line(exc)}") from None
    in_details = interpreter.get_input_details()
    out_details = interpreter.get_output_details()
    outputs = [[] for _ in out_details]
    for i in range(len(inputs[0])):
        for detail, array in zip(in_details, inputs):
            interpreter.set_tensor(detail["index"], array[i : i + 1])
        interpreter.invoke()
        for k, detail in enumerate(out_details):
            outputs[k].append(interpreter.get_tensor(detail["index"])[0].copy())
    return _stack(outputs, interface)


def run_tflm(data: bytes, x, *, arena_size: int | None = None) -> np.ndarray:
    """Outputs of the TFLite Micro interpreter (the board's kernels), one example at a time, in the isolated
    worker; a model TFLM would abort on is refused first (`check_tflm_can_run`)."""
    model = read_model(data)
    check_tflm_can_run(model)
    inputs = _examples(x, model_interface(model))
    return _isolated("TFLite Micro interpreter", "_run_tflm_here", bytes(data), inputs, arena_size)


def _run_tflm_here(data: bytes, inputs: list[np.ndarray], arena_size: int | None):
    model = read_model(data)
    interface = model_interface(model)
    interpreter = _tflm(data, arena_size or _generous_arena(model))
    outputs = [[] for _ in interface.outputs]
    for i in range(len(inputs[0])):
        for k, array in enumerate(inputs):
            interpreter.set_input(array[i : i + 1], k)
        interpreter.invoke()
        for k in range(len(outputs)):
            outputs[k].append(np.array(interpreter.get_output(k))[0])
    return _stack(outputs, interface)


def check_tflm_can_run(data: bytes | TfliteModel) -> None:
    """Refuse (ConversionError) a model on which TFLM's Prepare would abort the process.

    An int8 SOFTMAX needs beta * input_scale * 2^26 > 1: TFLM's CalculateSoftmaxParams calls
    QuantizeMultiplierGreaterThanOne, whose TFLITE_CHECK_GT(multiplier, 1.) aborts otherwise. An untrained
    model's equal logits give such a scale (7.84e-9 on an untrained MobileNet).
    """
    model = data if isinstance(data, TfliteModel) else read_model(data)
    for sg in model.subgraphs:
        for op in sg.operators:
            if op.name != "SOFTMAX" or not op.inputs or op.inputs[0] < 0:
                continue
            tensor = sg.tensors[op.inputs[0]]
            q = tensor.quantization
            if tensor.dtype != "INT8" or q is None or not len(q.scales):
                continue
            beta = float(np.float32(op.options.get("beta", 1.0)))
            multiplier = softmax_input_multiplier(beta, float(q.scales[0]))
            if not multiplier > 1.0:
                raise ConversionError(softmax_refusal(float(q.scales[0]), multiplier))


def softmax_input_multiplier(beta: float, input_scale: float) -> float:
    """TFLM PreprocessSoftmaxScaling's real multiplier for int8 (5 integer bits): beta * scale * 2^26."""
    return min(float(beta) * float(input_scale) * (1 << 26), (1 << 31) - 1.0)


def softmax_refusal(input_scale: float, multiplier: float) -> str:
    """The one line for a softmax TFLM (and so the native backend) cannot run."""
    return (
        f"this softmax cannot run on TFLM or native: its int8 input scale {input_scale:.3g} gives the multiplier "
        f"beta * scale * 2^26 = {multiplier:.3g}, and TFLM needs more than 1 (QuantizeMultiplierGreaterThanOne); "
        "the logits reaching it are (nearly) constant: train the model, or calibrate on data that spreads them"
    )


def tflm_arena_bytes(data: bytes, *, alt_decompression_bytes: int = 0) -> int:
    """The smallest tensor arena (16-byte steps) in which TFLM allocates the model and runs it once.

    A LUT-compressed model's DECODE operators write the decoded weights into the arena, so for such a
    model the result includes them; give `alt_decompression_bytes` (e.g. LutResult.decoded_bytes) to
    measure the arena when the firmware hands DECODE a separate region (SetDecompressionMemory) instead.
    """
    if not isinstance(alt_decompression_bytes, int) or alt_decompression_bytes < 0:
        raise ConfigError(f"`alt_decompression_bytes` must be an integer >= 0. Received: {alt_decompression_bytes!r}")
    model = read_model(data)
    check_tflm_can_run(model)
    data = bytes(data)
    high = _generous_arena(model)
    while not _isolated("TFLite Micro interpreter", "_tflm_runs_here", data, high, alt_decompression_bytes):
        if high >= _MAX_ARENA:
            raise ModelFormatError("TFLite Micro cannot allocate this model even in a 2 GiB arena")
        high *= 2
    low = 0  # does not run
    while high - low > TENSOR_ALIGNMENT:
        middle = (low + high) // 2 // TENSOR_ALIGNMENT * TENSOR_ALIGNMENT
        if middle <= low:
            break
        if _tflm_runs_below(data, middle, alt_decompression_bytes):
            high = middle
        else:
            low = middle
    return int(high)


def _tflm_runs_here(data: bytes, arena_size: int, alt_decompression_bytes: int) -> bool:
    model = read_model(data)
    zeros = [np.zeros((1, *spec.shape[1:]), dtype=np.dtype(spec.dtype)) for spec in model_interface(model).inputs]
    return _runs(data, arena_size, zeros, alt_decompression_bytes)


def _tflm_runs_below(data: bytes, arena_size: int, alt_decompression_bytes: int) -> bool:
    """_tflm_runs_here for an arena smaller than one the model ran in: TFLM crashes on some sizes just short of
    enough (a segfault in its temp allocations, seen at 22,032 bytes on a 640-input dense autoencoder whose
    arena is 22,048), and such a size does not run."""
    try:
        return isolated.call("edgeclust.tflite.parity", "_tflm_runs_here", data, arena_size, alt_decompression_bytes)
    except isolated.Crashed:
        return False


def _isolated(what: str, function: str, *args):
    """`function(*args)` of this module in the isolated worker; a crash becomes one VerificationError line."""
    try:
        return isolated.call("edgeclust.tflite.parity", function, *args)
    except isolated.Crashed as crash:
        library = "tflite_micro" if "Micro" in what else "ai_edge_litert"
        raise VerificationError(
            f"the {what} crashed on this model ({crash.how}, in {library}); list its ops with edgeclust inspect "
            "and simplify the layer that brings the unusual one; EDGECLUST_DEBUG=1 shows the library's log"
        ) from None


def compare(
    name: str,
    outputs: np.ndarray,
    *,
    labels=None,
    reference=None,
    interface: TensorSpec | None = None,
    reference_interface: TensorSpec | None = None,
) -> Comparison:
    """Top-1 accuracy against `labels` and differences from `reference` (raw outputs of another run)."""
    outputs = np.asarray(outputs)
    n = len(outputs)
    top1 = _top1(outputs)
    accuracy = agreement = max_abs = max_lsb = differing = exact = None
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != n:
            raise DataError(f"{name}: {n} outputs but {len(labels)} labels")
        accuracy = float(np.mean(top1 == labels)) if n else 0.0
    if reference is not None:
        reference = np.asarray(reference)
        if reference.shape != outputs.shape:
            raise DataError(f"{name}: outputs of shape {outputs.shape} cannot be compared with {reference.shape}")
        agreement = float(np.mean(top1 == _top1(reference))) if n else 1.0
        exact = outputs.dtype == reference.dtype and bool(np.array_equal(outputs, reference))
        real = dequantize(outputs, interface) if interface else outputs.astype(np.float32)
        real_ref = dequantize(reference, reference_interface) if reference_interface else reference.astype(np.float32)
        max_abs = float(np.max(np.abs(real.astype(np.float64) - real_ref))) if n else 0.0
        same_quantization = interface == reference_interface or reference_interface is None or interface is None
        if outputs.dtype.kind in "iu" and reference.dtype.kind in "iu" and same_quantization:
            diff = np.abs(outputs.astype(np.int64) - reference.astype(np.int64))
            max_lsb = int(diff.max()) if n else 0
            differing = int(np.count_nonzero(diff))
        else:
            differing = int(np.count_nonzero(real != real_ref))
    return Comparison(name, n, accuracy, agreement, max_abs, max_lsb, differing, exact)


def _top1(outputs: np.ndarray) -> np.ndarray:
    return np.argmax(outputs.reshape(len(outputs), -1), axis=-1)


def _examples(x, interface: ModelInterface) -> list[np.ndarray]:
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    if len(arrays) != len(interface.inputs):
        raise DataError(f"the model has {len(interface.inputs)} input(s) but {len(arrays)} array(s) were given")
    checked = []
    for array, spec in zip(arrays, interface.inputs):
        array = np.asarray(array)
        if array.shape[1:] != tuple(spec.shape[1:]):
            raise DataError(
                f"input {spec.name!r} takes examples of shape {tuple(spec.shape[1:])}; "
                f"got an array of shape {array.shape}"
            )
        checked.append(np.ascontiguousarray(quantize(array, spec)))
    if len({len(a) for a in checked}) > 1:
        raise DataError("the input arrays hold different numbers of examples")
    return checked


def _stack(outputs: list[list[np.ndarray]], interface: ModelInterface):
    stacked = []
    for values, spec in zip(outputs, interface.outputs):
        empty = np.zeros((0, *spec.shape[1:]), dtype=np.dtype(spec.dtype) if spec.dtype != "bool" else bool)
        stacked.append(np.stack(values) if values else empty)
    return stacked[0] if len(stacked) == 1 else tuple(stacked)


def _generous_arena(model: TfliteModel) -> int:
    """Room for every non-constant tensor at once (decoded LUT weights included) plus TFLM's bookkeeping."""
    total = 0
    for sg in model.subgraphs:
        for t in sg.tensors:
            if t.is_constant:
                continue
            count = math.prod(max(d, 1) for d in t.shape)  # Python ints: no int64 overflow
            np_dtype = numpy_dtype(t.dtype)
            itemsize = np_dtype.itemsize if np_dtype is not None else 8
            total += count * itemsize + TENSOR_ALIGNMENT
    tensor_count = sum(len(sg.tensors) + len(sg.operators) for sg in model.subgraphs)
    return int(2 * total + 256 * tensor_count + (64 << 10))


def _tflm(data: bytes, arena_size: int):
    from tflite_micro import runtime

    try:
        with captured_output():
            return runtime.Interpreter.from_bytes(bytes(data), arena_size=int(arena_size))
    except (RuntimeError, ValueError) as exc:
        raise ModelFormatError(f"TFLite Micro cannot load the model: {first_line(exc)}") from None


def _runs(data: bytes, arena_size: int, zeros: list[np.ndarray], alt_decompression_bytes: int = 0) -> bool:
    """Whether TFLM allocates and invokes the model in `arena_size` bytes; other failures raise."""
    from tflite_micro import runtime

    try:
        with captured_output() as log:
            interpreter = runtime.Interpreter.from_bytes(
                bytes(data), arena_size=int(arena_size), alt_decompression_memory_size=alt_decompression_bytes
            )
            for k, array in enumerate(zeros):
                interpreter.set_input(array, k)
            interpreter.invoke()
    except RuntimeError as exc:
        text = log.text()
        if any(word in (text + str(exc)).lower() for word in ("allocate", "arena")):
            return False
        detail = (text.strip().splitlines() or [first_line(exc)])[0]
        raise ModelFormatError(f"TFLite Micro cannot run the model: {detail}") from None
    return True
