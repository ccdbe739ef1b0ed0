"""`edgeclust cluster`: cluster a .keras model's weights, fine-tune on DATA.npz, strip, save."""

from __future__ import annotations

from pathlib import Path

import click

from edgeclust.cli.options import cluster_options_from, clustering_options


@click.command("cluster")
@click.argument("model", metavar="MODEL.keras", type=click.Path(path_type=Path))
@clustering_options
@click.option("--data", type=click.Path(path_type=Path), help="DATA.npz for fine-tuning and accuracy (see README).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the clustered model (.keras).",
)
@click.option(
    "--keep-wrappers",
    is_flag=True,
    help="Save the model with its clustering wrappers (to fine-tune further) instead of stripped.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def command(model, data, output, keep_wrappers, quiet, **kwargs):
    """Cluster MODEL.keras so each weight tensor holds at most N distinct values.

    Folds BatchNorm, clusters, fine-tunes on --data (when given) and strips the wrappers; the result
    is a plain Keras model. Next: edgeclust convert OUT.keras --data DATA.npz -o model.tflite
    """
    from edgeclust.cli.progress import ProgressPrinter
    from edgeclust.errors import InputError
    from edgeclust.pipeline.files import cluster_file

    if output.suffix != ".keras":
        raise InputError(f"{output}: the output must end in .keras")
    options = cluster_options_from(kwargs)
    if options.clusters == 0:
        raise InputError("--clusters 0 means no clustering; give the number of clusters, e.g. --clusters 16")
    if data is None and kwargs["epochs"]:
        options = options.__class__(**{**options.as_dict(), "epochs": 0})
        click.echo("note: no --data given, so no fine-tuning (weights are only snapped to centroids)", err=True)
    result = cluster_file(model, data, output, options, keep_wrappers=keep_wrappers, on_progress=ProgressPrinter(quiet))
    report = result.report
    scope = "per channel" if options.per_channel else "per tensor"
    counts = sorted({w.number_of_clusters for w in report.clustered}) or [options.clusters]
    values = "/".join(map(str, counts))
    click.echo(f"clustered {len(report.clustered)} weight tensor(s) to {values} values {scope}")
    if len(counts) > 1:
        for w in report.clustered:
            click.echo(f"  {w.layer_name}/{w.weight_name}: {w.number_of_clusters} values")
    for skipped in report.skipped:
        click.echo(f"  skipped {skipped.layer_name} ({skipped.layer_class}): {skipped.reason}")
    for unchanged in report.unchanged:
        click.echo(f"  left {unchanged.layer_name}/{unchanged.weight_name} as it is: {unchanged.reason}")
    if result.recovery is not None:
        r = result.recovery
        curve = ", ".join(f"{p.accuracy:.4f}" for p in r.curve)
        click.echo(
            f"fine-tuned to within {r.max_drop_points:g} points: target {'met' if r.target_met else 'NOT met'} "
            f"(validation accuracy per epoch {curve}; kept epoch {r.best_epoch}, "
            f"{r.best.drop_points:+.2f} points below {r.reference_accuracy:.4f})"
        )
    if result.folded_batch_norm:
        click.echo("folded BatchNormalization into the layers before it")
    if result.accuracy_before is not None:
        click.echo(f"test accuracy: {result.accuracy_before:.4f} before, {result.accuracy_after:.4f} after")
    state = "with clustering wrappers" if result.wrappers_kept else "stripped, a plain Keras model"
    click.echo(f"wrote {result.output} ({state})")
    click.echo(
        f"next: edgeclust convert {result.output} --data DATA.npz -o model.tflite"
        + ("" if options.per_channel else " --per-tensor")
    )
