"""What the model is for, decided once from its output, its compiled loss and the data: the task.

- multiclass: integer class labels (n,) in [0, outputs) or one-hot rows (n, outputs); metric top-1 accuracy
- binary: labels 0/1 of the output's shape (one sigmoid output, or several independent ones); metric binary
  accuracy (the output thresholded at 0.5, or at 0 for logits)
- regression: float targets of the output's shape (y = x for an autoencoder); metrics MSE (the one `--max-drop`
  reads) and MAE

The task decides the fine-tuning loss (the model's own compiled loss when the file has one), what `--max-drop`
counts (accuracy points; for regression, how far the validation MSE may rise), how parity compares outputs and
what the summary and report.json call the metric. numpy only; Keras only inside the functions that build a loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeclust.errors import DataError

TASK_CHOICES = ("auto", "multiclass", "binary", "regression")
METRICS = {"multiclass": "top-1 accuracy", "binary": "binary accuracy", "regression": "MSE"}

_LOSS_KINDS = (  # fragments of a loss's name (lower case, no underscores) -> task, first match wins
    ("sparsecategorical", "multiclass"),
    ("categorical", "multiclass"),
    ("binary", "binary"),
    ("hinge", "binary"),
    ("meansquared", "regression"),
    ("meanabsolute", "regression"),
    ("mse", "regression"),
    ("mae", "regression"),
    ("mape", "regression"),
    ("msle", "regression"),
    ("huber", "regression"),
    ("logcosh", "regression"),
    ("cosine", "regression"),
)


@dataclass(frozen=True)
class Task:
    """The model's task, how its labels are given, whether its outputs are logits, and why so decided."""

    kind: str  # "multiclass" | "binary" | "regression"
    labels: str  # "integer" | "one_hot" | "binary" | "float"
    from_logits: bool
    why: str
    loss: object = None  # the model's own compiled loss (its Keras config: a name or a dict), if the file has one

    @property
    def metric(self) -> str:
        """The metric --max-drop reads and the summary shows first."""
        return METRICS[self.kind]

    @property
    def classification(self) -> bool:
        return self.kind != "regression"

    def describe(self) -> str:
        labels = {"integer": "integer labels", "one_hot": "one-hot labels", "binary": "0/1 labels"}
        given = labels.get(self.labels, "float targets")
        outputs = "" if self.kind == "regression" else (", logits" if self.from_logits else ", probabilities")
        return f"task: {self.kind} ({given}{outputs}; metric {self.metric}): {self.why}"

    # -- metrics over real-valued outputs (dequantised) ------------------------------------------------------
    def scores(self, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """{metric name: value} of real-valued `outputs` against `labels` (the first is the task's metric)."""
        outputs = np.asarray(outputs, dtype=np.float64)
        n = len(outputs)
        if self.kind == "multiclass":
            classes = class_labels(labels)
            return {"top-1 accuracy": float(np.mean(np.argmax(outputs.reshape(n, -1), axis=-1) == classes))}
        if self.kind == "binary":
            decided = self.decisions(outputs).reshape(n, -1)
            return {"binary accuracy": float(np.mean(decided == (np.asarray(labels).reshape(n, -1) > 0.5)))}
        diff = outputs.reshape(n, -1) - np.asarray(labels, dtype=np.float64).reshape(n, -1)
        return {"MSE": float(np.mean(diff**2)), "MAE": float(np.mean(np.abs(diff)))}

    def score(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        return self.scores(outputs, labels)[self.metric]

    def decisions(self, outputs: np.ndarray) -> np.ndarray:
        """What a classifier decides: the top-1 class (multiclass) or each output above its threshold."""
        outputs = np.asarray(outputs, dtype=np.float64)
        if self.kind == "multiclass":
            return np.argmax(outputs.reshape(len(outputs), -1), axis=-1)
        return outputs > (0.0 if self.from_logits else 0.5)

    def drop(self, reference: float, value: float) -> float:
        """How much worse `value` is than `reference`: accuracy points, or the rise of the MSE."""
        return round((reference - value) * 100, 6) if self.classification else round(value - reference, 10)

    @property
    def drop_unit(self) -> str:
        return "points" if self.classification else "MSE"

    # -- fine-tuning -------------------------------------------------------------------------------------------
    def loss_for_training(self):
        """(keras loss, where it came from): the model's own compiled loss, else the task's natural loss."""
        import keras

        if self.loss is not None:
            try:
                return keras.losses.get(self.loss), "the model's own loss"
            except (ValueError, TypeError):
                pass
        if self.kind == "multiclass" and self.labels == "one_hot":
            return keras.losses.CategoricalCrossentropy(from_logits=self.from_logits), "categorical cross-entropy"
        if self.kind == "multiclass":
            return (
                keras.losses.SparseCategoricalCrossentropy(from_logits=self.from_logits),
                "sparse categorical cross-entropy",
            )
        if self.kind == "binary":
            return keras.losses.BinaryCrossentropy(from_logits=self.from_logits), "binary cross-entropy"
        return keras.losses.MeanSquaredError(), "mean squared error"

    def training_metric(self):
        """The metric Keras reports while fine-tuning."""
        import keras

        if self.kind == "multiclass" and self.labels == "one_hot":
            return keras.metrics.CategoricalAccuracy(name="accuracy")
        if self.kind == "multiclass":
            return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        if self.kind == "binary":
            return keras.metrics.BinaryAccuracy(name="binary_accuracy", threshold=0.0 if self.from_logits else 0.5)
        return keras.metrics.MeanAbsoluteError(name="mae")


def class_labels(labels: np.ndarray) -> np.ndarray:
    """Integer class labels from integer or one-hot labels."""
    labels = np.asarray(labels)
    if labels.ndim >= 2 and labels.shape[-1] > 1:
        return np.argmax(labels.reshape(len(labels), -1), axis=-1)
    return labels.reshape(len(labels)).astype(np.int64)


def loss_kind(loss) -> str | None:
    """The task a compiled loss (a name or a Keras config dict) implies, or None when it says nothing."""
    if loss is None:
        return None
    if isinstance(loss, dict):
        name = loss.get("class_name") or ""
        config = loss.get("config") or {}
        name = f"{name} {config.get('name', '')}" if isinstance(config, dict) else name
    elif isinstance(loss, (list, tuple)):
        return loss_kind(loss[0]) if len(loss) == 1 else None
    else:
        name = str(loss)
    name = name.lower().replace("_", "")
    for fragment, kind in _LOSS_KINDS:
        if fragment in name:
            return kind
    return None


def infer_task(
    output_shape: tuple,
    data,
    *,
    loss=None,
    probabilities: bool | None = None,
    asked: str = "auto",
    source: str = "the data",
) -> Task:
    """The task, from the model's output shape (batch left out), its compiled loss, whether its outputs are
    probabilities (softmax or sigmoid; None: unknown) and the data; `asked` (--task) overrides the inference
    and is checked against the data."""
    if asked not in TASK_CHOICES:
        raise DataError(f"`task` must be one of {', '.join(TASK_CHOICES)}. Received: {asked!r}")
    output_shape = tuple(int(d) for d in output_shape if d is not None)
    y = np.concatenate([np.asarray(data.y_train), np.asarray(data.y_test)])
    from_loss = loss_kind(loss)
    if asked != "auto":
        kind, why = asked, "asked for (--task)"
    elif from_loss is not None:
        kind, why = from_loss, "from the model's compiled loss"
    else:
        kind, why = _kind_from_data(output_shape, y), "from the model's output and the labels"
        if kind is None:
            raise DataError(
                f"{source}: labels of shape {y.shape[1:] or '(n,)'} ({y.dtype}) fit no task of a model with output "
                f"shape {output_shape}: give integer class labels or one-hot rows (classifiers), 0/1 labels of the "
                "output's shape (binary), or float targets of the output's shape (regression, y = x for an "
                "autoencoder); --task says which"
            )
    labels = _check_labels(kind, output_shape, y, source, asked != "auto" or from_loss is not None)
    logits = not probabilities if probabilities is not None else kind != "regression"
    return Task(kind, labels, bool(logits) and kind != "regression", why, loss)


def _binary_values(y: np.ndarray) -> bool:
    return y.size > 0 and bool(np.isin(y, (0, 1)).all())


def _integral(y: np.ndarray) -> bool:
    return y.dtype.kind in "iub" or bool(np.all(np.mod(y, 1) == 0))


def _kind_from_data(output_shape: tuple, y: np.ndarray) -> str | None:
    units = int(np.prod(output_shape)) if output_shape else 1
    per_example = int(np.prod(y.shape[1:])) if y.ndim > 1 else 1
    last = output_shape[-1] if output_shape else 1
    if units == 1 and per_example == 1:
        return "binary" if _binary_values(y) else "regression"
    if y.ndim == 1 and _integral(y) and last > 1 and units == last:
        return "multiclass"
    if per_example == units and y.ndim > 1:
        rows = y.reshape(len(y), -1)
        if _binary_values(rows) and units == last and np.all(rows.sum(axis=1) == 1):
            return "multiclass"  # one-hot rows
        if _binary_values(rows):
            return "binary"  # several independent 0/1 outputs
        return "regression"
    return None


def _check_labels(kind: str, output_shape: tuple, y: np.ndarray, source: str, told: bool) -> str:
    """How the labels are given for `kind` ("integer", "one_hot", "binary", "float"); a DataError when they do
    not fit a model with this output shape."""
    units = int(np.prod(output_shape)) if output_shape else 1
    last = output_shape[-1] if output_shape else 1
    per_example = int(np.prod(y.shape[1:])) if y.ndim > 1 else 1
    hint = " (leave --task out to infer it)" if told else ""
    if kind == "multiclass":
        if units != last or last < 2:
            raise DataError(
                f"{source}: a multiclass task needs one score per class, but the model's output has shape "
                f"{output_shape}{hint}"
            )
        if y.ndim == 1 or per_example == 1:
            flat = y.reshape(len(y))
            if not _integral(flat) or flat.min() < 0:
                raise DataError(
                    f"{source}: a multiclass task needs integer class labels in [0, {last}) or one-hot rows of "
                    f"{last}; these labels are not integers{hint}"
                )
            if flat.max() >= last:
                raise DataError(
                    f"{source}: labels go up to {int(flat.max())} but the model has {last} outputs; labels must "
                    f"be integers in [0, {last}) (or one-hot rows of {last})"
                )
            return "integer"
        rows = y.reshape(len(y), -1)
        if rows.shape[1] == last and _binary_values(rows) and np.all(rows.sum(axis=1) == 1):
            return "one_hot"
        raise DataError(
            f"{source}: a multiclass task needs integer class labels (n,) or one-hot rows (n, {last}); the labels "
            f"have shape {y.shape[1:]}{hint}"
        )
    if per_example != units:
        raise DataError(
            f"{source}: a {kind} task needs labels of the output's shape {output_shape}; the labels have "
            f"{per_example} value(s) per example{hint}"
        )
    if kind == "binary":
        if not _binary_values(y):
            raise DataError(f"{source}: a binary task needs labels 0 or 1; these hold other values{hint}")
        return "binary"
    return "float"
