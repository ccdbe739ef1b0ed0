"""PNG plots for `edgeclust build --plots`: weight histograms with their centroids, and bytes per stage.

matplotlib is an optional extra (`pip install 'edgeclust[plots]'`); it is imported only here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeclust.errors import InputError

SIZE_LABELS = {
    "keras_zipped": "Keras\n(zipped)",
    "keras_clustered_zipped": "Keras clustered\n(zipped)",
    "tflite_float32": ".tflite float32",
    "tflite_float32_zipped": ".tflite float32\n(zipped)",
    "tflite_int8": ".tflite int8",
    "tflite_firmware": ".tflite the\nfirmware embeds",
    "on_flash_total": "on the board's\nflash (total)",
}


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plots needs matplotlib: pip install 'edgeclust[plots]'") from None
    return plt


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text).strip("_")


def plot_weight_histogram(weights: np.ndarray, centroids: np.ndarray, title: str, path: Path) -> Path:
    """Histogram of a weight tensor before clustering, with its initial centroids as vertical lines."""
    plt = _pyplot()
    values = np.asarray(weights, dtype=np.float64).ravel()
    centres = np.unique(np.asarray(centroids, dtype=np.float64).ravel())
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    ax.hist(values, bins=min(200, max(20, values.size // 50)), color="#4C72B0", alpha=0.85, label="weights")
    for i, c in enumerate(centres):
        ax.axvline(c, color="#DD5555", linewidth=0.9, alpha=0.9, label="centroids" if i == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("weight value")
    ax.set_ylabel("count (log scale)")
    ax.set_title(f"{title}\n{values.size:,} weights, {centres.size} centroid values")
    ax.legend(loc="upper right", frameon=False)
    ax.grid(axis="y", alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def plot_sizes(sizes: dict[str, int], path: Path) -> Path:
    """Bar chart of the model's bytes at each stage, labelled in KiB."""
    plt = _pyplot()
    keys = [k for k in SIZE_LABELS if k in sizes]
    values = [sizes[k] / 1024 for k in keys]
    fig, ax = plt.subplots(figsize=(max(6, 1.35 * len(keys)), 4.5), dpi=110)
    bars = ax.bar([SIZE_LABELS[k] for k in keys], values, color="#4C72B0")
    for bar, value in zip(bars, values):
        ax.annotate(
            f"{value:,.1f} KiB",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.set_ylabel("KiB")
    ax.set_title("Model bytes per stage")
    ax.margins(y=0.12)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="y", alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def write_plots(
    folder: Path, *, weights: list[tuple[str, np.ndarray, np.ndarray]], sizes: dict[str, int]
) -> list[Path]:
    """One histogram per clustered weight (title, original values, initial centroids) and the size chart."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        plot_weight_histogram(values, centroids, title, folder / f"weights_{i:02d}_{_safe_name(title)}.png")
        for i, (title, values, centroids) in enumerate(weights)
    ]
    written.append(plot_sizes(sizes, folder / "sizes.png"))
    return written
