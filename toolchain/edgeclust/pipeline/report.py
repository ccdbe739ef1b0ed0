"""The build report: report.json (deterministic; timings kept apart) and the summary table the CLI prints."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path

import numpy as np

from edgeclust.pipeline.training import accuracy

STAGE_NAMES = {
    "keras": "Keras, original",
    "keras_clustered": "Keras, clustered + stripped",
    "litert_float32": "LiteRT, float32 .tflite",
    "litert_int8": "LiteRT, int8 .tflite",
    "tflm_int8": "TFLM, int8 .tflite",
    "tflm_int8_lut": "TFLM, int8 + LUT .tflite",
}


def _top1(outputs: np.ndarray) -> np.ndarray:
    return np.argmax(outputs.reshape(len(outputs), -1), axis=-1)


def parity_section(*, labels, keras_original, keras_clustered, litert_float, litert_int8, tflm_int8, tflm_lut) -> dict:
    """Accuracy per stage and the agreements that matter: float vs Keras, LiteRT vs TFLM, LUT vs int8."""
    outputs = {
        "keras": keras_original,
        "keras_clustered": keras_clustered,
        "litert_float32": litert_float,
        "litert_int8": litert_int8,
        "tflm_int8": tflm_int8,
        "tflm_int8_lut": tflm_lut,
    }
    present = {k: v for k, v in outputs.items() if v is not None}
    section: dict = {
        "examples": int(len(labels)),
        "accuracy": {k: round(accuracy(v, labels), 6) for k, v in present.items()},
        "float32_top1_equals_keras": int(np.sum(_top1(litert_float) == _top1(keras_clustered))),
        "float32_max_abs_diff_vs_keras": float(
            np.max(np.abs(litert_float.astype(np.float64) - keras_clustered.astype(np.float64)))
        ),
    }
    if litert_int8 is not None and tflm_int8 is not None:
        diff = np.abs(litert_int8.astype(np.int32) - tflm_int8.astype(np.int32))
        section["int8_litert_vs_tflm_max_lsb"] = int(diff.max())
        section["int8_litert_vs_tflm_outputs_differing"] = int(np.count_nonzero(diff))
        section["int8_top1_litert_equals_tflm"] = int(np.sum(_top1(litert_int8) == _top1(tflm_int8)))
    if tflm_lut is not None:
        section["lut_equals_int8_bit_for_bit"] = bool(np.array_equal(tflm_lut, tflm_int8))
    return section


def parity_lines(section: dict) -> list[str]:
    n = section["examples"]
    lines = [f"{STAGE_NAMES[k]}: top-1 accuracy {v:.4f} on {n:,} examples" for k, v in section["accuracy"].items()]
    lines.append(f"float32 .tflite top-1 equals stripped Keras on {section['float32_top1_equals_keras']:,} of {n:,}")
    if "int8_litert_vs_tflm_max_lsb" in section:
        lines.append(
            f"int8: LiteRT and TFLM differ by at most {section['int8_litert_vs_tflm_max_lsb']} LSB "
            f"({section['int8_litert_vs_tflm_outputs_differing']:,} outputs differ)"
        )
    if "lut_equals_int8_bit_for_bit" in section:
        lines.append(
            "TFLM on the LUT model equals TFLM on the int8 model bit for bit"
            if section["lut_equals_int8_bit_for_bit"]
            else "TFLM on the LUT model DIFFERS from TFLM on the int8 model"
        )
    return lines


def jsonable(value):
    """Dataclasses, numpy values, paths and enums as plain JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float):
        return round(value, 8)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and type(value).__module__.startswith("edgeclust"):
        return value.value
    return value


def file_hashes(folder: Path, skip: set[str]) -> dict[str, str]:
    """sha256 of every file under `folder` (relative POSIX paths, sorted), except names in `skip`."""
    hashes = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel not in skip:
            hashes[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def write_report(folder: Path, report: dict, timings: dict[str, float]) -> None:
    """report.json (byte-identical for identical inputs) and timings.json (wall times, which are not)."""
    (folder / "report.json").write_text(json.dumps(jsonable(report), indent=2, sort_keys=True) + "\n")
    (folder / "timings.json").write_text(json.dumps({"seconds": timings}, indent=2, sort_keys=True) + "\n")


def _clustering_section(cluster_report, folded_batch_norm: bool) -> dict | None:
    if cluster_report is None:
        return {"folded_batch_norm": folded_batch_norm, "clustered": [], "skipped": []} if folded_batch_norm else None
    return {
        "folded_batch_norm": folded_batch_norm,
        "clustered": [
            {
                "layer": w.layer_name,
                "weight": w.weight_name,
                "shape": list(w.shape),
                "clusters": w.number_of_clusters,
                "per_channel": w.per_channel,
            }
            for w in cluster_report.clustered
        ],
        "skipped": [
            {"layer": s.layer_name, "class": s.layer_class, "reason": s.reason} for s in cluster_report.skipped
        ],
    }


def _verify_section(verification, weight_stats) -> dict | None:
    if verification is None:
        return None
    found = [verification.count(s) for s in weight_stats]
    return {
        "passed": verification.passed,
        "max_unique": verification.max_unique,
        "per_channel": verification.per_channel,
        "checked": verification.checked,
        "max_unique_found": max(found, default=0),
        "failures": [s.name for s in verification.failures],
    }


def _lut_section(lut, decoding_ram_bytes: int) -> dict | None:
    if lut is None:
        return None
    return {
        "compressed_tensors": list(lut.compressed_tensors),
        "skipped_tensors": list(lut.skipped_tensors),
        "decoded_bytes": lut.decoded_bytes,  # all decoded tensors together
        "decoding_ram_bytes": decoding_ram_bytes,  # measured: arena with LUT minus arena without
    }


def build_report(*, version, model_path, model_sha256, data_path, data_sha256, options, board, was_wrapped,
                 probabilities, cluster_report, folded_batch_norm, weight_stats, verification, lut, parity, sizes,
                 arena_bytes, budget, op_names, staging: Path, decoding_ram_bytes: int = 0) -> dict:
    """Everything a build decided and measured, in plain values (no timings: they live in timings.json)."""
    return jsonable({
        "edgeclust_version": version,
        "inputs": {
            "model": {"path": str(model_path), "sha256": model_sha256},
            "data": {"path": str(data_path), "sha256": data_sha256},
        },
        "options": {k: v for k, v in asdict(options).items() if k not in ("out_dir", "force")},
        "board": {
            "id": board.id,
            "name": board.name,
            "mcu": board.mcu,
            "flash_bytes": board.flash_bytes,
            "ram_bytes": board.ram_bytes,
        },
        "model_had_clustering_wrappers": was_wrapped,
        "outputs_are_probabilities": probabilities,
        "clustering": _clustering_section(cluster_report, folded_batch_norm),
        "weights": list(weight_stats),
        "verify": _verify_section(verification, weight_stats),
        "lut": _lut_section(lut, decoding_ram_bytes),
        "parity": parity,
        "sizes": sizes,
        "tflm_arena_bytes": arena_bytes,
        "budget": budget,
        "ops": list(op_names),
        "files": file_hashes(staging, skip={"report.json", "timings.json"}),
    })
