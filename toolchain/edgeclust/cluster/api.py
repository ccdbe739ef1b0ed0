"""cluster_weights, strip_clustering, cluster_scope, is_clustered: the tfmot-style entry points.

A model is never changed in place: cluster_weights and strip_clustering build a new model from copies of
its layers (same names, same weights), so the original model stays usable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import warnings
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from edgeclust.cluster.clusterable import model_weight_specs, skip_reason, weight_specs
from edgeclust.cluster.config import CentroidInitialization, ClusteringConfig, GradientAggregation
from edgeclust.cluster.layer_counts import UNCLUSTERED, resolve_layer_counts
from edgeclust.cluster.wrapper import ClusterWeights, UnchangedWeight, unchanged_reason
from edgeclust.errors import UnsupportedLayerError

#: Set on a layer that cluster_weights left unwrapped on purpose: why (clustering_report reads it).
SKIP_REASON_ATTR = "_edgeclust_skip_reason"
UNCHANGED_ATTR = "_edgeclust_unchanged"


@dataclass(frozen=True)
class PlannedLayer:
    """What cluster_weights will do with one layer: the names of its clustered weights, or why none."""

    layer_name: str
    layer_class: str
    weights: tuple[str, ...]
    reason: str = ""


def _is_graph_model(model) -> bool:
    """Sequential or Functional: a model whose layer graph Keras knows (and clone_model can rebuild)."""
    from keras.src.models.functional import Functional

    return isinstance(model, (keras.Sequential, Functional))


def _reject_subclassed(model) -> None:
    if isinstance(model, keras.Model) and not _is_graph_model(model):
        raise UnsupportedLayerError(
            f"Model {model.name!r} is a subclassed model ({type(model).__name__}); edgeclust cannot see how its "
            "layers are connected. Build it as a Sequential or Functional model, or cluster its layers one by "
            "one with cluster_weights(layer) inside your model"
        )


def plan(model) -> list[PlannedLayer]:
    """Which layers of a Sequential/Functional model cluster which weights, and which layers are skipped.

    Pure: reads the model, changes nothing. Raises what cluster_weights would raise.
    """
    _reject_subclassed(model)
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            out += plan(layer)
            continue
        if isinstance(layer, ClusterWeights):
            raise UnsupportedLayerError(
                f"Layer {layer.name!r} is already clustered; strip_clustering(model) before clustering again"
            )
        specs = model_weight_specs(layer)
        if specs:
            out.append(PlannedLayer(layer.name, type(layer).__name__, tuple(s.name for s in specs)))
        elif layer.weights:
            out.append(PlannedLayer(layer.name, type(layer).__name__, (), skip_reason(layer)))
    return out


def clone_graph_model(model, clone_function, call_function=None):
    """keras.models.clone_model, keeping the names of a Functional model's inputs (Keras renames them).

    `clone_function` sees real layers only: inputs, and stateless ops in the graph (e.g. a mask's
    not_equal), are kept as they are."""
    layer_function = clone_function

    def clone_function(layer):
        if isinstance(layer, keras.layers.InputLayer) or not isinstance(layer, keras.layers.Layer):
            return layer
        return layer_function(layer)

    if isinstance(model, keras.Sequential):
        return keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(
            batch_shape=t.shape, dtype=t.dtype, sparse=t.sparse, name=t._keras_history.operation.name
        ),
        model.input,
    )
    return keras.models.clone_model(
        model,
        input_tensors=inputs,
        clone_function=clone_function,
        call_function=call_function,
        recursive=call_function is None,
    )


def copy_layer(layer, weights=None):
    """A new layer with the same config, built like `layer`, holding `weights` (default: layer's weights)."""
    clone = layer.__class__.from_config(layer.get_config())
    if layer.built:
        build_config = layer.get_build_config()
        if build_config:
            clone.build_from_config(build_config)
        clone.set_weights(layer.get_weights() if weights is None else weights)
        if callable(getattr(clone, "finalize_state", None)):
            clone.finalize_state()  # Normalization computes its mean and variance from the adapted statistics
    return clone


def cluster_weights(
    to_cluster,
    number_of_clusters,
    cluster_centroids_init=CentroidInitialization.KMEANS_PLUS_PLUS,
    *,
    cluster_per_channel=False,
    preserve_sparsity=False,
    cluster_gradient_aggregation=GradientAggregation.SUM,
    seed=None,
    layer_clusters=None,
):
    """Wrap a layer, a list of layers, or every clusterable layer of a Sequential/Functional model.

    A layer gives back a ClusterWeights wrapping it; a list, a list; a model, a new model whose clusterable
    layers are wrapped copies (the original model is left as it was). Fine-tune the result, then strip it.
    `layer_clusters` ({layer name or glob: N}, models only) gives layers their own N; N=0 leaves a layer
    unclustered. Weights of at most N elements are left as they are, with one UserWarning per
    layer ("Layer NAME does not have enough weights ...").
    """
    config = ClusteringConfig(
        number_of_clusters,
        cluster_centroids_init,
        cluster_per_channel,
        preserve_sparsity,
        cluster_gradient_aggregation,
        seed,
    )
    arguments = dataclasses.asdict(config)  # the validated values, named as ClusterWeights takes them
    if layer_clusters and not isinstance(to_cluster, keras.Model):
        raise UnsupportedLayerError("`layer_clusters` applies to a model; for a layer, pass its own number_of_clusters")
    if isinstance(to_cluster, (list, tuple)):
        return [cluster_weights(layer, **arguments) for layer in to_cluster]
    if isinstance(to_cluster, keras.Model):
        planned = plan(to_cluster)  # raises before anything is built
        _refuse_asked_for_skipped(planned, layer_clusters)
        counts = resolve_layer_counts(
            [p.layer_name for p in planned if p.weights], config.number_of_clusters, layer_clusters
        )

        def wrap(layer):
            clone = copy_layer(layer)
            if not model_weight_specs(layer):
                return clone
            k = counts.get(layer.name, config.number_of_clusters)
            if k == UNCLUSTERED:
                object.__setattr__(clone, SKIP_REASON_ATTR, "left unclustered (layer_clusters gives it N=0)")
                return clone
            return _wrap_or_leave(clone, {**arguments, "number_of_clusters": k}, notes)

        notes: list[str] = []
        clustered = clone_graph_model(to_cluster, wrap)
        for note in notes:  # after cloning, so that the warning points at the caller's line
            warnings.warn(note, UserWarning, stacklevel=2)
        return clustered
    if isinstance(to_cluster, keras.layers.Layer):
        if isinstance(to_cluster, ClusterWeights):
            raise UnsupportedLayerError(f"Layer {to_cluster.name!r} is already clustered")
        if to_cluster.built and not weight_specs(to_cluster):
            return to_cluster
        return ClusterWeights(to_cluster, **arguments)
    raise UnsupportedLayerError(
        "`to_cluster` must be a keras Layer, a list of layers, or a Sequential/Functional model. "
        f"Received: {type(to_cluster).__name__}"
    )


def _refuse_asked_for_skipped(planned: list[PlannedLayer], layer_clusters) -> None:
    """A layer left unclustered (statistics, an unknown class) is only an error when asked for by name (or by a
    glob that names no clusterable layer)."""
    clusterable = [p.layer_name for p in planned if p.weights]
    for pattern, n in (layer_clusters or {}).items():
        if n == 0:
            continue
        for p in planned:
            if p.weights or not fnmatch.fnmatchcase(p.layer_name, pattern):
                continue
            if p.layer_name == pattern or not any(fnmatch.fnmatchcase(name, pattern) for name in clusterable):
                raise UnsupportedLayerError(
                    f"layer {p.layer_name!r} ({p.layer_class}) was asked for with {pattern}={n} but cannot be "
                    f"clustered: {p.reason}; leave it out of --layer (layer_clusters), or give it N=0"
                )


def _wrap_or_leave(layer, arguments: dict, notes: list[str]):
    """A ClusterWeights around a built layer, told which weights have at most N elements (left as they are);
    the layer itself (marked for the report) when all of them do; a note (for one UserWarning) when any does. Unbuilt
    layers are wrapped as they are (the wrapper decides, and warns, when it is built)."""
    if not layer.built:
        return ClusterWeights(layer, **arguments)
    k = arguments["number_of_clusters"]
    unchanged = []
    for spec in weight_specs(layer):
        values = np.asarray(ops.convert_to_numpy(spec.variable(layer)))
        reason = unchanged_reason(values, k, spec.channel_axes if arguments["cluster_per_channel"] else None)
        if reason:
            unchanged.append(UnchangedWeight(spec.name, values.shape, reason))
    if unchanged:
        notes.append(
            f"Layer {layer.name} does not have enough weights to cluster "
            f"{', '.join(u.name for u in unchanged)} to {k} values: "
            f"{'left as it is' if len(unchanged) == len(weight_specs(layer)) else 'those are left as they are'}"
        )
    if len(unchanged) == len(weight_specs(layer)):
        object.__setattr__(layer, UNCHANGED_ATTR, (k, arguments["cluster_per_channel"], unchanged))
        return layer
    return ClusterWeights(layer, **arguments, unchanged=[u.name for u in unchanged])


def _stripped_layer(wrapper: ClusterWeights):
    inner = copy_layer(wrapper.layer)
    for spec, values in zip(wrapper.weight_specs, wrapper.clustered_values()):
        spec.variable(inner).assign(values)
    return inner


def strip_clustering(model):
    """A plain Keras model (or layer) whose clustered weights hold their centroid values: at most N unique
    values per tensor (per channel with cluster_per_channel), the wrappers gone."""
    if isinstance(model, ClusterWeights):
        return _stripped_layer(model)
    if isinstance(model, keras.Model):
        _reject_subclassed(model)

        def unwrap(layer):
            if isinstance(layer, ClusterWeights):
                return _stripped_layer(layer)
            return copy_layer(layer)

        return clone_graph_model(model, unwrap)
    if isinstance(model, keras.layers.Layer):
        return model
    raise UnsupportedLayerError(
        f"strip_clustering takes a Keras model or a ClusterWeights layer. Received: {type(model).__name__}"
    )


def is_clustered(model) -> bool:
    """Whether the model (or layer) still contains ClusterWeights wrappers."""
    if isinstance(model, ClusterWeights):
        return True
    return isinstance(model, keras.layers.Layer) and any(
        isinstance(layer, ClusterWeights) for layer in model._flatten_layers()
    )


@contextlib.contextmanager
def cluster_scope():
    """The scope in which keras.models.load_model restores a model saved with ClusterWeights wrappers.

    The wrapper is also registered as "edgeclust>ClusterWeights", so loading works without it once
    edgeclust.cluster has been imported; the scope is kept for tfmot users.
    """
    with keras.saving.custom_object_scope({"ClusterWeights": ClusterWeights}):
        yield
