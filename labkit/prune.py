"""Pruning: unstructured magnitude pruning (one-shot or fine-tuned with tfmot) and structured channel pruning.

*Unstructured* pruning zeroes individual weights: parameters, MACs and latency stay the same on a dense
runtime such as TFLite, but the zeros compress well (zlib) and a sparse kernel could skip them.
:func:`prune_oneshot` zeroes the smallest-magnitude weights at exactly the requested sparsity (per layer or
globally), without training; :func:`prune_finetune` prunes gradually while fine-tuning with
``tfmot.sparsity.keras`` (a ``PolynomialDecay`` whose end step is on the pruning frequency's grid, see
:func:`pruning_schedule`). By default the depthwise kernels (tfmot's registry lists none) and the output
layer stay dense (the recipe measured in benchmarks/pruning_recipe.py); :func:`pruned_layers` names the
layers it prunes, :func:`sparsity_report` the zeros per layer.

*Structured* pruning removes whole filters/units: :func:`prune_channels` ranks the output channels of every
convolution and dense layer (except the output layer) by the L1, L2 or L-infinity norm of their weights and
builds a physically smaller model (next layer's input channels, BatchNorm and depthwise parameters sliced
to match); :func:`keep_channels` is the surgery with explicit channel lists.

Fine-tunes run through ``labkit.train``, the graph comes from ``labkit.graph``; notebook 07's sweeps, tables and
figures live in ``labkit.experiments.pruning`` and ``labkit.plots``.
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import config, train
from .data import evenly_spaced
from .graph import Graph, unwrap

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = [
    "PRUNABLE_WEIGHT_NAMES", "NORMS", "copy_model", "prunable_weights", "sparsity_report", "prune_oneshot",
    "recalibrate_bn", "pruning_schedule", "FinetuneResult", "prune_finetune", "finetune", "pruned_layers", "BN_MODES",
    "prunable_channel_layers", "channel_scores", "channels_to_keep", "prune_channels", "keep_channels",
]

PRUNABLE_WEIGHT_NAMES: tuple[str, ...] = ("kernel", "depthwise_kernel", "pointwise_kernel", "recurrent_kernel")
"""Weights that magnitude pruning touches (biases, BatchNorm parameters and statistics are left alone)."""

NORMS: tuple[str, ...] = ("l1", "l2", "linf")
"""Filter-ranking norms of :func:`prune_channels`."""


# --------------------------------------------------------------------------- helpers on models
def _tf():
    import tensorflow as tf

    return tf


def _tfmot_sparsity():
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras


def _short_name(weight: Any) -> str:
    return weight.name.split("/")[-1].split(":")[0]


def prunable_weights(model: "tf.keras.Model") -> list[tuple[Any, Any, str]]:
    """``(layer, variable, short_name)`` of every kernel-like weight (:data:`PRUNABLE_WEIGHT_NAMES`; tfmot
    wrappers unwrapped), in layer order. Used by :func:`sparsity_report` and notebook 07's tables."""
    out = []
    for layer in model.layers:
        inner = unwrap(layer)
        if isinstance(inner, _tf().keras.Model):
            raise ValueError(f"layer {inner.name!r} is a nested model; flatten it before pruning")
        for w in inner.weights:
            name = _short_name(w)
            if name in PRUNABLE_WEIGHT_NAMES and w.trainable:
                out.append((inner, w, name))
    return out


def _tfmot_weight_names(layer: Any) -> list[str]:
    """The weights tfmot's registry prunes for ``layer`` (empty for DepthwiseConv2D)."""
    try:
        from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry
    except ImportError:  # pragma: no cover
        return []
    if type(layer) in PruneRegistry._LAYERS_WEIGHTS_MAP:
        return list(PruneRegistry._LAYERS_WEIGHTS_MAP[type(layer)])
    if type(layer) in getattr(PruneRegistry, "_RNN_LAYERS", ()):
        names = []
        for cell in PruneRegistry._get_rnn_cells(layer):
            names += list(PruneRegistry._RNN_CELLS_WEIGHTS_MAP.get(type(cell), []))
        return names
    return []


