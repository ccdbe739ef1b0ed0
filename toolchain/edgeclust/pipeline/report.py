"""The build report: report.json (deterministic; timings kept apart) and the parity lines the build prints
(the CLI's summary table is cli/summary.py, from report.json)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path

import numpy as np

STAGE_NAMES = {
    "keras": "Keras, original",
    "keras_clustered": "Keras, clustered + stripped",
    "litert_float32": "LiteRT, float32 .tflite",
    "litert_int8": "LiteRT, int8 .tflite",
    "tflm_int8": "TFLM, int8 .tflite",
    "tflm_float32": "TFLM, float32 .tflite",
    "firmware": "the firmware's model (backend host oracle)",
}


def _top1(outputs: np.ndarray) -> np.ndarray:
    return np.argmax(outputs.reshape(len(outputs), -1), axis=-1)


def parity_section(
    *,
    labels,
    keras_original,
    keras_clustered,
    litert_float,
    litert_int8,
    tflm,
    tflm_key: str,
    firmware,
    backend: str,
    task=None,
    output=None,
) -> dict:
    """The task's metrics per stage and the agreements that matter: float vs Keras, LiteRT vs TFLM, firmware vs
    TFLM. Integer outputs are dequantised with `output` (the deployed model's output TensorSpec) before any
    metric; classifiers compare decisions (top-1, or thresholded), regression compares values (max and mean
    absolute difference)."""
    from edgeclust.pipeline.task import Task

    task = task or Task("multiclass", "integer", False, "assumed")
    outputs = {
        "keras": keras_original,
        "keras_clustered": keras_clustered,
        "litert_float32": litert_float,
        "litert_int8": litert_int8,
        tflm_key: tflm,
        "firmware": firmware,
    }
    present = {k: v for k, v in outputs.items() if v is not None}
    real = {k: _real(v, output) for k, v in present.items()}
    scores = {k: task.scores(v, labels) for k, v in real.items()}
    names = list(next(iter(scores.values())).keys()) if scores else [task.metric]
    section: dict = {
        "examples": int(len(labels)),
        "backend": backend,
        "task": task.kind,
        "metric": task.metric,
        "metrics": {name: {k: round(v[name], 6) for k, v in scores.items()} for name in names},
        "firmware_equals_tflm_bit_for_bit": bool(np.array_equal(np.asarray(firmware), np.asarray(tflm))),
    }
    if task.classification:  # the task's accuracy, under the name earlier reports used
        section["accuracy"] = section["metrics"][task.metric]
    if litert_float is not None and keras_clustered is not None:  # no Keras model for a .tflite input
        if task.classification:
            section["float32_decisions_equal_keras"] = _same_decisions(task, real["litert_float32"], keras_clustered)
        if task.kind == "multiclass":
            section["float32_top1_equals_keras"] = section["float32_decisions_equal_keras"]
        section["float32_max_abs_diff_vs_keras"] = float(
            np.max(np.abs(litert_float.astype(np.float64) - keras_clustered.astype(np.float64)))
        )
    if keras_clustered is not None and litert_int8 is not None:  # what int8 costs, in the outputs' own units
        diff = np.abs(real[tflm_key].astype(np.float64) - np.asarray(keras_clustered, np.float64).reshape(tflm.shape))
        section["int8_max_abs_diff_vs_keras"] = float(diff.max()) if diff.size else 0.0
        section["int8_mean_abs_diff_vs_keras"] = float(diff.mean()) if diff.size else 0.0
    if litert_int8 is not None:
        diff = np.abs(litert_int8.astype(np.int32) - tflm.astype(np.int32))
        section["int8_litert_vs_tflm_max_lsb"] = int(diff.max())
        section["int8_litert_vs_tflm_outputs_differing"] = int(np.count_nonzero(diff))
        if task.classification:
            section["int8_decisions_litert_equal_tflm"] = _same_decisions(task, real["litert_int8"], real[tflm_key])
        if task.kind == "multiclass":
            section["int8_top1_litert_equals_tflm"] = section["int8_decisions_litert_equal_tflm"]
    return section


def _real(outputs, spec) -> np.ndarray:
    """Outputs as real values: integer outputs dequantised with the output's scale and zero point."""
    outputs = np.asarray(outputs)
    if spec is not None and outputs.dtype.kind in "iu":
        from edgeclust.tflite.parity import dequantize

        return dequantize(outputs, spec)
    return outputs.astype(np.float32, copy=False)


def _same_decisions(task, a, b) -> int:
    """On how many examples two runs decide the same (every output of the example, for several 0/1 outputs)."""
    da, db = task.decisions(a), task.decisions(b)
    if da.ndim == 1:
        return int(np.sum(da == db))
    return int(np.sum(np.all(da.reshape(len(da), -1) == db.reshape(len(db), -1), axis=1)))


def parity_lines(section: dict) -> list[str]:
    """The parity section as progress lines."""
    n = section["examples"]
    lines = []
    metrics = section.get("metrics") or {"top-1 accuracy": section["accuracy"]}
    for key in next(iter(metrics.values())):
        values = ", ".join(f"{name} {metrics[name][key]:.4f}" for name in metrics)
        lines.append(f"{stage_name(key, section)}: {values} on {n:,} examples")
    if "float32_decisions_equal_keras" in section:
        same = section["float32_decisions_equal_keras"]
        what = "top-1" if section.get("task", "multiclass") == "multiclass" else "decisions"
        lines.append(f"float32 .tflite {what} equal stripped Keras on {same:,} of {n:,}")
    elif "float32_max_abs_diff_vs_keras" in section:
        lines.append(
            f"float32 .tflite differs from stripped Keras by at most {section['float32_max_abs_diff_vs_keras']:.3g}"
        )
    if "int8_max_abs_diff_vs_keras" in section and section.get("task") == "regression":
        lines.append(
            "int8 outputs (dequantised) differ from stripped Keras by at most "
            f"{section['int8_max_abs_diff_vs_keras']:.4g} (mean {section['int8_mean_abs_diff_vs_keras']:.4g})"
        )
    if "int8_litert_vs_tflm_max_lsb" in section:
        lines.append(
            f"int8: LiteRT and TFLM differ by at most {section['int8_litert_vs_tflm_max_lsb']} LSB "
            f"({section['int8_litert_vs_tflm_outputs_differing']:,} outputs differ)"
        )
    same = section["firmware_equals_tflm_bit_for_bit"]
    lines.append(
        f"the {section['backend']} firmware model {'equals' if same else 'DIFFERS from'} TFLM on the "
        "deployed .tflite bit for bit"
    )
    return lines


def stage_name(key: str, section: dict) -> str:
    """A parity stage's name for a reader ("firmware" names the backend)."""
    if key == "firmware":
        return f"{section.get('backend', 'backend')}: {STAGE_NAMES['firmware']}"
    return STAGE_NAMES.get(key, key)


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


def report_files(report: dict, timings: dict[str, float]) -> dict[str, bytes]:
    """report.json (byte-identical for identical inputs) and timings.json (wall times, which are not)."""
    return {
        "report.json": (json.dumps(jsonable(report), indent=2, sort_keys=True) + "\n").encode(),
        "timings.json": (json.dumps({"seconds": timings}, indent=2, sort_keys=True) + "\n").encode(),
    }


def _clustering_section(cluster_report, folded_batch_norm: bool, recovery=None) -> dict | None:
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
        # weights that already held at most N values: left as they are, still checked against their N
        "unchanged": [
            {
                "layer": u.layer_name,
                "weight": u.weight_name,
                "shape": list(u.shape),
                "clusters": u.number_of_clusters,
                "per_channel": u.per_channel,
                "reason": u.reason,
            }
            for u in cluster_report.unchanged
        ],
        # --max-drop: the validation accuracy per epoch, the epoch kept, and whether the target was met
        "fine_tuning": None if recovery is None else recovery.as_dict(),
    }


