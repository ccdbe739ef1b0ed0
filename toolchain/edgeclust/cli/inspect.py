"""`edgeclust inspect`: unique values, sparsity and bytes of every weight tensor in a .tflite file."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

NAME_WIDTH = 44


@click.command("inspect")
@click.argument("model", metavar="MODEL.tflite", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def command(model, as_json):
    """Show every weight tensor of MODEL.tflite: shape, dtype, the op that uses it, unique values per
    tensor and the most in one channel, sparsity and bytes.

    Next: edgeclust verify MODEL.tflite --max-unique N [--per-channel]
    """
    from edgeclust.pipeline.tflite_files import inspect_file

    inspected = inspect_file(model)
    parsed, stats = inspected.model, inspected.weights
    if as_json:
        click.echo(
            json.dumps(
                {
                    "file": str(model),
                    "size_bytes": parsed.size_bytes,
                    "schema_version": parsed.version,
                    "op_names": list(parsed.op_names),
                    "weights": [asdict(s) for s in stats],
                },
                indent=2,
            )
        )
        return
    click.echo(
        f"{model}: {parsed.size_bytes:,} bytes, {len(parsed.operators)} operators ({', '.join(parsed.op_names)})"
    )
    if not stats:
        click.echo("no weight tensors (no CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ... with constant weights)")
        return
    header = (
        f"{'weight tensor':<{NAME_WIDTH}} {'op':<18} {'shape':<14} {'dtype':<8} "
        f"{'unique':>7} {'max/ch':>7} {'zeros':>7} {'bytes':>10}"
    )
    click.echo(header)
    for s in stats:
        shape = "x".join(map(str, s.shape)) or "scalar"
        stored = " (LUT)" if s.stored_as == "lut" else ""
        click.echo(
            f"{_short(s.name):<{NAME_WIDTH}} {s.consumer:<18} {shape:<14} {s.dtype.lower():<8} "
            f"{s.unique_values:>7,} {s.max_unique_per_channel:>7,} {s.sparsity:>7.1%} {s.nbytes:>10,}{stored}"
        )
    click.echo(
        f"{len(stats)} weight tensors, {sum(s.nbytes for s in stats):,} bytes of weights; "
        f"max/ch counts along the quantized (or output-channel) axis"
    )


def _short(name: str) -> str:
    return name if len(name) <= NAME_WIDTH else "..." + name[-(NAME_WIDTH - 3) :]
