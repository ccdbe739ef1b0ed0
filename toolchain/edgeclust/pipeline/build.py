"""`edgeclust build`: model + data + board -> clustered .tflite files, a firmware project and a report.

Every stage reports progress by callback; everything is written into a staging folder that becomes
`out_dir` only when the whole build has succeeded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeclust import __version__, resources
from edgeclust.atomic import check_out_dir, staged_dir
from edgeclust.errors import ConfigError, VerificationError
from edgeclust.pipeline import report as report_mod
from edgeclust.pipeline.files import keras_archive_bytes
from edgeclust.pipeline.firmware import codegen_interface, self_test_cases
from edgeclust.pipeline.loading import load_data_for, load_keras_model
from edgeclust.pipeline.progress import ProgressCallback, Stages
from edgeclust.pipeline.stages import (
    ClusterOptions,
    cluster_model,
    convert_model,
    has_batch_norm,
    strip_if_clustered,
)
from edgeclust.pipeline.training import outputs_are_probabilities, predict

QUANTIZE_CHOICES = ("int8", "float32")
COMPRESS_CHOICES = ("none", "lut")


@dataclass(frozen=True)
class BuildOptions:
    """Everything `edgeclust build` can be told besides the model and data paths."""

    board: str
    out_dir: Path
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    quantize: str = "int8"
    compress: str = "none"
    force: bool = False
    allow_over_budget: bool = False
    plots: bool = False
    self_test_cases: int = 4
    parity_samples: int | None = None
    calibration_samples: int = 500
    arena_margin: float = 0.25

    def __post_init__(self):
        if self.quantize not in QUANTIZE_CHOICES:
            raise ConfigError(f"`quantize` must be one of {', '.join(QUANTIZE_CHOICES)}. Received: {self.quantize!r}")
        if self.compress not in COMPRESS_CHOICES:
            raise ConfigError(f"`compress` must be one of {', '.join(COMPRESS_CHOICES)}. Received: {self.compress!r}")
        if not 1 <= self.self_test_cases <= 64:
            raise ConfigError(f"`self_test_cases` must be in 1..64. Received: {self.self_test_cases}")
        if self.parity_samples is not None and self.parity_samples < 1:
            raise ConfigError(f"`parity_samples` must be >= 1. Received: {self.parity_samples}")


@dataclass
class BuildResult:
    out_dir: Path
    report: dict


def _titles(options: BuildOptions, model_has_bn: bool) -> list[str]:
    titles = ["Load model and data"]
    if options.cluster.clusters:
        titles.append("Cluster and fine-tune")
    elif options.cluster.fold_bn and model_has_bn:
        titles.append("Fold BatchNorm")
    titles += ["Convert to .tflite", "Inspect and verify unique values"]
    if options.compress == "lut":
        titles.append("Compress weights (LUT)")
    titles += ["Check parity across interpreters", "Check the board's budget", "Generate firmware project"]
    if options.plots:
        titles.append("Plot")
    titles.append("Write report")
    return titles


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(model_path, data_path, options: BuildOptions, on_progress: ProgressCallback | None = None) -> BuildResult:
    """Run the whole pipeline and write `options.out_dir` atomically; returns the report."""
    from edgeclust.codegen import board as board_mod

    board = board_mod.load_board(options.board, resources.boards_dir())
    check_out_dir(options.out_dir, options.force)
    model_path, data_path = Path(model_path), Path(data_path)

    stages = Stages(["Load model and data"], on_progress)
    stages.start("Load model and data")
    model = load_keras_model(model_path)
    model, was_wrapped = strip_if_clustered(model, stages)
    data = load_data_for(data_path, model)
    stages.titles = _titles(options, has_batch_norm(model))
    stages.info(
        f"{model.name}: {model.count_params():,} parameters; {len(data.x_train):,} training and "
        f"{len(data.x_test):,} test examples of shape {data.input_shape}"
    )
    x_eval = data.x_test[: options.parity_samples]
    y_eval = data.y_test[: options.parity_samples]
    probabilities = outputs_are_probabilities(model, data.x_train)
    keras_original_out = predict(model, x_eval)
    original_keras_bytes = keras_archive_bytes(model)

    copts = options.cluster
    clustered = model
    cluster_report = None
    folded_batch_norm = False
    if copts.clusters or (copts.fold_bn and has_batch_norm(model)):
        stages.start("Cluster and fine-tune" if copts.clusters else "Fold BatchNorm")
        result = cluster_model(model, data, copts, stages)
        clustered, cluster_report, folded_batch_norm = result.model, result.report, result.folded_batch_norm
    clustered_out = predict(clustered, x_eval)
    clustered_keras_bytes = keras_archive_bytes(clustered)

    stages.start("Convert to .tflite")
    rng = np.random.default_rng(copts.seed)
    calib_idx = np.sort(rng.choice(len(data.x_train), min(options.calibration_samples, len(data.x_train)), replace=False))
    representative = data.x_train[calib_idx]
    per_channel_quant = copts.per_channel or not copts.clusters
    tflite_float = convert_model(clustered, quantize="float32", representative=None, per_channel=True)
    stages.info(f"float32: {len(tflite_float):,} bytes")
    tflite_int8 = None
    if options.quantize == "int8":
        tflite_int8 = convert_model(
            clustered, quantize="int8", representative=representative, per_channel=per_channel_quant
        )
        stages.info(
            f"int8 ({'per-channel' if per_channel_quant else 'per-tensor'} weights): {len(tflite_int8):,} bytes"
        )
    deployed = tflite_int8 if tflite_int8 is not None else tflite_float

    from edgeclust.tflite import flatbuffer, inspect, parity, size

    stages.start("Inspect and verify unique values")
    weight_stats = inspect.inspect_weights(deployed)
    verification = None
    if copts.clusters:
        verification = inspect.verify(deployed, copts.clusters, per_channel=copts.per_channel)
        scope = "per channel" if copts.per_channel else "per tensor"
        if not verification.passed:
            names = ", ".join(f.name for f in verification.failures[:5])
            raise VerificationError(
                f"{len(verification.failures)} weight tensor(s) hold more than {copts.clusters} unique values "
                f"{scope} after conversion ({names}); keep --fold-bn on, or cluster --per-channel"
            )
        stages.info(f"all {verification.checked} weight tensors hold <= {copts.clusters} unique values {scope}")

    lut = None
    if options.compress == "lut":
        stages.start("Compress weights (LUT)")
        lut = size.lut_compress(deployed)
        stages.info(
            f"{len(lut.compressed_tensors)} tensor(s) compressed, {len(lut.skipped_tensors)} left as they are; "
            f"{len(deployed):,} -> {len(lut.model):,} bytes; decoded weights need {lut.decoded_bytes:,} bytes of RAM"
        )
    firmware_model = lut.model if lut is not None else deployed

    stages.start("Check parity across interpreters")
    parity_result = report_mod.parity_section(
        labels=y_eval,
        keras_original=keras_original_out,
        keras_clustered=clustered_out,
        litert_float=parity.run_litert(tflite_float, x_eval),
        litert_int8=parity.run_litert(tflite_int8, x_eval) if tflite_int8 is not None else None,
        tflm_int8=parity.run_tflm(tflite_int8, x_eval) if tflite_int8 is not None else None,
        tflm_lut=parity.run_tflm(lut.model, x_eval) if lut is not None else None,
    )
    for line in report_mod.parity_lines(parity_result):
        stages.info(line)
    if lut is not None and not parity_result["lut_equals_int8_bit_for_bit"]:
        raise VerificationError("TFLM outputs of the LUT-compressed model differ from the int8 model; build without --compress lut")

    stages.start("Check the board's budget")
    from edgeclust.codegen import budget as budget_mod

    # TFLM's DECODE writes decoded weights into the arena, where the memory planner overlaps them with other
    # tensors: the RAM that decoding costs is the measured arena of the LUT model minus that of the int8 one
    # (often less than the sum of all decoded tensors).
    arena = parity.tflm_arena_bytes(firmware_model)
    decoded = 0
    if lut is not None:
        plain_arena = parity.tflm_arena_bytes(deployed)
        decoded = max(arena - plain_arena, 0)
        arena = plain_arena + decoded
        stages.info(
            f"TFLM arena {plain_arena:,} bytes without LUT, {arena:,} with it: decoding costs {decoded:,} bytes "
            f"of RAM (all decoded tensors together: {lut.decoded_bytes:,})"
        )
    op_names = sorted(set(flatbuffer.read_model(firmware_model).op_names))
    budget = budget_mod.check_budget(
        board,
        model_bytes=len(firmware_model),
        op_names=op_names,
        arena_bytes=max(arena - decoded, 0),
        decoded_bytes=decoded,
        arena_margin=options.arena_margin,
    )
    stages.info(budget_mod.budget_line(budget))
    if not budget.fits and not options.allow_over_budget:
        budget_mod.raise_over_budget(budget)

    stages.start("Generate firmware project")
    interface = codegen_interface(firmware_model)
    cases = self_test_cases(firmware_model, data.x_test[: options.self_test_cases])

    sizes = {
        "keras_zipped": size.zipped_size(original_keras_bytes, "model.keras"),
        "keras_clustered_zipped": size.zipped_size(clustered_keras_bytes, "model.keras"),
        "tflite_float32": len(tflite_float),
        "tflite_float32_zipped": size.zipped_size(tflite_float, "model.tflite"),
    }
    if tflite_int8 is not None:
        sizes["tflite_int8"] = len(tflite_int8)
        sizes["tflite_int8_zipped"] = size.zipped_size(tflite_int8, "model.tflite")
    if lut is not None:
        sizes["tflite_int8_lut"] = len(lut.model)
    sizes["on_flash_model"] = len(firmware_model)
    sizes["on_flash_total"] = budget.flash_used

    with staged_dir(options.out_dir, options.force) as staging:
        from edgeclust.codegen import project

        files = {"model_float32.tflite": tflite_float, "model_clustered.keras": clustered_keras_bytes}
        if tflite_int8 is not None:
            files["model_int8.tflite"] = tflite_int8
        if lut is not None:
            files["model_int8_lut.tflite"] = lut.model
        for name, blob in files.items():
            (staging / name).write_bytes(blob)
        project.render_project(
            model_data=firmware_model,
            op_names=op_names,
            board=board,
            interface=interface,
            self_test=cases,
            arena_bytes=arena,
            decoded_bytes=decoded,
            arena_margin=options.arena_margin,
            out_dir=staging / "firmware",
            templates_dir=resources.templates_dir(),
            compressed=lut is not None,
        )
        stages.info(f"firmware project for {board.name} in {options.out_dir / 'firmware'}")

        if options.plots:
            stages.start("Plot")
            from edgeclust.pipeline import plots

            weights = [
                (f"{w.layer_name} / {w.weight_name}", w.original_values, w.initial_centroids)
                for w in (cluster_report.clustered if cluster_report is not None else [])
            ]
            written = plots.write_plots(staging / "plots", weights=weights, sizes=sizes)
            stages.info(f"{len(written)} PNG file(s) in {options.out_dir / 'plots'}")

        stages.start("Write report")
        report = report_mod.build_report(
            version=__version__,
            model_path=model_path,
            model_sha256=sha256(model_path.read_bytes()),
            data_path=data_path,
            data_sha256=sha256(data_path.read_bytes()),
            options=options,
            board=board,
            was_wrapped=was_wrapped,
            probabilities=probabilities,
            cluster_report=cluster_report,
            folded_batch_norm=folded_batch_norm,
            weight_stats=weight_stats,
            verification=verification,
            lut=lut,
            parity=parity_result,
            sizes=sizes,
            arena_bytes=arena,
            decoding_ram_bytes=decoded,
            budget=budget,
            op_names=op_names,
            staging=staging,
        )
        report_mod.write_report(staging, report, stages.timings)
        stages.finish()
    return BuildResult(Path(options.out_dir), report)