def copy_model(model: "tf.keras.Model") -> "tf.keras.Model":
    """An independent copy of a Sequential/functional ``model`` (same architecture and weights). Used by the
    pruning functions so the model passed in is never modified (notebook 07)."""
    tf = _tf()
    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def sparsity_report(model: "tf.keras.Model") -> pd.DataFrame:
    """Per layer: the kernel-like weight, its size, how many entries are exactly zero, the sparsity,
    and whether tfmot's ``prune_low_magnitude`` prunes it (``tfmot_prunable``); a last ``total`` row. Works on
    plain models and on models wrapped for pruning. Used by notebook 07."""
    rows = []
    for layer, w, name in prunable_weights(model):
        values = np.asarray(w.numpy())
        zeros = int(np.count_nonzero(values == 0))
        rows.append({"layer": layer.name, "type": type(layer).__name__, "weight": name,
                     "shape": "x".join(str(d) for d in values.shape), "params": int(values.size),
                     "zeros": zeros, "sparsity": zeros / max(1, values.size),
                     "tfmot_prunable": name in _tfmot_weight_names(layer)})
    if not rows:
        raise ValueError(f"model {model.name!r} has no kernel weights ({', '.join(PRUNABLE_WEIGHT_NAMES)})")
    frame = pd.DataFrame(rows)
    total = {"layer": "total", "type": "", "weight": "", "shape": "", "params": int(frame.params.sum()),
             "zeros": int(frame.zeros.sum()), "tfmot_prunable": None}
    total["sparsity"] = total["zeros"] / max(1, total["params"])
    return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)


def _check_sparsity(sparsity: float) -> float:
    sparsity = float(sparsity)
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1) (fraction of weights set to zero), got {sparsity!r}")
    return sparsity


# --------------------------------------------------------------------------- one-shot magnitude pruning
def prune_oneshot(
    model: "tf.keras.Model",
    sparsity: float,
    *,
    scope: str = "per_layer",
    layers: Sequence[str] | None = None,
) -> "tf.keras.Model":
    """A copy of ``model`` whose smallest-magnitude kernel weights are zero, without any training.

    ``scope="per_layer"`` zeroes exactly ``round(sparsity x n)`` of the ``n`` weights of every kernel;
    ``scope="global"`` ranks all kernels together and zeroes exactly ``round(sparsity x N)`` of the
    ``N`` weights (small layers may then keep most of their weights, large ones lose more). Ties are
    broken by position, so the count is exact even with repeated values. Biases and BatchNorm are
    left alone; ``layers`` restricts pruning to some layer names (default: every kernel, including
    depthwise and output layers). Used by notebook 07."""
    sparsity = _check_sparsity(sparsity)
    if scope not in ("per_layer", "global"):
        raise ValueError(f"scope must be 'per_layer' or 'global', got {scope!r}")
    pruned = copy_model(model)
    targets = prunable_weights(pruned)
    if layers is not None:
        wanted = set(layers)
        unknown = wanted - {layer.name for layer, _, _ in targets}
        if unknown:
            raise ValueError(f"no prunable kernel in layer(s) {sorted(unknown)} of {model.name!r}; "
                             f"choose among {[layer.name for layer, _, _ in targets]}")
        targets = [t for t in targets if t[0].name in wanted]
    values = [np.asarray(w.numpy()) for _, w, _ in targets]
    if scope == "per_layer":
        for (_, w, _), v in zip(targets, values):
            k = int(round(sparsity * v.size))
            flat = v.reshape(-1).copy()
            flat[np.argsort(np.abs(flat), kind="stable")[:k]] = 0.0
            w.assign(flat.reshape(v.shape))
    else:
        flat_all = np.concatenate([v.reshape(-1) for v in values]) if values else np.zeros(0)
        k = int(round(sparsity * flat_all.size))
        mask = np.ones(flat_all.size, dtype=bool)
        mask[np.argsort(np.abs(flat_all), kind="stable")[:k]] = False
        start = 0
        for (_, w, _), v in zip(targets, values):
            part = mask[start:start + v.size].reshape(v.shape)
            w.assign(np.where(part, v, 0.0).astype(v.dtype))
            start += v.size
    return pruned


