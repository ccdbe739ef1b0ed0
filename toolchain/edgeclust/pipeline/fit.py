"""`edgeclust build --fit`: choose each layer's number of clusters so the model's weights fit a flash budget with
the least accuracy loss, then run the normal build once with those counts as `--layer` rules.

1. Sensitivity, cheap (no fine-tuning): for each clusterable layer and each candidate N, the layer's kernels
   alone are clustered (the build's initialisation, `cluster.centroids`, and nearest-centroid assignment,
   `cluster.algorithm`) on the loaded model's variables, and the validation split (the seeded 10% of the
   training data that `--max-drop` also uses) is evaluated; the weights are put back after each measurement.
2. Flash per choice, with the native backend's packing rules (`lower.pack.row_stride_for`,
   `lower.weights.index_bits`): one packed row of ceil(log2 N)-bit indices per output channel plus an int8
   table, or the int8 tensor itself when packing would not be smaller (int8: N = 0).
3. Allocation: losses are taken as additive (examples lost on validation, each layer's losses made monotone in
   N), and an exact Pareto search over (bytes, loss) layer by layer picks the least loss within the budget;
   equal losses go to more index bits, exact ties to more clusters in the earlier layer.
4. The build runs once with the chosen counts; with `--max-drop` it fine-tunes toward that target and a build
   that does not reach it is refused before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgeclust.errors import BudgetError, ConfigError
from edgeclust.lower.pack import row_stride_for
from edgeclust.lower.weights import index_bits

__all__ = [
    "CANDIDATE_COUNTS",
    "CODE_ESTIMATE_BYTES",
    "FitPlan",
    "FitResult",
    "fit_to_board",
    "flash_budget_for",
    "plan_fit",
]

#: Numbers of clusters tried per layer (0 = left as int8). Powers of two: any other N costs the bits of the next.
CANDIDATE_COUNTS = (0, 128, 64, 32, 16, 8, 4, 2)
#: With only --board: flash kept for the native runtime's code, the self-test data and the requantisation
#: tables (the runtime and every kernel measure about 10 KB on Cortex-M; backends/native/runtime_sizes.toml).
CODE_ESTIMATE_BYTES = 16 * 1024
BIAS_BYTES = 4  # int32 biases
FIT_TITLE = "fit: each layer's sensitivity to clustering"


@dataclass(frozen=True)
class Choice:
    """One layer at N clusters (0: int8): its flash bytes and the validation accuracy with only it clustered."""

    clusters: int
    bits: int
    flash_bytes: int
    accuracy: float
    lost: int  # validation examples lost against the unclustered model (>= 0, monotone in N)


@dataclass(frozen=True)
class LayerFit:
    layer: str
    weights: int  # clustered weights of the layer
    fixed_bytes: int  # its biases (int32), the same for every choice
    choices: tuple[Choice, ...]

    def choice(self, clusters: int) -> Choice:
        return next(c for c in self.choices if c.clusters == clusters)


@dataclass(frozen=True)
class FrontierPoint:
    flash_bytes: int
    lost: int
    counts: tuple[int, ...]  # per layer, in FitPlan.layers' order


@dataclass(frozen=True)
class FitPlan:
    """What --fit measured and chose. `counts` is {layer: N} (0: int8), `rules` the same as --layer rules."""

    budget_bytes: int
    budget_source: str
    reference_accuracy: float
    validation_size: int
    layers: tuple[LayerFit, ...]
    counts: tuple[tuple[str, int], ...]
    flash_bytes: int
    estimated_accuracy: float
    measured_accuracy: float  # every chosen layer clustered together, before fine-tuning
    frontier: tuple[FrontierPoint, ...]

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(f"{name}={n}" for name, n in self.counts)

    def as_report(self) -> dict:
        return {
            "budget_bytes": self.budget_bytes,
            "budget_source": self.budget_source,
            "layer_rules": list(self.rules),
            "command_line": " ".join(f"--layer '{rule}'" for rule in self.rules)
            if any(n for _, n in self.counts)
            else "--clusters 0",
            "flash_bytes_estimated": self.flash_bytes,
            "validation": {
                "examples": self.validation_size,
                "unclustered": self.reference_accuracy,
                "estimated": self.estimated_accuracy,
                "measured_before_fine_tuning": self.measured_accuracy,
            },
            "sensitivity": {
                layer.layer: {
                    str(c.clusters): {"bits": c.bits, "flash_bytes": c.flash_bytes, "accuracy": c.accuracy}
                    for c in layer.choices
                }
                for layer in self.layers
            },
        }

    def table_lines(self, max_frontier: int = 12) -> list[str]:
        """The per-layer sensitivity table, the frontier of flash against estimated validation accuracy, the
        choice."""
        ref = self.reference_accuracy * 100
        lines = [
            f"--fit: flash budget {self.budget_bytes:,} bytes for weights, tables and biases ({self.budget_source})",
            f"validation: {self.validation_size:,} examples, unclustered {ref:.2f}%; "
            "accuracy with only that layer clustered (no fine-tuning), flash bytes of its kernel:",
        ]
        head = f"  {'layer':<16} {'weights':>9} " + " ".join(f"{_label(n):>15}" for n in CANDIDATE_COUNTS)
        lines.append(head)
        for layer in self.layers:
            cells = " ".join(f"{c.accuracy * 100:6.2f}%/{c.flash_bytes:>7,}" for c in sorted(layer.choices, key=_order))
            lines.append(f"  {layer.layer:<16} {layer.weights:>9,} {cells}")
        lines.append("allocations on the frontier (flash, estimated validation accuracy, counts):")
        chosen = tuple(n for _, n in self.counts)
        points = _thin(self.frontier, max_frontier, keep=chosen)
        for point in points:
            mark = " <- chosen" if point.counts == chosen else ""
            over = " (over budget)" if point.flash_bytes > self.budget_bytes else ""
            acc = ref - point.lost * 100 / self.validation_size
            counts = " ".join(f"{layer.layer}={n}" for layer, n in zip(self.layers, point.counts))
            lines.append(f"  {point.flash_bytes:>10,} {acc:6.2f}%  {counts}{over}{mark}")
        lines.append(
            f"chosen: {' '.join(self.rules)}: {self.flash_bytes:,} bytes; validation before fine-tuning "
            f"{self.estimated_accuracy * 100:.2f}% estimated, {self.measured_accuracy * 100:.2f}% measured"
        )
        lines.append(f"the same build without --fit: {self.as_report()['command_line']}")
        return lines


@dataclass(frozen=True)
class FitResult:
    plan: FitPlan
    build: object  # build.BuildResult

    @property
    def report(self) -> dict:
        return self.build.report


def _label(n: int) -> str:
    return "int8" if n == 0 else f"N={n}"


def _order(choice: Choice) -> int:
    return CANDIDATE_COUNTS.index(choice.clusters)


def _rank(clusters: int) -> tuple[int, int]:
    """int8 first, then more clusters before fewer."""
    return (clusters != 0, -clusters)


def _thin(points, most: int, keep=()):
    """At most about `most` points spread over the frontier, always with the one whose counts are `keep`."""
    if len(points) <= most:
        return points
    picks = {round(i * (len(points) - 1) / (most - 1)) for i in range(most)}
    picks |= {i for i, point in enumerate(points) if point.counts == keep}
    return tuple(points[i] for i in sorted(picks))


def flash_budget_for(board, flash_budget: int | None) -> tuple[int, str]:
    """(bytes the model's weights, tables and biases may take on flash, where that figure comes from)."""
    if flash_budget is not None:
        if isinstance(flash_budget, bool) or not isinstance(flash_budget, int) or flash_budget < 1:
            raise ConfigError(f"`flash_budget` must be a positive number of bytes. Received: {flash_budget!r}")
        return flash_budget, "--flash-budget"
    return board.flash_bytes - CODE_ESTIMATE_BYTES, (
        f"{board.id}'s {board.flash_bytes:,} bytes of flash less {CODE_ESTIMATE_BYTES:,} estimated for the "
        "runtime code and self-test data"
    )


def kernel_bytes(shape: tuple[int, ...], channel_axes: tuple[int, ...], clusters: int, per_channel: bool) -> int:
    """Flash bytes of one int8 kernel at `clusters` values (0: the int8 tensor), as the native backend packs it:
    one row of indices per output channel, plus the int8 table(s), unless packing would not be smaller."""
    size = int(np.prod(shape, dtype=np.int64))
    rows = int(np.prod([shape[a] for a in channel_axes], dtype=np.int64)) or 1
    bits = index_bits(clusters) if clusters else 8
    if bits >= 8:
        return size
    packed = rows * row_stride_for(size // rows, bits) + clusters * (rows if per_channel else 1)
    return packed if packed < size else size


def _clusterable_layers(model):
    from edgeclust.cluster.api import plan
    from edgeclust.cluster.clusterable import weight_specs

    by_name = {layer.name: layer for layer in model._flatten_layers()}
    out = []
    for planned in plan(model):
        if not planned.weights:
            continue
        layer = by_name[planned.layer_name]
        out.append((planned.layer_name, layer, weight_specs(layer)))
    return out


def _clustered_values(values: np.ndarray, n: int, channel_axes, options, rng) -> np.ndarray:
    """values with each weight replaced by its nearest of n centroids initialised as the build does."""
    from edgeclust.cluster.algorithm import nearest_values, per_channel_columns
    from edgeclust.cluster.centroids import initial_centroids
    from edgeclust.pipeline.stages import centroid_initialization

    init = centroid_initialization(options.init)
    axes = tuple(channel_axes) if options.per_channel else None
    columns = per_channel_columns(values, axes)
    centroids = np.stack(
        [
            initial_centroids(columns[:, c], n, init, rng, preserve_sparsity=options.preserve_sparsity)
            for c in range(columns.shape[1])
        ]
    )
    return nearest_values(values, centroids if axes else centroids[0], channel_axes=axes)


def plan_fit(
    model,
    x,
    y,
    *,
    budget_bytes: int,
    budget_source: str = "",
    options=None,
    candidates: tuple[int, ...] = CANDIDATE_COUNTS,
    on_line=None,
    score=None,
) -> FitPlan:
    """Measure each layer's sensitivity on the validation split of (x, y), price each choice, and choose the
    counts with the least estimated loss within `budget_bytes`. `model` is the (BatchNorm-folded) float model;
    its variables are changed while measuring and put back. Raises BudgetError when no choice fits."""
    from edgeclust.pipeline.stages import ClusterOptions
    from edgeclust.pipeline.training import accuracy, predict, validation_split

    options = options or ClusterOptions()
    score = score or accuracy  # (outputs, labels) -> the fraction right: top-1 on integer labels by default
    say = on_line or (lambda line: None)
    candidates = tuple(sorted(set(candidates) | {0}, key=lambda n: (n != 0, -n)))
    for n in candidates:
        if n != 0 and not 2 <= n <= 256:
            raise ConfigError(f"--fit candidates must be 0 (int8) or in 2..256. Received: {n}")
    _, _, x_val, y_val = validation_split(np.asarray(x), np.asarray(y), 0.1, options.seed)
    reference_outputs = predict(model, x_val)
    reference = score(reference_outputs, y_val)
    right = int(round(reference * len(y_val)))
    layers = _clusterable_layers(model)
    if not layers:
        raise ConfigError("--fit: the model has no clusterable layer (Dense, Conv, Embedding, ...)")
    _check_smallest(layers, candidates, options, budget_bytes, budget_source)
    fits: list[LayerFit] = []
    for index, (name, layer, specs) in enumerate(layers):
        variables = [spec.variable(layer) for spec in specs]
        originals = [np.array(v.numpy()) for v in variables]
        fixed = sum(BIAS_BYTES * int(np.prod(w.shape)) for w in _biases(layer))
        raw = []
        for n in candidates:
            flash = sum(
                kernel_bytes(o.shape, _axes(spec, o), n, options.per_channel) for spec, o in zip(specs, originals)
            )
            if n == 0:
                raw.append((n, 8, flash, reference))
                continue
            rng = np.random.default_rng([options.seed, index, n])
            for spec, variable, original in zip(specs, variables, originals):
                variable.assign(_clustered_values(original, n, _axes(spec, original), options, rng))
            acc = score(predict(model, x_val), y_val)
            for variable, original in zip(variables, originals):
                variable.assign(original)
            raw.append((n, index_bits(n), flash, acc))
            say(f"sensitivity {name} N={n}: validation {acc * 100:.2f}%, {flash:,} bytes")
        fits.append(LayerFit(name, sum(int(o.size) for o in originals), fixed, _monotone(raw, right, len(y_val))))
    fixed_bytes = sum(layer.fixed_bytes for layer in fits)
    frontier = _frontier(fits, fixed_bytes)
    inside = [p for p in frontier if p.flash_bytes <= budget_bytes]
    best = min(inside, key=lambda p: (p.lost, -p.flash_bytes))
    counts = tuple((layer.layer, n) for layer, n in zip(fits, best.counts))
    # every chosen layer clustered at once (what the additive estimate stands for), before fine-tuning
    saved = []
    for index, ((_, layer, specs), (_, n)) in enumerate(zip(layers, counts)):
        for spec in specs:
            variable = spec.variable(layer)
            original = np.array(variable.numpy())
            saved.append((variable, original))
            if n:
                rng = np.random.default_rng([options.seed, index, n])
                variable.assign(_clustered_values(original, n, _axes(spec, original), options, rng))
    measured = score(predict(model, x_val), y_val)
    for variable, original in saved:
        variable.assign(original)
    return FitPlan(
        budget_bytes=budget_bytes,
        budget_source=budget_source,
        reference_accuracy=reference,
        validation_size=len(y_val),
        layers=tuple(fits),
        counts=counts,
        flash_bytes=best.flash_bytes,
        estimated_accuracy=(right - best.lost) / len(y_val),
        measured_accuracy=measured,
        frontier=tuple(frontier),
    )


def _check_smallest(layers, candidates, options, budget_bytes: int, budget_source: str) -> None:
    """Refuse at once (before any measurement) a budget below the smallest choice: every layer at its fewest
    bytes, biases included."""
    smallest = 0
    for _, layer, specs in layers:
        values = [spec.variable(layer) for spec in specs]
        smallest += sum(BIAS_BYTES * int(np.prod(w.shape)) for w in _biases(layer))
        smallest += min(
            sum(kernel_bytes(tuple(v.shape), _axes(spec, v), n, options.per_channel) for spec, v in zip(specs, values))
            for n in candidates
        )
    if smallest > budget_bytes:
        raise BudgetError(
            f"--fit: no choice of clusters fits {budget_bytes:,} bytes ({budget_source or 'the flash budget'}): "
            f"the smallest (every layer at its fewest bytes, biases included) needs {smallest:,} bytes, "
            f"{smallest - budget_bytes:,} over; raise --flash-budget or pick a board with more flash"
        )


def _axes(spec, values) -> tuple[int, ...]:
    return tuple(a % len(values.shape) for a in spec.channel_axes)


def _biases(layer):
    bias = getattr(layer, "bias", None)
    return [bias] if bias is not None else []


def _monotone(raw, right: int, total: int) -> tuple[Choice, ...]:
    """Examples lost per choice, never negative and never fewer for fewer clusters than for more (a layer
    clustered to fewer values is taken to lose at least what it loses with more)."""
    by_n = sorted(raw, key=lambda r: (r[0] != 0, -r[0]))  # int8 first, then N descending
    worst, out = 0, []
    for n, bits, flash, acc in by_n:
        lost = max(0, right - int(round(acc * total)))
        worst = max(worst, lost)
        out.append(Choice(n, bits, flash, acc, worst))
    return tuple(out)


def _frontier(layers: list[LayerFit], fixed_bytes: int) -> list[FrontierPoint]:
    """Every allocation not beaten on both flash and loss, smallest flash first (exact, layer by layer). Equal
    loss is broken toward more index bits (the weighted bits missing count as a fraction of one example)."""
    total_weights = sum(layer.weights for layer in layers) or 1
    states: list[tuple[int, float, tuple[int, ...], int]] = [(fixed_bytes, 0.0, (), 0)]
    for layer in layers:
        grown = []
        for flash, score, counts, lost in states:
            for choice in layer.choices:
                penalty = (8 - choice.bits) * layer.weights / (8 * total_weights) / (len(layers) + 1)
                grown.append(
                    (
                        flash + choice.flash_bytes,
                        score + choice.lost + penalty,
                        counts + (choice.clusters,),
                        lost + choice.lost,
                    )
                )
        # exact ties: the earlier layer (in layer order) keeps more clusters
        grown.sort(key=lambda s: (s[0], s[1], tuple(_rank(n) for n in s[2])))
        states, best = [], float("inf")
        for state in grown:
            if state[1] < best - 1e-12:
                states.append(state)
                best = state[1]
    return [FrontierPoint(flash, lost, counts) for flash, _, counts, lost in states]


def fit_to_board(
    model_path,
    data_path,
    options,
    *,
    flash_budget: int | None = None,
    on_progress=None,
    on_line=None,
) -> FitResult:
    """`edgeclust build --fit` from Python: choose each layer's number of clusters for `options.board` (or
    `flash_budget` bytes for the model's weights, tables and biases), then build once with them as --layer
    rules. `options` is a build.BuildOptions (its cluster options give the initialisation, seed, fine-tuning
    and max_drop). Returns the plan and the build's result; raises BudgetError when nothing fits."""
    from edgeclust.cluster import fold_batch_norms
    from edgeclust.pipeline.boards import board_spec
    from edgeclust.pipeline.build import build
    from edgeclust.pipeline.determinism import make_deterministic
    from edgeclust.pipeline.loading import compiled_loss, is_tflite_file, load_data_for, load_keras_model
    from edgeclust.pipeline.stages import has_batch_norm, strip_if_clustered
    from edgeclust.pipeline.training import model_task

    if is_tflite_file(model_path):
        raise ConfigError("--fit needs the Keras model (it clusters and fine-tunes); pass MODEL.keras")
    if options.backend == "tflm" and options.compress != "lut":
        raise ConfigError(
            "--fit prices packed weights: use --backend native (or auto), or --backend tflm --compress lut"
        )
    board = board_spec(options.board)
    from edgeclust.atomic import check_out_dir

    check_out_dir(options.out_dir, options.force)
    budget, source = flash_budget_for(board, flash_budget)
    make_deterministic(options.cluster.seed)
    model, _ = strip_if_clustered(load_keras_model(Path(model_path)))
    data = load_data_for(Path(data_path), model)
    task = model_task(model, data, loss=compiled_loss(Path(model_path)), asked=options.task)
    if not task.classification:
        raise ConfigError(
            "--fit chooses by validation accuracy: classifiers only (multiclass or binary); this model's task is "
            f"{task.kind} ({task.why})"
        )
    if options.cluster.fold_bn and has_batch_norm(model):
        model = fold_batch_norms(model)
    from edgeclust.pipeline.progress import Stages

    # a budget below the smallest choice is refused before any progress line: the error is the only line
    _check_smallest(_clusterable_layers(model), CANDIDATE_COUNTS, options.cluster, budget, source)
    stages = Stages([FIT_TITLE], on_progress)
    stages.start(FIT_TITLE)
    plan = plan_fit(
        model,
        data.x_train,
        data.y_train,
        budget_bytes=budget,
        budget_source=source,
        options=options.cluster,
        on_line=stages.info,
        score=lambda outputs, labels: next(iter(task.scores(outputs, labels).values())),
    )
    stages.finish()
    for line in plan.table_lines():
        (on_line or (lambda _: None))(line)
    chosen = tuple((name, n) for name, n in plan.counts)
    clustered = any(n for _, n in chosen)
    cluster = replace(
        options.cluster,
        clusters=(options.cluster.clusters or 16) if clustered else 0,
        layers=chosen if clustered else (),
    )
    result = build(model_path, data_path, replace(options, cluster=cluster, fit=plan), on_progress=on_progress)
    return FitResult(plan, result)


def check_fit_target(options, clustered) -> None:
    """With --fit and --max-drop: refuse (before anything is written) a build whose fine-tuning did not reach the
    target, saying that the flash budget binds and by how many points."""
    plan = getattr(options, "fit", None)
    recovery = getattr(clustered, "recovery", None)
    if plan is None or recovery is None or recovery.target_met:
        return
    drop = recovery.best.drop_points
    raise BudgetError(
        f"--fit: the flash budget binds: the least-loss choice within {plan.budget_bytes:,} bytes "
        f"({' '.join(plan.rules)}) is {drop:.2f} points below the unclustered model on validation after "
        f"{recovery.best_epoch} epoch(s) of fine-tuning, {drop - recovery.max_drop_points:.2f} over --max-drop "
        f"{recovery.max_drop_points:g}; raise the budget, --max-drop or --max-epochs"
    )
