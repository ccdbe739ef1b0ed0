"""`edgeclust build`: the whole pipeline, from a .keras model and DATA.npz to a firmware project for a board."""

from __future__ import annotations

from pathlib import Path

import click

from edgeclust.cli.board_param import BOARD
from edgeclust.cli.options import cluster_options_from, clustering_options
from edgeclust.pipeline.build_plan import BACKEND_CHOICES, COMPRESS_CHOICES, QUANTIZE_CHOICES
from edgeclust.pipeline.task import TASK_CHOICES


@click.command("build")
@click.argument("model", metavar="MODEL.keras|MODEL.tflite", type=click.Path(path_type=Path))
@click.option("--board", "-b", type=BOARD, required=True, help="Board id (see `edgeclust boards`).")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="DATA.npz: fine-tuning, calibration, parity and the firmware's self-test inputs.",
)
@clustering_options
@click.option(
    "--task",
    type=click.Choice(TASK_CHOICES),
    default="auto",
    show_default=True,
    help="What the model is for: multiclass (integer or one-hot labels), binary (0/1 labels, sigmoid outputs) or "
    "regression (float targets of the output's shape, y = x for an autoencoder); auto decides from the model's "
    "output, its compiled loss and the labels. Sets the fine-tuning loss (the model's own when it has one), the "
    "metric (top-1, binary accuracy, MSE) and what --max-drop counts.",
)
@click.option("--quantize", type=click.Choice(QUANTIZE_CHOICES), default="int8", show_default=True)
@click.option(
    "--backend",
    type=click.Choice(BACKEND_CHOICES),
    default="auto",
    show_default=True,
    help="What runs the model on the board: tflm (TFLite Micro's interpreter), native (generated C "
    "kernels with packed weights), or auto (native when it supports every op, else tflm).",
)
@click.option(
    "--compress",
    type=click.Choice(COMPRESS_CHOICES),
    default="none",
    show_default=True,
    help="lut: with tflm, store clustered weights as 1-7-bit indices into tables, decoded at start-up "
    "into RAM (TFLM DECODE); native always packs them and decodes in its kernels.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build"),
    show_default=True,
    help="Output folder (refused if it exists and is not empty, unless --force).",
)
@click.option("--force", is_flag=True, help="Replace an existing --out folder (only once the new build succeeded).")
@click.option("--allow-over-budget", is_flag=True, help="Write the project even if the model does not fit the board.")
@click.option("--plots", is_flag=True, help="Write PNG plots next to report.json (needs matplotlib).")
@click.option(
    "--self-test-cases",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Test inputs baked into the firmware with their expected outputs.",
)
@click.option(
    "--parity-samples",
    type=click.IntRange(min=1),
    default=None,
    help="Test examples used for parity (default: all of x_test).",
)
@click.option(
    "--calibration-samples",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Examples of x_train the int8 converter calibrates on (drawn with a fixed seed).",
)
@click.option(
    "--fit",
    is_flag=True,
    help="Choose each layer's number of clusters (2 to 128, powers of two, or int8) so the weights fit the flash "
    "budget with the least validation loss (measured per layer without fine-tuning), then build once with them as "
    "--layer rules.",
)
@click.option(
    "--flash-budget",
    type=click.IntRange(min=1),
    default=None,
    metavar="BYTES",
    help="With --fit: flash for the model's weights, tables and biases (default: the board's flash less a "
    "code-size estimate).",
)
@click.option(
    "--ram-budget",
    type=click.IntRange(min=1),
    default=None,
    metavar="BYTES",
    help="RAM the firmware may use (arena, stack and statics) in place of the board's: a smaller part of the "
    "family, or RAM the application keeps. Checked like the board's own; the linker script gets it too.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def command(
    model,
    board,
    data,
    task,
    quantize,
    backend,
    compress,
    out_dir,
    force,
    allow_over_budget,
    plots,
    self_test_cases,
    parity_samples,
    calibration_samples,
    fit,
    flash_budget,
    ram_budget,
    quiet,
    **kwargs,
):
    """Cluster, convert, verify, check parity and the board's budget, and generate a firmware project.

    Writes OUT/report.json, the .tflite files and OUT/firmware/. Next: edgeclust flash OUT
    """
    from edgeclust.cli.progress import ProgressPrinter
    from edgeclust.cli.summary import summary_lines
    from edgeclust.pipeline.build import BuildOptions, build
    from edgeclust.pipeline.loading import is_tflite_file

    if is_tflite_file(model):
        kwargs["clusters"] = _clusters_for_tflite(click.get_current_context(), kwargs["clusters"])
    options = BuildOptions(
        board=board,
        out_dir=out_dir,
        cluster=cluster_options_from(kwargs),
        quantize=quantize,
        backend=backend,
        compress=compress,
        force=force,
        allow_over_budget=allow_over_budget,
        plots=plots,
        self_test_cases=self_test_cases,
        parity_samples=parity_samples,
        calibration_samples=calibration_samples,
        task=task,
        ram_budget=ram_budget,
    )
    if flash_budget is not None and not fit:
        raise click.UsageError("--flash-budget goes with --fit (the board's own flash is checked in every build)")
    if fit:
        from edgeclust.pipeline.fit import fit_to_board

        if is_tflite_file(model):
            raise click.UsageError("--fit needs the Keras model (it clusters and fine-tunes); pass MODEL.keras")
        result = fit_to_board(
            model, data, options, flash_budget=flash_budget, on_progress=ProgressPrinter(quiet), on_line=click.echo
        ).build
    else:
        result = build(model, data, options, on_progress=ProgressPrinter(quiet))
    click.echo("")
    for line in summary_lines(result.report):
        click.echo(line)
    click.echo("")
    if result.lowered is not None and result.priced is not None:  # what the board pays per backend, as the demo
        from edgeclust.pipeline.comparison import comparison_lines, price_build_on_every_backend

        for line in comparison_lines(price_build_on_every_backend(result), result.priced.board):
            click.echo(line)
        click.echo("")
    click.echo(f"wrote {result.out_dir}/ (report.json, .tflite files, firmware/)")
    click.echo(f"next: edgeclust flash {result.out_dir}")


def _clusters_for_tflite(ctx: click.Context, clusters: int) -> int:
    """A .tflite input: refuse the options given for clustering or converting; --clusters only verifies (else 0)."""
    from click.core import ParameterSource

    from edgeclust.pipeline.tflite_source import refuse_keras_only

    given = {name for name in ctx.params if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT}
    refuse_keras_only(given)  # ConfigError: exit code 2, as a usage error
    if "per_channel" in given and "clusters" not in given:
        raise click.UsageError(
            "--per-channel needs --clusters N for a .tflite model (it only scopes the check)", ctx=ctx
        )
    return clusters if "clusters" in given else 0