def recalibrate_bn(model: "tf.keras.Model", x: np.ndarray, *, max_samples: int = 1024) -> "tf.keras.Model":
    """A copy of ``model`` whose BatchNorm moving means and variances are re-estimated on inputs ``x``.

    Pruning changes the statistics of the activations, while BatchNorm keeps normalising with those
    of the unpruned network: often the main cause of the collapse of a one-shot pruned model. One
    pass through the layers in order, in inference mode (dropout off), on at most ``max_samples``
    evenly spaced inputs: each BN layer gets the mean and variance of its input, computed with the
    already re-estimated layers before it. No weight is trained; models without BatchNorm come back
    as a plain copy. Used by :func:`sweep` (notebook 07)."""
    tf = _tf()
    fixed = copy_model(model)
    if not any(isinstance(layer, tf.keras.layers.BatchNormalization) for layer in fixed.layers):
        return fixed
    x = np.asarray(x, np.float32)
    x = x[evenly_spaced(len(x), max_samples)]
    graph = _graph(fixed)
    values: dict[str, Any] = {}
    for name in graph.order:
        layer = graph.layer(name)
        if isinstance(layer, tf.keras.layers.InputLayer):
            values[name] = tf.constant(x)
            continue
        ins = [values[src] for src in graph.inbound(name)]
        inputs = ins[0] if len(ins) == 1 else ins
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            _check_channels_last(layer)
            acts = tf.reshape(tf.cast(inputs, tf.float64), [-1, inputs.shape[-1]])
            mean, var = tf.nn.moments(acts, axes=[0])
            layer.moving_mean.assign(tf.cast(mean, layer.moving_mean.dtype))
            layer.moving_variance.assign(tf.cast(var, layer.moving_variance.dtype))
        values[name] = layer(inputs, training=False)
    return fixed


# --------------------------------------------------------------------------- fine-tuned pruning (tfmot)
@dataclasses.dataclass
class FinetuneResult:
    """A fine-tuned model (pruning wrappers stripped), its Keras history, the pruning schedule
    (``begin_step``, ``end_step``, ``frequency``, ``total_steps`` ...; empty without pruning) and the
    fine-tuning wall time. Used by notebook 07."""

    model: "tf.keras.Model"
    history: dict[str, list[float]]
    schedule: dict[str, Any]
    seconds: float


def pruning_schedule(
    sparsity: float,
    total_steps: int,
    *,
    frequency: int | None = None,
    begin_fraction: float = 0.0,
    end_fraction: float = 0.7,
    power: int = 3,
) -> tuple[Any, dict[str, Any]]:
    """A tfmot ``PolynomialDecay`` (0 -> ``sparsity``) that really reaches ``sparsity``.

    tfmot only prunes at steps ``begin_step + i x frequency`` that are ``<= end_step``; if ``end_step``
    is not on that grid, the last pruning step comes earlier and the model stays below the target
    (0.744 instead of 0.75 with ``frequency=100``). Here ``end_step`` is put on the grid, at about
    ``end_fraction`` of the ``total_steps`` training steps, so the rest fine-tunes at the final
    sparsity; pruning starts at ``begin_fraction`` (on the grid too). ``frequency`` defaults to ``total_steps // 20`` clipped to [1, 100] (about 14 pruning
    updates). Returns the schedule and a dict describing it. Used by :func:`prune_finetune`."""
    sparsity = _check_sparsity(sparsity)
    total_steps = int(total_steps)
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0.0 < end_fraction <= 1.0:
        raise ValueError(f"end_fraction must be in (0, 1], got {end_fraction!r}")
    if not 0.0 <= begin_fraction < end_fraction:
        raise ValueError(f"begin_fraction must be in [0, end_fraction={end_fraction}), got {begin_fraction!r}")
    if frequency is None:
        frequency = int(np.clip(total_steps // 20, 1, 100))
    frequency = int(frequency)
    if frequency < 1:
        raise ValueError(f"frequency must be >= 1, got {frequency}")
    if frequency > total_steps:  # a single pruning update, at the last step
        frequency = total_steps
    # The wrapper increments its step *before* pruning, so the steps seen in training are 1..total_steps
    # and pruning happens at steps frequency, 2 x frequency, ..., end_step.
    begin_step = frequency * int(np.floor(begin_fraction * total_steps / frequency))
    updates = max(1, int(np.floor((end_fraction * total_steps - begin_step) / frequency)))
    begin_step = min(begin_step, total_steps - frequency * updates)  # a coarse grid: start earlier
    end_step = begin_step + frequency * updates
    sched = _tfmot_sparsity().PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity,
                                              begin_step=begin_step, end_step=end_step, power=power,
                                              frequency=frequency)
    info = {"final_sparsity": sparsity, "begin_step": begin_step, "end_step": end_step,
            "frequency": frequency, "total_steps": total_steps, "pruning_updates": updates,
            "power": power}
    return sched, info


def _fit(model: "tf.keras.Model", x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
         validation_data: tuple[np.ndarray, np.ndarray] | None, seed: int, callbacks: Sequence[Any],
         verbose: int, keep_best_from: int | None = None) -> tuple[dict[str, list[float]], int]:
    """One fine-tuning run through ``labkit.train`` (seeded shuffles, a tqdm bar); ``keep_best_from`` (an epoch
    index): restore the weights of the lowest validation loss from there on (an ``EarlyStopping`` that never stops).
    Returns the history and the 1-based epoch whose weights the model ends with."""
    tf = _tf()
    ds, val = train.dataset(np.asarray(x), np.asarray(y), batch_size, seed=seed), None
    if validation_data is not None:
        val = tf.data.Dataset.from_tensor_slices(tuple(np.asarray(a) for a in validation_data)).batch(512)
    elif keep_best_from is not None:
        raise ValueError("keep_best needs validation_data: the best epoch is the one with the lowest validation loss")
    best = None
    if keep_best_from is not None:
        best = tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=epochs + 1, restore_best_weights=True,
                                                start_from_epoch=int(keep_best_from))
        callbacks = [*callbacks, best]
    history = train.fit(model, ds, val, epochs=epochs, callbacks=callbacks, verbose=verbose, desc="fine-tune epochs")
    return history, (len(history["loss"]) if best is None else int(best.best_epoch) + 1)


