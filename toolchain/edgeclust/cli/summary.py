"""The summary table printed at the end of `edgeclust build` and `edgeclust demo`, from report.json's dict."""

from __future__ import annotations

from edgeclust.pipeline.report import stage_name

SIZE_ROWS = [
    ("keras_zipped", "Keras model, zipped (.keras)"),
    ("keras_clustered_zipped", "clustered Keras model, zipped"),
    ("tflite_float32", ".tflite float32"),
    ("tflite_float32_zipped", ".tflite float32, zipped"),
    ("tflite_int8", ".tflite int8"),
    ("tflite_int8_zipped", ".tflite int8, zipped"),
    ("tflite_firmware", ".tflite the firmware embeds (LUT: indices on flash)"),
    ("on_flash_model", "model bytes on the board's flash"),
    ("on_flash_total", "firmware on the board's flash (model + runtime + startup)"),
]


_HEADERS = {"top-1 accuracy": "top-1", "binary accuracy": "binary acc."}


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    """Rows as aligned text: the first column left-aligned, the others right-aligned, under a ruled header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row) -> str:
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return [line(header), "  ".join("-" * w for w in widths), *[line(r) for r in rows]]


def _pct(used: int, total: int) -> str:
    return f"{100.0 * used / total:.1f}%" if total else "-"


def summary_lines(report: dict) -> list[str]:
    """Accuracy per stage, unique values, sizes and the board budget, as aligned text."""
    parity = report["parity"]
    metrics = parity.get("metrics") or {"top-1 accuracy": parity["accuracy"]}
    names = list(metrics)
    task = parity.get("task", "multiclass")
    title = "Accuracy" if task != "regression" else "Error"
    lines = [f"{title} on {parity['examples']:,} test examples ({task}; {', '.join(names)})"]
    stages = list(metrics[names[0]])
    shown = (lambda v: f"{v:.4f}") if task != "regression" else (lambda v: f"{v:.5g}")
    rows = [(stage_name(k, parity), *(shown(metrics[name][k]) for name in names)) for k in stages]
    lines += _table(rows, ("stage", *(_HEADERS.get(name, name) for name in names)))

    verify = report.get("verify")
    lines.append("")
    if verify:
        scope = "per channel" if verify["per_channel"] else "per tensor"
        verdict = "PASS" if verify["passed"] else "FAIL"
        lines.append(
            f"Unique values in the deployed .tflite: at most {verify['max_unique_found']} {scope} "
            f"(limit {verify['max_unique']}): {verdict} over {verify['checked']} weight tensors"
        )
    else:
        lines.append("Unique values: not checked (no clustering requested)")

    sizes = report["sizes"]
    lines.append("")
    lines += _table([(label, f"{sizes[key]:,}") for key, label in SIZE_ROWS if key in sizes], ("size", "bytes"))

    budget = report["budget"]
    lines.append("")
    lines.append(
        f"Board {report['board']['id']} ({report['board']['name']}): flash {budget['flash_used']:,} of "
        f"{budget['flash_total']:,} bytes ({_pct(budget['flash_used'], budget['flash_total'])}), RAM "
        f"{budget['ram_used']:,} of {budget['ram_total']:,} bytes ({_pct(budget['ram_used'], budget['ram_total'])}): "
        + ("fits" if budget["fits"] else "DOES NOT FIT")
    )
    return lines
