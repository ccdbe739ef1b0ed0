"""The file-to-file steps behind `edgeclust cluster` and `edgeclust convert`."""

from __future__ import annotations

import datetime
import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgeclust.atomic import write_bytes_atomic
from edgeclust.pipeline.loading import load_data_for, load_keras_model
from edgeclust.pipeline.progress import ProgressCallback, Stages
from edgeclust.pipeline.stages import (
    DEFAULT_CALIBRATION_SAMPLES,
    ClusterOptions,
    calibration_count,
    cluster_model,
    convert_model,
    strip_if_clustered,
)
from edgeclust.pipeline.training import accuracy, predict


@dataclass(frozen=True)
class ClusterFileResult:
    output: Path
    report: object | None
    folded_batch_norm: bool
    accuracy_before: float | None
    accuracy_after: float | None
    wrappers_kept: bool
    recovery: object | None = None  # training.Recovery, with max_drop


def _reproducible_date() -> tuple[datetime.datetime, tuple[int, ...]]:
    """SOURCE_DATE_EPOCH when set (the reproducible-builds convention), else the zip epoch 1980-01-01."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
        if epoch and epoch.isdigit()
        else datetime.datetime(1980, 1, 1, tzinfo=datetime.UTC)
    )
    return when, (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)


def _without_training_state(model):
    """The same model, uncompiled: an optimizer's auto-numbered name ("adam_2") would make two saves differ."""
    if getattr(model, "optimizer", None) is None:
        return model
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def keras_archive_bytes(model) -> bytes:
    """The model as .keras bytes, reproducible: Keras stamps the save time into the archive, we fix it, and
    leave out the optimizer (fine-tuning state, which nothing downstream needs)."""
    model = _without_training_state(model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        original = zipfile.ZipFile(path)
        when, zip_time = _reproducible_date()
        out = io.BytesIO()
        with original, zipfile.ZipFile(out, "w") as normalized:
            for info in original.infolist():
                content = original.read(info)
                if info.filename == "metadata.json":
                    metadata = json.loads(content)
                    metadata["date_saved"] = when.strftime("%Y-%m-%d@%H:%M:%S")
                    content = json.dumps(metadata).encode()
                entry = zipfile.ZipInfo(info.filename, date_time=zip_time)
                entry.compress_type = info.compress_type
                entry.external_attr = info.external_attr
                normalized.writestr(entry, content)
        return out.getvalue()


def save_keras_atomic(model, output: Path) -> None:
    """Save `model` as a reproducible .keras file, written atomically."""
    write_bytes_atomic(output, keras_archive_bytes(model))


def cluster_file(
    model_path,
    data_path,
    output,
    options: ClusterOptions,
    *,
    keep_wrappers: bool = False,
    on_progress: ProgressCallback | None = None,
) -> ClusterFileResult:
    """Load, (fold BN,) cluster, fine-tune, (strip,) save; accuracy before and after when data is given."""
    from edgeclust import cluster

    titles = ["Load model and data", "Cluster and fine-tune", "Save"]
    stages = Stages(titles, on_progress)
    stages.start("Load model and data")
    model = load_keras_model(model_path)
    model, _ = strip_if_clustered(model, stages)
    data = load_data_for(data_path, model) if data_path is not None else None
    before = accuracy(predict(model, data.x_test), data.y_test) if data is not None else None

    stages.start("Cluster and fine-tune")
    if keep_wrappers:
        result = cluster_model(model, data, options, stages, strip=False)
    else:
        result = cluster_model(model, data, options, stages)
    after = accuracy(predict(result.model, data.x_test), data.y_test) if data is not None else None

    stages.start("Save")
    save_keras_atomic(result.model, Path(output))
    stages.finish()
    return ClusterFileResult(
        Path(output),
        result.report,
        result.folded_batch_norm,
        before,
        after,
        keep_wrappers and cluster.is_clustered(result.model),
        result.recovery,
    )


@dataclass(frozen=True)
class ConvertFileResult:
    output: Path
    size_bytes: int
    stripped_wrappers: bool
    op_names: tuple[str, ...]
    weight_stats: list
    calibration_samples: int  # examples the int8 converter calibrated on (0 for float32)
    unrolled: tuple[str, ...] = ()  # recurrent layers unrolled before converting


def convert_file(
    model_path,
    data_path,
    output,
    *,
    quantize: str,
    per_channel: bool,
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
) -> ConvertFileResult:
    """Load (strip if wrapped), convert, write the .tflite atomically, inspect it."""
    from edgeclust.tflite import flatbuffer, inspect

    model = load_keras_model(model_path)
    model, stripped = strip_if_clustered(model)
    representative = load_data_for(data_path, model).x_train if data_path is not None else None
    from edgeclust.tflite.convert import rolled_recurrent_layers

    unrolled = tuple(rolled_recurrent_layers(model))
    blob = convert_model(
        model,
        quantize=quantize,
        representative=representative,
        per_channel=per_channel,
        calibration_samples=calibration_samples,
    )
    write_bytes_atomic(output, blob)
    used = calibration_count(representative, calibration_samples) if quantize == "int8" else 0
    return ConvertFileResult(
        Path(output),
        len(blob),
        stripped,
        tuple(flatbuffer.read_model(blob).op_names),
        inspect.inspect_weights(blob),
        used,
        unrolled,
    )
