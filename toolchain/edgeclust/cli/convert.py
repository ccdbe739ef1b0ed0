"""`edgeclust convert`: a .keras model to a .tflite file (float32, or full int8 calibrated on DATA.npz)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("convert")
@click.argument("model", metavar="MODEL.keras", type=click.Path(path_type=Path))
@click.option(
    "--quantize",
    type=click.Choice(["int8", "float32"]),
    default="int8",
    show_default=True,
    help="Full int8 (int8 input and output) or float32.",
)
@click.option(
    "--per-tensor",
    is_flag=True,
    help="One int8 scale per weight tensor (keeps N unique values per tensor); default per channel.",
)
@click.option(
    "--data", type=click.Path(path_type=Path), help="DATA.npz; int8 draws its calibration examples from x_train."
)
@click.option(
    "--calibration-samples",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Examples of x_train the int8 converter calibrates on (drawn with a fixed seed).",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Where to write the .tflite file.")
def command(model, quantize, per_tensor, data, calibration_samples, output):
    """Convert MODEL.keras to .tflite with a batch size of 1, ready for TFLite Micro.

    A model that still carries clustering wrappers is stripped first. Next:
    edgeclust verify OUT.tflite --max-unique N
    """
    from edgeclust.errors import InputError
    from edgeclust.pipeline.loading import check_data_path, check_keras_path

    if quantize == "int8" and data is None:
        raise InputError("int8 conversion needs --data DATA.npz to calibrate on (or use --quantize float32)")
    if output.suffix != ".tflite":
        raise InputError(f"{output}: the output must end in .tflite")
    if output.is_dir():
        raise InputError(f"{output}: is a folder; give the path of the .tflite file to write")
    # cheap checks first, so a bad file fails at once, before TensorFlow is imported
    check_keras_path(model)
    if data is not None:
        check_data_path(data)

    from edgeclust.pipeline.files import convert_file

    result = convert_file(
        model, data, output, quantize=quantize, per_channel=not per_tensor, calibration_samples=calibration_samples
    )
    if result.unrolled:
        click.echo(
            f"note: unrolled the recurrent layers {', '.join(result.unrolled)} over their time steps before "
            "converting (TensorFlow's int8 calibrator crashes on their loop)"
        )
    if result.stripped_wrappers:
        click.echo("note: the model still carried clustering wrappers; they were stripped before converting")
    scheme = "" if quantize == "float32" else (" (per-tensor weights)" if per_tensor else " (per-channel weights)")
    calibrated = f", calibrated on {result.calibration_samples:,} examples" if result.calibration_samples else ""
    click.echo(f"wrote {result.output}: {quantize}{scheme}{calibrated}, {result.size_bytes:,} bytes")
    click.echo(f"ops: {', '.join(result.op_names)}")
    if result.weight_stats:
        most = max(result.weight_stats, key=lambda s: s.unique_values)
        click.echo(f"{len(result.weight_stats)} weight tensors; most unique values: {most.unique_values} ({most.name})")
    click.echo(
        f"next: edgeclust verify {result.output} --max-unique N"
        + ("" if per_tensor or quantize == "float32" else " --per-channel")
    )
