"""`edgeclust build`: model + data + board -> .tflite files, a firmware project and a report.

A short composition of the stages in build_steps.py over their frozen results; build_plan.py declares the
stages and so the progress counters. Everything is written once, atomically, at the end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edgeclust import __version__
from edgeclust.atomic import check_out_dir
from edgeclust.codegen.board import BoardSpec
from edgeclust.errors import ConfigError
from edgeclust.pipeline import build_steps as steps
from edgeclust.pipeline.boards import board_spec, with_ram_budget
from edgeclust.pipeline.build_plan import (
    BACKEND_CHOICES,
    COMPRESS_CHOICES,
    QUANTIZE_CHOICES,
    TITLES,
    build_titles,
    skipped_titles,
)
from edgeclust.pipeline.build_results import BuildResult
from edgeclust.pipeline.loading import is_tflite_file
from edgeclust.pipeline.progress import ProgressCallback, Stages
from edgeclust.pipeline.stages import DEFAULT_CALIBRATION_SAMPLES, ClusterOptions

__all__ = ["BuildOptions", "BuildResult", "build", "build_titles", "run_build"]


@dataclass(frozen=True)
class BuildOptions:
    """Everything `edgeclust build` can be told besides the model and data paths."""

    board: BoardSpec | str
    out_dir: Path
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    quantize: str = "int8"
    compress: str = "none"
    backend: str = "auto"
    force: bool = False
    allow_over_budget: bool = False
    plots: bool = False
    self_test_cases: int = 4
    parity_samples: int | None = None
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    model_format: str = "keras"  # "tflite": a model converted elsewhere (set by build() from the file)
    task: str = "auto"  # multiclass, binary or regression (pipeline/task.py); auto: from the model and data
    fit: object | None = None  # fit.FitPlan: the counts --fit chose (set by fit.fit_to_board)
    ram_budget: int | None = None  # RAM the firmware may use, in place of the board's (boards.with_ram_budget)

    def __post_init__(self):
        if self.model_format == "tflite":
            from edgeclust.pipeline.tflite_source import check_tflite_options

            check_tflite_options(self)
        from edgeclust.pipeline.task import TASK_CHOICES

        for name, value, choices in (
            ("task", self.task, TASK_CHOICES),
            ("quantize", self.quantize, QUANTIZE_CHOICES),
            ("compress", self.compress, COMPRESS_CHOICES),
            ("backend", self.backend, BACKEND_CHOICES),
        ):
            if value not in choices:
                raise ConfigError(f"`{name}` must be one of {', '.join(choices)}. Received: {value!r}")
        if not 1 <= self.self_test_cases <= 64:
            raise ConfigError(f"`self_test_cases` must be in 1..64. Received: {self.self_test_cases}")
        if self.parity_samples is not None and self.parity_samples < 1:
            raise ConfigError(f"`parity_samples` must be >= 1. Received: {self.parity_samples}")
        if self.ram_budget is not None and (
            isinstance(self.ram_budget, bool) or not isinstance(self.ram_budget, int) or self.ram_budget < 1
        ):
            raise ConfigError(f"`ram_budget` must be a positive number of bytes. Received: {self.ram_budget!r}")
        if not isinstance(self.calibration_samples, int) or self.calibration_samples < 1:
            raise ConfigError(f"`calibration_samples` must be an integer >= 1. Received: {self.calibration_samples!r}")

    def as_report(self, board: BoardSpec) -> dict:
        """The options as report.json records them (the board by id; where the output went is not a choice)."""
        skip = ("out_dir", "force", "board", "model_format", "fit")
        values = {k: v for k, v in asdict(replace(self, fit=None)).items() if k not in skip}
        return {"board": board.id, **values} | ({"fit": self.fit.as_report()} if self.fit is not None else {})


def build(model_path, data_path, options: BuildOptions, on_progress: ProgressCallback | None = None) -> BuildResult:
    """Run the whole pipeline and write `options.out_dir` atomically; returns the report.

    MODEL may be a .tflite converted elsewhere: clustering and conversion are then skipped."""
    options = replace(options, model_format="tflite" if is_tflite_file(model_path) else options.model_format)
    return run_build(model_path, data_path, options, Stages(build_titles(options), on_progress))


def run_build(model_path, data_path, options: BuildOptions, stages: Stages) -> BuildResult:
    """The build with progress on `stages` (whose titles hold build_titles(options), maybe after others)."""
    board = with_ram_budget(board_spec(options.board), options.ram_budget)
    check_out_dir(options.out_dir, options.force)
    ctx = steps.BuildContext(options, board, stages)
    _start(ctx, "load")
    inputs = steps.load_inputs(ctx, Path(model_path), Path(data_path))
    clustered = steps.prepare_model(ctx, inputs) if _start(ctx, "cluster", "fold") else steps.keep_model(inputs)
    if options.fit is not None:
        from edgeclust.pipeline.fit import check_fit_target

        check_fit_target(options, clustered)
    converted = steps.convert(ctx, inputs, clustered) if _start(ctx, "convert") else steps.as_converted(inputs)
    _start(ctx, "verify")
    verification = steps.verify(ctx, converted, clustered)
    _start(ctx, "layouts")
    layouts = steps.decide_layouts(ctx, converted, verification)
    _start(ctx, "lower")
    lowered = steps.lower(ctx, converted, layouts)
    _start(ctx, "parity")
    parity = steps.check_parity(ctx, inputs, clustered, converted, lowered)
    _start(ctx, "render")
    rendered = steps.render(ctx, inputs, clustered, converted, lowered)
    _start(ctx, "budget")
    priced = steps.check_budget(ctx, lowered, rendered)
    rendered = steps.with_sizes(rendered, inputs, clustered, converted, lowered, priced)
    files = dict(rendered.files) | (steps.plot(ctx, clustered, rendered) if _start(ctx, "plots") else {})
    _start(ctx, "report")
    report = steps.report_mod.build_report(
        version=__version__,
        options=options.as_report(board),
        skipped=_skipped(options, clustered.folded_batch_norm),
        inputs=inputs,
        clustered=clustered,
        converted=converted,
        verification=verification,
        lowered=lowered,
        parity=parity,
        priced=priced,
        rendered=rendered,
        files=files,
    )
    stages.finish()
    steps.write_outputs(options, files, report, stages.timings)
    return BuildResult(Path(options.out_dir), report, converted.deployed, tuple(layouts), lowered, rendered, priced)


def _skipped(options: BuildOptions, folded: bool) -> list[str]:
    """The titles of the stages not run; folding BatchNorm inside the clustering stage is not skipping it."""
    return [title for title in skipped_titles(options) if not (folded and title == TITLES["fold"])]


def _start(ctx: steps.BuildContext, *keys: str) -> bool:
    """Start the first of the declared stages `keys` that these options run; False when none runs."""
    for key in keys:
        if TITLES[key] in ctx.stages.titles:
            ctx.stages.start(TITLES[key])
            return True
    return False