def _verify_section(verification, weight_stats) -> dict | None:
    if verification is None:
        return None
    if hasattr(verification, "checks"):  # per-layer counts (expected_counts.LimitsResult): each tensor's own N
        checked = [c for c in verification.checks if c.limit is not None]
        return {
            "passed": verification.passed,
            "max_unique": None,
            "per_channel": verification.per_channel,
            "checked": len(checked),
            "limits": {c.name: {"layer": c.layer, "limit": c.limit, "unique": c.count} for c in checked},
            "max_unique_found": max((c.count for c in verification.checks), default=0),
            "failures": [c.name for c in verification.failures],
        }
    found = [verification.count(s) for s in weight_stats]
    return {
        "passed": verification.passed,
        "max_unique": verification.max_unique,
        "per_channel": verification.per_channel,
        "checked": verification.checked,
        "max_unique_found": max(found, default=0),
        "failures": [s.name for s in verification.failures],
    }


def build_report(
    *,
    version,
    options: dict,
    inputs,
    skipped: list[str] = (),
    clustered,
    converted,
    verification,
    lowered,
    parity,
    priced,
    rendered,
    files: dict[str, bytes],
) -> dict:
    """Everything a build decided and measured, in plain values (no timings: they live in timings.json)."""
    board, low = priced.board, lowered.result
    return jsonable(
        {
            "edgeclust_version": version,
            "inputs": {
                "model": {
                    "path": str(inputs.model_path),
                    "sha256": inputs.model_sha256,
                    "format": inputs.model_format,
                },
                "data": {"path": str(inputs.data_path), "sha256": inputs.data_sha256},
            },
            "options": options,
            "skipped_stages": list(skipped),
            "board": {
                "id": board.id,
                "name": board.name,
                "mcu": board.mcu,
                "flash_bytes": board.flash_bytes,
                "ram_bytes": board.ram_bytes,
            },
            "model_had_clustering_wrappers": inputs.was_wrapped,
            "outputs_are_probabilities": inputs.probabilities,
            "task": _task_section(inputs.task),
            "clustering": _clustering_section(clustered.report, clustered.folded_batch_norm, clustered.recovery),
            "conversion": None
            if inputs.model_format == "tflite"
            else {"per_channel": converted.per_channel, "calibration_samples": converted.calibration_samples},
            "weights": list(verification.weight_stats),
            # each weight tensor's Keras layer, found by content: `edgeclust verify --report` reads it
            "weight_layers": dict(sorted(verification.layers.items())),
            "verify": _verify_section(verification.result, verification.weight_stats),
            "layouts": [_layout_entry(layout) for layout in lowered.layouts],
            "backend": {"name": low.backend, "chosen": lowered.why or "asked for", **low.summary},
            "parity": parity.section,
            "sizes": rendered.sizes,
            "arena_bytes": low.arena_bytes,
            "budget": _budget_section(priced.cost),
            "ops": list(low.op_names),
            "files": {name: hashlib.sha256(content).hexdigest() for name, content in sorted(files.items())},
        }
    )