def prune_finetune(
    model: "tf.keras.Model",
    sparsity: float,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    loss: Any,
    metrics: Sequence[Any] | None = None,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    frequency: int | None = None,
    begin_fraction: float = 0.0,
    end_fraction: float = 0.7,
    depthwise: str = "dense",
    skip: Sequence[str] = ("output",),
    bn: str = "train",
    recalibrate: bool = False,
    keep_best: bool = False,
    seed: int = 0,
    verbose: int = 0,
) -> FinetuneResult:
    """Gradual magnitude pruning to ``sparsity`` while fine-tuning a copy of a trained ``model``.

    tfmot's ``prune_low_magnitude`` wraps every layer that has prunable weights (Dense, Conv, LSTM
    kernels; other layers, e.g. custom ones, are left as they are), the schedule comes from
    :func:`pruning_schedule` (sparsity rising from ``begin_fraction`` to ``end_fraction`` of the steps,
    end step on the pruning frequency's grid, so the target is reached exactly), the
    ``UpdatePruningStep`` callback advances it, and ``strip_pruning`` returns plain Keras layers.
    Defaults = the recipe measured in benchmarks/pruning_recipe.py: ``depthwise="dense"`` leaves the
    ``DepthwiseConv2D`` kernels dense as tfmot does (9 weights per channel: pruning them cost ~10 points
    of top-1 at 0.8), ``"prune"`` hands them to tfmot too; ``skip`` names layers left dense, ``"output"``
    meaning the output layer (a forecaster's pruned head fell back to persistence), so ``sparsity`` is
    that of the pruned layers (:func:`pruned_layers`; :func:`sparsity_report` gives the total). Adam on
    ``loss``, learning rate decaying (cosine) from ``learning_rate`` (start high: ``Task.finetune_kwargs``).
    ``bn="train"`` lets BatchNorm adapt (``"freeze"`` collapsed it); ``recalibrate`` re-estimates its
    statistics at the end (:func:`recalibrate_bn`). ``keep_best`` (needs ``validation_data``) keeps the epoch
    with the lowest validation loss among those ending after the target sparsity is reached (schedule
    ``kept_epoch``, 1-based). ``model`` is not modified. Used by notebook 07."""
    tf = _tf()
    sk = _tfmot_sparsity()
    sparsity = _check_sparsity(sparsity)
    if depthwise not in ("prune", "dense"):
        raise ValueError(f"depthwise must be 'prune' or 'dense', got {depthwise!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    config.seed_everything(seed)
    base = copy_model(model)
    steps_per_epoch = int(np.ceil(len(x) / batch_size))
    sched, info = pruning_schedule(sparsity, epochs * steps_per_epoch, frequency=frequency,
                                   begin_fraction=begin_fraction, end_fraction=end_fraction)
    skipped = _output_skip(base, skip)

    def wrap(layer):
        if layer.name in skipped:
            return layer
        if isinstance(layer, tf.keras.layers.DepthwiseConv2D) and depthwise == "prune":
            layer.get_prunable_weights = lambda layer=layer: [layer.depthwise_kernel]
            return sk.prune_low_magnitude(layer, pruning_schedule=sched)
        if _tfmot_weight_names(layer) and not isinstance(layer, tf.keras.layers.DepthwiseConv2D):
            return sk.prune_low_magnitude(layer, pruning_schedule=sched)
        return layer

    wrapped = tf.keras.models.clone_model(base, clone_function=wrap)
    _set_bn_mode(wrapped, bn)
    train.compile_model(wrapped, loss, learning_rate, metrics=metrics, total_steps=info["total_steps"])
    t0 = time.perf_counter()
    first = info["end_step"] // steps_per_epoch if keep_best else None  # first epoch ending past the end step
    history, kept = _fit(wrapped, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                         seed=seed, callbacks=[sk.UpdatePruningStep()], verbose=verbose, keep_best_from=first)
    seconds = time.perf_counter() - t0
    stripped = sk.strip_pruning(wrapped)
    _set_bn_mode(stripped, "unfreeze")
    clean = copy_model(stripped)  # fresh layers, without the get_prunable_weights attribute
    if recalibrate:
        clean = recalibrate_bn(clean, x)
    train.compile_model(clean, loss, learning_rate, metrics=metrics)
    info.update(depthwise=depthwise, skip=sorted(skipped), bn=bn, recalibrate=bool(recalibrate),
                learning_rate=float(learning_rate), epochs=int(epochs), kept_epoch=kept)
    return FinetuneResult(model=clean, history=history, schedule=info, seconds=seconds)


def finetune(
    model: "tf.keras.Model",
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    loss: Any,
    metrics: Sequence[Any] | None = None,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    bn: str = "train",
    recalibrate: bool = False,
    keep_best: bool = False,
    seed: int = 0,
    verbose: int = 0,
) -> FinetuneResult:
    """Plain fine-tuning of a copy of ``model`` (e.g. after :func:`prune_channels`) with Adam, the
    learning rate decaying from ``learning_rate`` (cosine); ``bn``, ``recalibrate`` and ``keep_best`` (any
    epoch) as in :func:`prune_finetune`. Used by notebook 07."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    config.seed_everything(seed)
    tuned = copy_model(model)
    _set_bn_mode(tuned, bn)
    train.compile_model(tuned, loss, learning_rate, metrics=metrics,
                        total_steps=epochs * int(np.ceil(len(x) / batch_size)))
    t0 = time.perf_counter()
    history, kept = _fit(tuned, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                         seed=seed, callbacks=[], verbose=verbose, keep_best_from=0 if keep_best else None)
    seconds = time.perf_counter() - t0
    _set_bn_mode(tuned, "unfreeze")
    if recalibrate:
        tuned = recalibrate_bn(tuned, x)
    train.compile_model(tuned, loss, learning_rate, metrics=metrics)  # graph mode for whoever uses it next
    return FinetuneResult(model=tuned, history=history, schedule={"kept_epoch": kept}, seconds=seconds)


def pruned_layers(model: "tf.keras.Model", *, depthwise: str = "dense", skip: Sequence[str] = ("output",)) -> list[str]:
    """Names of the layers whose kernels :func:`prune_finetune` prunes with these ``depthwise`` / ``skip``
    settings, so that :func:`prune_oneshot` (``layers=``) prunes the very same ones. Used by notebook 07."""
    if depthwise not in ("prune", "dense"):
        raise ValueError(f"depthwise must be 'prune' or 'dense', got {depthwise!r}")
    skipped, out = _output_skip(model, skip), []
    for layer, _, _ in prunable_weights(model):
        dw = isinstance(layer, _tf().keras.layers.DepthwiseConv2D)
        if layer.name not in skipped and layer.name not in out and (depthwise == "prune" if dw else
                                                                      bool(_tfmot_weight_names(layer))):
            out.append(layer.name)
    return out


def _output_skip(model: "tf.keras.Model", skip: Sequence[str]) -> set[str]:
    """Layer names to leave dense: ``skip``, ``"output"`` meaning the model's output layer(s) (the last layer
    with a kernel on each path back from an output, whatever its name)."""
    out = set(skip) - {"output"}
    unknown = out - {layer.name for layer in model.layers}
    if unknown:
        raise ValueError(f"skip names unknown layer(s) {sorted(unknown)} of {model.name!r}")
    if "output" in skip:
        graph, kernels = Graph(model), {layer.name for layer, _, _ in prunable_weights(model)}
        todo, seen = list(graph.outputs), set()
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                if name in kernels:
                    out.add(name)
                else:
                    todo += graph.inbound(name)
    return out


BN_MODES: tuple[str, ...] = ("train", "freeze")
"""BatchNorm while fine-tuning: ``"train"`` (Keras' default) or ``"freeze"`` (inference mode, nothing updated)."""


def _set_bn_mode(model: "tf.keras.Model", bn: str) -> None:
    """Freeze (``"freeze"``) or unfreeze (``"unfreeze"``) every BatchNorm layer; ``"train"``: no change."""
    if bn not in BN_MODES + ("unfreeze",):
        raise ValueError(f"bn must be one of {BN_MODES}, got {bn!r}")
    if bn != "train":
        for layer in model.layers:
            if isinstance(unwrap(layer), _tf().keras.layers.BatchNormalization):
                layer.trainable = bn == "unfreeze"  # tf.keras: a non-trainable BN layer runs in inference mode


# --------------------------------------------------------------------------- structured (channel) pruning
_CHANNEL_OWNERS = ("Conv1D", "Conv2D", "Dense")
_FOLLOWERS = (  # layers whose output channels are their input channels (channels-last)
    "BatchNormalization", "ReLU", "Activation", "LeakyReLU", "ELU", "Softmax", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
    "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D",
    "UpSampling2D", "DepthwiseConv2D", "Flatten",
)
_RECURRENT = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional")


def _graph(model: "tf.keras.Model") -> Graph:
    """The model's graph (``labkit.graph``); shared layers are refused (pruning edits a layer's weights
    for all its calls, and channel propagation needs each layer called once)."""
    graph = Graph(model)
    shared = graph.shared_layers()
    if shared:
        raise ValueError(f"layer(s) {shared} of {model.name!r} are shared (called more than once); pruning needs "
                         "each layer to be called once")
    return graph


def prunable_channel_layers(model: "tf.keras.Model") -> list[str]:
    """Names of the layers whose output channels :func:`prune_channels` can remove.

    A Conv1D/Conv2D/Dense layer qualifies when every path from its output reaches another Conv/Dense
    layer through channel-following layers only (BatchNorm, activations, dropout, pooling, Flatten,
    DepthwiseConv2D): so never the output layer. Raises ``NotImplementedError`` for recurrent models.
    Used by notebook 07."""
    graph = _graph(model)
    recurrent = [n for n in graph.order if graph.cls(n) in _RECURRENT]
    if recurrent:
        raise NotImplementedError(
            f"channel pruning of recurrent layers ({', '.join(recurrent)}) is not supported: the units of an "
            "LSTM/GRU are tied across its gates and its recurrent kernel. Use the width-multiplier route "
            "(retrain with models.build(..., alpha=0.5)) or unstructured pruning (prune_oneshot / "
            "prune_finetune) for this model.")

    def reaches_consumer(name: str) -> bool:
        if graph.is_output(name) or not graph.consumers(name):
            return False
        for c in graph.consumers(name):
            kind = graph.cls(c)
            if kind in _CHANNEL_OWNERS:
                continue
            if kind in _FOLLOWERS and reaches_consumer(c):
                continue
            return False
        return True

    return [n for n in graph.order if graph.cls(n) in _CHANNEL_OWNERS and reaches_consumer(n)]


def _following_bn(graph: Graph, name: str) -> Any | None:
    consumers = graph.consumers(name)
    if len(consumers) == 1 and graph.cls(consumers[0]) == "BatchNormalization":
        return graph.layer(consumers[0])
    return None


def channel_scores(model: "tf.keras.Model", norm: str = "l1", *, fold_bn: bool = True) -> dict[str, np.ndarray]:
    """Importance of every output channel of the prunable layers: the ``norm`` (``"l1"``, ``"l2"`` or
    ``"linf"``) of each filter's weights (all kernel entries that produce that channel).

    With ``fold_bn`` (default) a filter followed by BatchNorm is scaled by ``|gamma| / sqrt(var + eps)``
    first, i.e. the norm of the filter as deployed after BN folding (a BN layer would otherwise undo
    any difference in filter scale). Used by :func:`prune_channels` and notebook 07."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    graph = _graph(model)
    scores = {}
    for name in prunable_channel_layers(model):
        kernel = np.asarray(graph.layer(name).get_weights()[0], np.float64)
        w = np.abs(kernel.reshape(-1, kernel.shape[-1]))
        bn = _following_bn(graph, name) if fold_bn else None
        if bn is not None and bn.scale:
            gamma = np.asarray(bn.gamma.numpy(), np.float64)
            var = np.asarray(bn.moving_variance.numpy(), np.float64)
            w = w * (np.abs(gamma) / np.sqrt(var + bn.epsilon))[None, :]
        if norm == "l1":
            scores[name] = w.sum(axis=0)
        elif norm == "l2":
            scores[name] = np.sqrt((w ** 2).sum(axis=0))
        else:
            scores[name] = w.max(axis=0)
    return scores


def channels_to_keep(scores: Mapping[str, np.ndarray], fraction: float) -> dict[str, np.ndarray]:
    """For each layer, the (sorted) indices of the channels kept when the weakest ``fraction`` is removed:
    ``max(1, round((1 - fraction) x n))`` channels remain, the same rounding as ``models.scaled``, so
    removing 0.25 of the channels gives the architecture of ``alpha=0.75``. Ties keep the lower index.
    Used by :func:`prune_channels`."""
    fraction = float(fraction)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction (share of channels removed) must be in [0, 1), got {fraction!r}")
    keep = {}
    for name, s in scores.items():
        s = np.asarray(s)
        n_keep = max(1, int(round((1.0 - fraction) * s.size)))
        order = np.argsort(-s, kind="stable")  # strongest first; stable keeps lower index on ties
        keep[name] = np.sort(order[:n_keep])
    return keep


def prune_channels(
    model: "tf.keras.Model",
    fraction: float,
    *,
    norm: str = "l1",
    fold_bn: bool = True,
    layers: Sequence[str] | None = None,
) -> "tf.keras.Model":
    """A physically smaller copy of ``model`` without the weakest ``fraction`` of the output channels
    (filters or units) of each prunable Conv/Dense layer (:func:`prunable_channel_layers`; never the
    output layer), ranked by ``norm`` (see :func:`channel_scores`).

    The next layer loses the matching input channels, BatchNorm statistics and depthwise filters
    follow their channels (in a DS-CNN the depthwise layer keeps the channels of the pointwise
    convolution before it), Flatten is handled. ``fraction=0.25`` keeps 75 % of the channels. ``layers``
    restricts pruning to some layer names. Recurrent models raise ``NotImplementedError``.
    Used by notebook 07."""
    scores = channel_scores(model, norm, fold_bn=fold_bn)
    if layers is not None:
        unknown = set(layers) - set(scores)
        if unknown:
            raise ValueError(f"layer(s) {sorted(unknown)} cannot be channel-pruned; prunable layers of "
                             f"{model.name!r}: {sorted(scores)}")
        scores = {k: v for k, v in scores.items() if k in set(layers)}
    return keep_channels(model, channels_to_keep(scores, fraction))


def _slice_weights(layer: Any, weights: list[np.ndarray], in_idx: np.ndarray | None,
                   out_idx: np.ndarray | None) -> list[np.ndarray]:
    kind = type(layer).__name__
    if kind in _CHANNEL_OWNERS:
        kernel, rest = weights[0], weights[1:]
        if in_idx is not None:
            kernel = np.take(kernel, in_idx, axis=-2)
        if out_idx is not None:
            kernel = np.take(kernel, out_idx, axis=-1)
            rest = [np.take(b, out_idx, axis=0) for b in rest]
        return [kernel, *rest]
    if in_idx is None:
        return weights
    if kind == "DepthwiseConv2D":
        return [np.take(weights[0], in_idx, axis=2), *[np.take(b, in_idx, axis=0) for b in weights[1:]]]
    if kind == "BatchNormalization":
        return [np.take(w, in_idx, axis=0) for w in weights]
    if not weights:
        return weights
    raise NotImplementedError(f"cannot slice the weights of layer {layer.name!r} ({kind})")


def _check_channels_last(layer: Any) -> None:
    """Channel pruning slices the last axis: refuse layouts and layers where channels live elsewhere."""
    problem = None
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        problem = f"data_format={layer.data_format!r}"
    elif getattr(layer, "groups", 1) != 1:
        problem = f"groups={layer.groups}"
    elif type(layer).__name__ == "BatchNormalization":
        rank = len(layer.input_shape)
        if [a % rank for a in layer.axis] != [rank - 1]:
            problem = f"axis={layer.axis}"
    if problem:
        raise NotImplementedError(f"channel pruning expects channels-last layers; {layer.name!r} has {problem}")


def keep_channels(model: "tf.keras.Model", keep: Mapping[str, Iterable[int]]) -> "tf.keras.Model":
    """A new, smaller model keeping only the output channels ``keep[layer]`` of the named Conv/Dense
    layers (all channels of the other layers); the weights are copied, sliced to match.

    If the removed channels contribute nothing to the output (their filters, biases and the
    BatchNorm/depthwise parameters that follow are zero), the new model computes the same function.
    Used by :func:`prune_channels` (notebook 07)."""
    tf = _tf()
    graph = _graph(model)
    allowed = set(prunable_channel_layers(model))
    keep = {name: np.asarray(sorted(set(int(i) for i in idx)), dtype=np.int64) for name, idx in keep.items()}
    for name, idx in keep.items():
        if name not in allowed:
            raise ValueError(f"layer {name!r} cannot be channel-pruned; prunable layers of {model.name!r}: "
                             f"{sorted(allowed)}")
        n = int(graph.layer(name).get_weights()[0].shape[-1])
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"keep[{name!r}] must hold between 1 and {n} channel indices in [0, {n})")

    # propagate which input channels each layer sees (None = all of them, unchanged)
    out_channels: dict[str, np.ndarray | None] = {}
    in_channels: dict[str, np.ndarray | None] = {}
    for name in graph.order:
        kind = graph.cls(name)
        ins = [out_channels.get(src) for src in graph.inbound(name)]
        cur = ins[0] if ins else None
        if any(i is not None for i in ins) and (len(ins) > 1 or kind not in _CHANNEL_OWNERS + _FOLLOWERS):
            raise ValueError(f"layer {name!r} ({kind}) receives pruned channels but is not supported by "
                             "channel pruning; prune only layers listed by prunable_channel_layers()")
        in_channels[name] = cur
        if cur is not None or name in keep:
            _check_channels_last(graph.layer(name))
        if kind in _CHANNEL_OWNERS:
            out_channels[name] = keep.get(name)
        elif kind == "Flatten" and cur is not None:
            shape = graph.layer(name).input_shape
            positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
            channels = int(shape[-1])
            out_channels[name] = (np.arange(positions)[:, None] * channels + cur[None, :]).reshape(-1)
        elif kind == "DepthwiseConv2D" and cur is not None and graph.layer(name).depth_multiplier != 1:
            raise NotImplementedError(f"depthwise layer {name!r} has depth_multiplier != 1")
        else:
            out_channels[name] = cur

    # rebuild from the edited config, then copy the sliced weights
    cfg = model.get_config()
    layer_cfgs = cfg["layers"]
    for layer_cfg in layer_cfgs:
        layer_cfg.pop("build_config", None)  # stale input shapes: layers are rebuilt on their new inputs
        name = layer_cfg["config"]["name"]
        if name in keep:
            key = "units" if graph.cls(name) == "Dense" else "filters"
            layer_cfg["config"][key] = int(keep[name].size)
    custom = {type(layer).__name__: type(layer) for layer in model.layers}
    builder = tf.keras.Sequential if isinstance(model, tf.keras.Sequential) else tf.keras.Model
    with tf.keras.utils.custom_object_scope(custom):
        new = builder.from_config(cfg)
    for layer in new.layers:
        old = graph.layer(layer.name)
        layer.set_weights(_slice_weights(old, old.get_weights(), in_channels[layer.name], keep.get(layer.name)))
    return new
