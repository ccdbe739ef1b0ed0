"""One function per stage of `edgeclust build`, each over the frozen results of the stages before it.

build.py composes them; build_plan.py declares their titles. Nothing here knows which backend runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeclust.backends.base import SelfTestCase
from edgeclust.codegen.board import BoardSpec
from edgeclust.errors import VerificationError
from edgeclust.pipeline import report as report_mod
from edgeclust.pipeline.build_results import (
    ClusteredModel,
    ConvertedModels,
    LoadedInputs,
    LoweredModel,
    ParityResult,
    PricedModel,
    RenderedFiles,
    Verification,
)
from edgeclust.pipeline.files import keras_archive_bytes
from edgeclust.pipeline.loading import compiled_loss, load_data_for, load_keras_model
from edgeclust.pipeline.progress import Stages
from edgeclust.pipeline.stages import calibration_count, cluster_model, convert_model, strip_if_clustered
from edgeclust.pipeline.tflite_source import as_converted, load_tflite_inputs
from edgeclust.pipeline.training import model_task, predict

__all__ = ["as_converted"]  # a .tflite input's "conversion" (pipeline/tflite_source.py), composed by build.py


@dataclass(frozen=True)
class BuildContext:
    """What every stage may read: the options, the board (loaded once) and the progress."""

    options: object  # build.BuildOptions
    board: BoardSpec
    stages: Stages


def load_inputs(ctx: BuildContext, model_path: Path, data_path: Path) -> LoadedInputs:
    """Load the model (stripping clustering wrappers) and the data checked against it; or a .tflite input."""
    if ctx.options.model_format == "tflite":
        return load_tflite_inputs(ctx.stages, ctx.options, model_path, data_path)
    model = load_keras_model(model_path)
    model, was_wrapped = strip_if_clustered(model, ctx.stages)
    data = load_data_for(data_path, model, ctx.options.task)
    ctx.stages.info(
        f"{model.name}: {model.count_params():,} parameters; {len(data.x_train):,} training and "
        f"{len(data.x_test):,} test examples of shape {data.input_shape}"
    )
    task = model_task(model, data, loss=compiled_loss(model_path), asked=ctx.options.task)
    ctx.stages.info(task.describe())
    n = ctx.options.parity_samples
    x_eval, y_eval = data.x_test[:n], data.y_test[:n]
    return LoadedInputs(
        model=model,
        data=data,
        model_path=model_path,
        data_path=data_path,
        model_sha256=_sha256(model_path.read_bytes()),
        data_sha256=_sha256(data_path.read_bytes()),
        was_wrapped=was_wrapped,
        probabilities=not task.from_logits and task.classification,
        x_eval=x_eval,
        y_eval=y_eval,
        keras_outputs=predict(model, x_eval),
        keras_bytes=keras_archive_bytes(model),
        task=task,
    )


def prepare_model(ctx: BuildContext, inputs: LoadedInputs) -> ClusteredModel:
    """Fold BatchNorm, cluster and fine-tune (as the options say), deterministically; or keep the model."""
    from edgeclust.pipeline.determinism import make_deterministic
    from edgeclust.tflite import isolated

    isolated.warm("tensorflow")  # the converter's worker process imports TensorFlow while the model trains
    options = ctx.options.cluster
    make_deterministic(options.seed)
    result = cluster_model(inputs.model, inputs.data, options, ctx.stages, task=inputs.task)
    if not options.clusters and not result.folded_batch_norm:
        ctx.stages.info("no BatchNormalization layer to fold")
        return keep_model(inputs)
    return ClusteredModel(
        model=result.model,
        report=result.report,
        folded_batch_norm=result.folded_batch_norm,
        outputs=predict(result.model, inputs.x_eval),
        keras_bytes=keras_archive_bytes(result.model),
        recovery=result.recovery,
    )


def convert(ctx: BuildContext, inputs: LoadedInputs, clustered: ClusteredModel) -> ConvertedModels:
    """float32 always; int8 when asked, per channel unless clustered per tensor (so the values survive)."""
    options = ctx.options
    from edgeclust.tflite.convert import nearest_upsampling_layers, rolled_recurrent_layers

    if rolled := rolled_recurrent_layers(clustered.model):
        ctx.stages.info(
            f"unrolled the recurrent layers {', '.join(rolled)} over their time steps before converting "
            "(TensorFlow's int8 calibrator crashes on their loop)"
        )
    if upsampling := nearest_upsampling_layers(clustered.model):
        ctx.stages.info(
            f"converted the UpSampling2D layers {', '.join(upsampling)} as Resizing (nearest), the same values "
            "(Keras 3 writes UpSampling2D as TILE, which TFLite Micro lacks)"
        )
    float32 = convert_model(clustered.model, quantize="float32", representative=None, per_channel=True)
    ctx.stages.info(f"float32: {len(float32):,} bytes")
    if options.quantize != "int8":
        return ConvertedModels(float32, None, per_channel=True, calibration_samples=0)
    per_channel = options.cluster.per_channel or not options.cluster.clusters
    x = inputs.data.x_train
    int8 = convert_model(
        clustered.model,
        quantize="int8",
        representative=x,
        per_channel=per_channel,
        calibration_samples=options.calibration_samples,
    )
    used = calibration_count(x, options.calibration_samples)
    ctx.stages.info(
        f"int8 ({'per-channel' if per_channel else 'per-tensor'} weights, calibrated on {used:,} "
        f"examples): {len(int8):,} bytes"
    )
    return ConvertedModels(float32, int8, per_channel=per_channel, calibration_samples=used)


def verify(ctx: BuildContext, converted: ConvertedModels, clustered: ClusteredModel | None = None) -> Verification:
    """Count unique values per weight tensor; with --clusters, refuse a .tflite that holds more. Each weight
    tensor is tied to the Keras layer it came from by content (report.json's "weight_layers")."""
    from edgeclust.pipeline.tensor_layers import tensor_layers
    from edgeclust.tflite import inspect

    stats = inspect.inspect_weights(converted.deployed)
    layers = tensor_layers(converted.deployed, clustered.model if clustered is not None else None)
    clusters, per_channel = ctx.options.cluster.clusters, ctx.options.cluster.per_channel
    if not clusters:
        ctx.stages.info(_holdings_line(stats))
        return Verification(stats, None, layers)
    if ctx.options.cluster.layers:  # per-layer counts: each tensor against its own layer's N
        from edgeclust.pipeline.expected_counts import check_limits

        limits = check_limits(stats, dict(ctx.options.cluster.layers), clusters, per_channel=per_channel, layers=layers)
        if not limits.passed:
            names = ", ".join(f"{f.name} ({f.count} > {f.limit})" for f in limits.failures[:5])
            raise VerificationError(
                f"{len(limits.failures)} weight tensor(s) hold more unique values than their "
                f"layer's N after conversion: {names}; {_verify_hint(ctx)}"
            )
        ctx.stages.info(limits.summary())
        return Verification(stats, limits, layers)
    result = inspect.verify(converted.deployed, clusters, per_channel=per_channel)
    scope = "per channel" if per_channel else "per tensor"
    if not result.passed:
        names = ", ".join(f.name for f in result.failures[:5])
        raise VerificationError(
            f"{len(result.failures)} weight tensor(s) hold more than {clusters} unique values {scope} after "
            f"conversion ({names}); {_verify_hint(ctx)}"
        )
    ctx.stages.info(f"all {result.checked} weight tensors hold <= {clusters} unique values {scope}")
    return Verification(stats, result, layers)


def _verify_hint(ctx: BuildContext) -> str:
    """What to do when the deployed .tflite holds more values than asked: for a Keras model, how edgeclust
    clusters; for a .tflite input (nothing edgeclust clusters or converts), what the check measures."""
    if ctx.options.model_format == "tflite":
        scope = "--clusters N with the number it was clustered to" + (
            "" if ctx.options.cluster.per_channel else ", or --per-channel if it was clustered per channel"
        )
        return f"this .tflite was not clustered to that many values; give {scope}, or build the Keras model"
    return "keep --fold-bn on, or cluster --per-channel"


def _holdings_line(stats) -> str:
    """What the weight tensors hold, when no --clusters N is checked: unique values per tensor and per channel."""
    if not stats:
        return "no weight tensors"
    per_tensor = sorted({s.unique_values for s in stats})
    per_channel = max(s.max_unique_per_channel for s in stats)
    return (
        f"{len(stats)} weight tensors hold {per_tensor[0]}..{per_tensor[-1]} unique values per tensor "
        f"(at most {per_channel} per channel); no --clusters N to check against"
    )


def decide_layouts(ctx: BuildContext, converted: ConvertedModels, verification: Verification):
    """The weight layouts every backend packs from (pipeline/layouts.py)."""
    from edgeclust.pipeline.layouts import layout_line, weight_layouts

    layouts = weight_layouts(converted.deployed)
    ctx.stages.info(layout_line(layouts, len(verification.weight_stats)))
    return layouts


def lower(ctx: BuildContext, converted: ConvertedModels, layouts) -> LoweredModel:
    """Choose the backend (--backend, or auto) and lower the deployed model with it."""
    from edgeclust.backends import choose_backend

    choice = choose_backend(ctx.options.backend, converted.deployed, compress=ctx.options.compress)
    if choice.why:
        ctx.stages.info(choice.why)
    lowered = choice.backend.lower(converted.deployed, layouts)
    for note in lowered.notes:
        ctx.stages.info(note)
    from edgeclust.pipeline.layouts import stored_line

    ctx.stages.info(stored_line(lowered.backend, tuple(lowered.packed), tuple(layouts)))
    return LoweredModel(choice.backend, choice.why, lowered, tuple(layouts))


def check_parity(
    ctx: BuildContext,
    inputs: LoadedInputs,
    clustered: ClusteredModel,
    converted: ConvertedModels,
    lowered: LoweredModel,
) -> ParityResult:
    """Keras vs LiteRT vs TFLM (the board's arithmetic) vs the backend's host oracle; the backend must equal
    TFLM bit for bit on an integer model."""
    from edgeclust.tflite import parity

    x = inputs.x_eval
    firmware = lowered.backend.run_host(lowered.result, parity.quantize(x, lowered.result.interface.inputs[0]))
    section = report_mod.parity_section(
        task=inputs.task,
        output=parity.model_interface(converted.deployed).outputs[0],
        labels=inputs.y_eval,
        keras_original=inputs.keras_outputs,
        keras_clustered=clustered.outputs,
        litert_float=parity.run_litert(converted.float32, x) if converted.float32 is not None else None,
        litert_int8=parity.run_litert(converted.int8, x) if converted.int8 is not None else None,
        tflm=parity.run_tflm(converted.deployed, x),
        tflm_key="tflm_int8" if converted.int8 else "tflm_float32",
        firmware=firmware,
        backend=lowered.backend.name,
    )
    for line in report_mod.parity_lines(section):
        ctx.stages.info(line)
    if converted.int8 is not None and not section["firmware_equals_tflm_bit_for_bit"]:
        raise VerificationError(
            f"the {lowered.backend.name} backend's outputs differ from TFLM's on the int8 model; "
            "build with --backend tflm and without --compress lut"
        )
    return ParityResult(section)


def check_budget(ctx: BuildContext, lowered: LoweredModel, rendered: RenderedFiles) -> PricedModel:
    """Price the project as rendered (the very files the build writes) on the board; refuse it when it does not
    fit (unless allowed)."""
    cost = lowered.backend.price(lowered.result, ctx.board, rendered.project)
    ctx.stages.info(cost.line())
    if not ctx.options.allow_over_budget:
        cost.check(can_recluster=ctx.options.model_format != "tflite")
    return PricedModel(cost, ctx.board)


def render(
    ctx: BuildContext,
    inputs: LoadedInputs,
    clustered: ClusteredModel,
    converted: ConvertedModels,
    lowered: LoweredModel,
) -> RenderedFiles:
    """The model files and the firmware project (with its self-test cases from the backend's host oracle),
    rendered once: the budget prices these files."""
    cases = self_test_cases(lowered, inputs.data.x_test[: ctx.options.self_test_cases])
    project = lowered.backend.render(lowered.result, ctx.board, cases)
    files = {"model_float32.tflite": converted.float32, "model_clustered.keras": clustered.keras_bytes}
    files = {name: content for name, content in files.items() if content}  # a .tflite input has neither
    if converted.int8 is not None:
        files["model_int8.tflite"] = converted.int8
    if lowered.result.model != converted.deployed:
        files["model_firmware.tflite"] = lowered.result.model
    files |= {f"firmware/{path}": content for path, content in project.items()}
    ctx.stages.info(
        f"firmware project for {ctx.board.name} ({lowered.backend.name}): {len(project)} files "
        f"in {Path(ctx.options.out_dir) / 'firmware'}"
    )
    return RenderedFiles(files, project=project, cases=tuple(cases))


def with_sizes(
    rendered: RenderedFiles,
    inputs: LoadedInputs,
    clustered: ClusteredModel,
    converted: ConvertedModels,
    lowered: LoweredModel,
    priced: PricedModel,
) -> RenderedFiles:
    """The rendered files with report.json's "sizes" (the priced total included)."""
    return dataclasses.replace(rendered, sizes=_sizes(inputs, clustered, converted, lowered, priced))


def self_test_cases(lowered: LoweredModel, x: np.ndarray) -> list[SelfTestCase]:
    """Inputs in the model's own dtype with the outputs the backend's host oracle gives for them (an int8
    firmware must reproduce them bit for bit)."""
    from edgeclust.tflite import parity

    inputs = parity.quantize(np.asarray(x), lowered.result.interface.inputs[0])
    outputs = np.asarray(lowered.backend.run_host(lowered.result, inputs))
    return [SelfTestCase(input=inputs[i : i + 1], expected_output=outputs[i : i + 1]) for i in range(len(inputs))]


def plot(ctx: BuildContext, clustered: ClusteredModel, rendered: RenderedFiles) -> dict[str, bytes]:
    """PNG plots (weight histograms with their centroids, sizes) as files under plots/."""
    from edgeclust.pipeline import plots

    weights = [
        (f"{w.layer_name} / {w.weight_name}", w.original_values, w.initial_centroids)
        for w in (clustered.report.clustered if clustered.report is not None else [])
    ]
    with tempfile.TemporaryDirectory(prefix="edgeclust-plots-") as tmp:
        written = plots.write_plots(Path(tmp), weights=weights, sizes=rendered.sizes)
        files = {f"plots/{path.name}": path.read_bytes() for path in written}
    ctx.stages.info(f"{len(files)} PNG file(s) in {Path(ctx.options.out_dir) / 'plots'}")
    return files


def _sizes(
    inputs: LoadedInputs,
    clustered: ClusteredModel,
    converted: ConvertedModels,
    lowered: LoweredModel,
    priced: PricedModel,
) -> dict[str, int]:
    """Bytes per form of the model, as users measure them (zipped) and as the board stores them."""
    from edgeclust.tflite.size import zipped_size

    sizes = {}
    if inputs.keras_bytes:
        sizes["keras_zipped"] = zipped_size(inputs.keras_bytes, "model.keras")
        sizes["keras_clustered_zipped"] = zipped_size(clustered.keras_bytes, "model.keras")
    if converted.float32 is not None:
        sizes["tflite_float32"] = len(converted.float32)
        sizes["tflite_float32_zipped"] = zipped_size(converted.float32, "model.tflite")
    if converted.int8 is not None:
        sizes["tflite_int8"] = len(converted.int8)
        sizes["tflite_int8_zipped"] = zipped_size(converted.int8, "model.tflite")
    if lowered.result.model != converted.deployed:
        sizes["tflite_firmware"] = len(lowered.result.model)
    sizes["on_flash_model"] = lowered.result.flash_bytes
    sizes["on_flash_total"] = priced.cost.flash_used
    return sizes


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keep_model(inputs: LoadedInputs) -> ClusteredModel:
    """No clustering and no folding asked: the model is deployed as loaded."""
    return ClusteredModel(
        model=inputs.model,
        report=None,
        folded_batch_norm=False,
        outputs=inputs.keras_outputs,
        keras_bytes=inputs.keras_bytes,
    )


def write_outputs(options, files: dict[str, bytes], report: dict, timings: dict[str, float]) -> None:
    """Every file of the build, report.json and timings.json, into options.out_dir at once (all or nothing)."""
    from edgeclust.codegen.project import write_files

    write_files(options.out_dir, files | report_mod.report_files(report, timings), force=options.force)
