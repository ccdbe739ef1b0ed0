"""`edgeclust build`: the whole pipeline, from a .keras model and DATA.npz to a firmware project for a board."""

from __future__ import annotations

from pathlib import Path

import click

from edgeclust.cli.board_param import BOARD
from edgeclust.cli.options import cluster_options_from, clustering_options


@click.command("build")
@click.argument("model", metavar="MODEL.keras", type=click.Path(path_type=Path))
@click.option("--board", "-b", type=BOARD, required=True, help="Board id (see `edgeclust boards`).")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="DATA.npz: fine-tuning, calibration, parity and the firmware's self-test inputs.")
@clustering_options
@click.option("--quantize", type=click.Choice(["int8", "float32"]), default="int8", show_default=True)
@click.option("--compress", type=click.Choice(["none", "lut"]), default="none", show_default=True,
              help="lut: store clustered weights as indices into a table, decoded on the device (TFLM DECODE).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("build"),
              show_default=True, help="Output folder (refused if it exists and is not empty, unless --force).")
@click.option("--force", is_flag=True, help="Replace an existing --out folder (only once the new build succeeded).")
@click.option("--allow-over-budget", is_flag=True, help="Write the project even if the model does not fit the board.")
@click.option("--plots", is_flag=True, help="Write PNG plots next to report.json (needs matplotlib).")
@click.option("--self-test-cases", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Test inputs baked into the firmware with their expected outputs.")
@click.option("--parity-samples", type=click.IntRange(min=1), default=None,
              help="Test examples used for parity (default: all of x_test).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def command(model, board, data, quantize, compress, out_dir, force, allow_over_budget, plots,
            self_test_cases, parity_samples, quiet, **kwargs):
    """Cluster, convert, verify, check parity and the board's budget, and generate a TFLM firmware project.

    Writes OUT/report.json, the .tflite files and OUT/firmware/. Next: edgeclust flash OUT
    """
    from edgeclust.cli.progress import ProgressPrinter
    from edgeclust.cli.summary import summary_lines
    from edgeclust.pipeline.build import BuildOptions, build

    options = BuildOptions(
        board=board, out_dir=out_dir, cluster=cluster_options_from(kwargs), quantize=quantize,
        compress=compress, force=force, allow_over_budget=allow_over_budget, plots=plots,
        self_test_cases=self_test_cases, parity_samples=parity_samples,
    )
    result = build(model, data, options, on_progress=ProgressPrinter(quiet))
    click.echo("")
    for line in summary_lines(result.report):
        click.echo(line)
    click.echo("")
    click.echo(f"wrote {result.out_dir}/ (report.json, .tflite files, firmware/)")
    click.echo(f"next: edgeclust flash {result.out_dir}")