def _task_section(task) -> dict | None:
    """What the model is for, as decided (pipeline/task.py): the metric the summary and --max-drop use."""
    if task is None:
        return None
    return {
        "kind": task.kind,
        "labels": task.labels,
        "metric": task.metric,
        "from_logits": task.from_logits,
        "decided": task.why,
        "loss": task.loss if isinstance(task.loss, (str, dict, type(None))) else str(task.loss),
    }


def _layout_entry(layout) -> dict:
    """One weight layout in report.json: where, how many bits, per tensor or per channel."""
    return {
        "name": layout.name,
        "subgraph": layout.subgraph,
        "tensor": layout.tensor,
        "bits": layout.bits,
        "axis": layout.axis,
        "unique_values": layout.unique_values,
        "entries": layout.entries,
        "packed_index_bytes": layout.packed_index_bytes,
        "table_bytes": layout.table_bytes,
    }


def _budget_section(cost) -> dict:
    """The board's budget: used and available, whether it fits, and the parts."""
    return {
        "board_id": cost.board_id,
        "flash_used": cost.flash_used,
        "flash_total": cost.flash_total,
        "ram_used": cost.ram_used,
        "ram_total": cost.ram_total,
        "fits": cost.fits,
        "flash_fits": cost.flash_fits,
        "ram_fits": cost.ram_fits,
        "flash_parts": dict(cost.flash_parts),
        "ram_parts": dict(cost.ram_parts),
        "measured": cost.measured,
    }
