"""Pruning: unstructured magnitude pruning (one-shot or fine-tuned with tfmot) and structured channel pruning.

*Unstructured* pruning zeroes individual weights; the network keeps its shape, so parameters, MACs
and latency stay the same on a dense runtime such as TFLite, but the zeros compress well (zlib) and a
sparse kernel could skip them.

* :func:`prune_oneshot` zeroes the smallest-magnitude weights of a trained model at exactly the
  requested sparsity, per layer or globally, without any training.
* :func:`prune_finetune` prunes gradually while fine-tuning with ``tfmot.sparsity.keras``: a
  ``PolynomialDecay`` schedule whose ``end_step`` is aligned with the pruning ``frequency`` (so the
  final sparsity is reached exactly, see :func:`pruning_schedule`), the ``UpdatePruningStep``
  callback, and ``strip_pruning`` afterwards. tfmot's registry lists no prunable weight for
  ``DepthwiseConv2D``, so by default the depthwise kernels are handed to tfmot explicitly and pruned
  by the same schedule (``depthwise="prune"``); ``depthwise="dense"`` keeps tfmot's behaviour.
* :func:`sparsity_report` tells, per layer, how many weights are zero.

*Structured* pruning removes whole filters/units: :func:`prune_channels` ranks the output channels of
every convolution and dense layer (except the output layer) by the L1, L2 or L-infinity norm of their
weights and builds a physically smaller model (next layer's input channels, BatchNorm and depthwise
parameters sliced to match), so parameters, MACs and latency fall. :func:`keep_channels` is the
surgery with explicit channel lists.

:func:`sweep` and :func:`summary_table` run the whole comparison of notebook 07 on a :class:`Task`
(``kws_task`` / ``forecast_task``) and :data:`CORTEX_M4` turns MACs into an *estimated*
microcontroller latency.
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import config

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = [
    "McuModel", "CORTEX_M4", "PRUNABLE_WEIGHT_NAMES", "NORMS", "SPARSITIES", "KEEP_WIDTHS", "SUMMARY_LEVELS",
    "EAGER_MAX_STEPS", "copy_model", "sparsity_report", "sparsity_comparison", "width_table", "prune_oneshot",
    "recalibrate_bn", "pruning_schedule", "last_pruned_sparsity", "schedule_table", "FinetuneResult", "prune_finetune", "finetune",
    "prunable_channel_layers", "channel_scores", "channels_to_keep", "prune_channels", "keep_channels",
    "Task", "kws_task", "forecast_task", "sweep_settings", "measure", "SweepResult", "sweep", "compare_norms",
    "summary_table", "summary_key", "interleaved_latency", "plot_tradeoffs", "plot_sizes", "plot_norms",
]

PRUNABLE_WEIGHT_NAMES: tuple[str, ...] = ("kernel", "depthwise_kernel", "pointwise_kernel", "recurrent_kernel")
"""Weights that magnitude pruning touches (biases, BatchNorm parameters and statistics are left alone)."""

NORMS: tuple[str, ...] = ("l1", "l2", "linf")
"""Filter-ranking norms of :func:`prune_channels`."""


# --------------------------------------------------------------------------- MCU latency estimate
@dataclasses.dataclass(frozen=True)
class McuModel:
    """A first-order microcontroller latency model: ``ms = MACs x cycles_per_mac / clock``.

    It ignores per-layer overheads, memory stalls and the different efficiency of depthwise, dense
    and pointwise kernels, so its numbers are *estimates* to compare models with, not measurements.
    Used by notebook 07.
    """

    name: str
    clock_hz: float
    cycles_per_mac: float
    source: str

    def latency_ms(self, macs: float) -> float:
        """Estimated inference time in milliseconds for ``macs`` multiply-accumulates."""
        return float(macs) * self.cycles_per_mac / self.clock_hz * 1e3


CORTEX_M4 = McuModel(
    name="Cortex-M4F @ 120 MHz (STM32L4R5, TFLite Micro int8)",
    clock_hz=120e6,
    # 120e6 cycles/s / 5.497 inferences/s / 2,656,768 MACs (the MLPerf Tiny DS-CNN, 49x10x1 -> 12) = 8.2
    cycles_per_mac=120e6 / 5.497 / 2_656_768,
    source=("MLPerf Tiny v0.5 reference submission, keyword spotting (DS-CNN) on the NUCLEO-L4R5ZI: "
            "5.497 inferences/s with TensorFlow Lite Micro 2.3.1, int8 "
            "(github.com/mlcommons/tiny_results_v0.5, closed/reference/results/Nucleo-L4R5ZI/kws/"
            "performance/results.txt). Optimised kernels are faster: microTVM + CMSIS-NN reached "
            "10.0 inferences/s (about 4.5 cycles/MAC) on the same board in v1.1."),
)
"""The one figure behind every "estimated MCU latency" of notebook 07: about 8.2 cycles per MAC
for a Cortex-M4 class core at 120 MHz, measured end to end on the DS-CNN keyword spotter."""


# --------------------------------------------------------------------------- helpers on models
def _tf():
    import tensorflow as tf

    return tf


def _tfmot_sparsity():
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras


def _short_name(weight: Any) -> str:
    return weight.name.split("/")[-1].split(":")[0]


def _unwrap(layer: Any) -> Any:
    """The layer inside a tfmot pruning wrapper (or the layer itself)."""
    inner = getattr(layer, "layer", None)
    return inner if inner is not None and type(layer).__name__ == "PruneLowMagnitude" else layer


def _prunable_weights(model: "tf.keras.Model") -> list[tuple[Any, Any, str]]:
    """``(layer, variable, short_name)`` of every kernel-like weight (pruning wrappers unwrapped)."""
    out = []
    for layer in model.layers:
        inner = _unwrap(layer)
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
    """An independent copy of a Sequential/functional ``model`` (same architecture and weights).

    Used by the pruning functions so the model passed in is never modified (notebook 07).
    """
    tf = _tf()
    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def sparsity_report(model: "tf.keras.Model") -> pd.DataFrame:
    """Per layer: the kernel-like weight, its size, how many entries are exactly zero, the sparsity,
    and whether tfmot's ``prune_low_magnitude`` prunes it (``tfmot_prunable``); a last ``total`` row.

    Works on plain models and on models wrapped for pruning. Used by notebook 07.
    """
    rows = []
    for layer, w, name in _prunable_weights(model):
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


def sparsity_comparison(models: Mapping[str, "tf.keras.Model"]) -> pd.DataFrame:
    """Per-layer kernel sparsity of several models side by side (one column per name), with the layer
    type and whether tfmot prunes it; the last row is the total. Used by notebook 07."""
    frames = []
    for label, model in models.items():
        rep = sparsity_report(model).set_index("layer")
        frames.append(rep["sparsity"].rename(label))
    first = sparsity_report(next(iter(models.values()))).set_index("layer")
    return pd.concat([first[["type", "params", "tfmot_prunable"]], *frames], axis=1)


def width_table(models: Mapping[str, "tf.keras.Model"]) -> pd.DataFrame:
    """Kernel shape of every Conv/Dense/depthwise layer of several models side by side, then their
    parameter and MAC totals (``labkit.estimate``): shows what channel pruning removed. Used by notebook 07."""
    from . import estimate

    columns = {}
    for label, model in models.items():
        col = {layer.name: "x".join(str(d) for d in w.shape) for layer, w, _ in _prunable_weights(model)}
        tot = estimate.totals(model)
        col.update({"params (total)": f"{tot['params']:,}", "MACs (total)": f"{tot['macs']:,}"})
        columns[label] = col
    return pd.DataFrame(columns)


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
    depthwise and output layers). Used by notebook 07.
    """
    sparsity = _check_sparsity(sparsity)
    if scope not in ("per_layer", "global"):
        raise ValueError(f"scope must be 'per_layer' or 'global', got {scope!r}")
    pruned = copy_model(model)
    targets = _prunable_weights(pruned)
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
    as a plain copy. Used by :func:`sweep` (notebook 07).
    """
    tf = _tf()
    fixed = copy_model(model)
    if not any(isinstance(layer, tf.keras.layers.BatchNormalization) for layer in fixed.layers):
        return fixed
    x = np.asarray(x, np.float32)
    if len(x) > max_samples:
        x = x[np.linspace(0, len(x) - 1, int(max_samples)).round().astype(int)]
    graph = _Graph(fixed)
    values: dict[str, Any] = {}
    for name in graph.order:
        layer = graph.layers[name]
        if isinstance(layer, tf.keras.layers.InputLayer):
            values[name] = tf.constant(x)
            continue
        sources = graph.inputs[name]
        ins = [values[src] for src in sources] if sources else [tf.constant(x)]  # Sequential: no InputLayer
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
    end_fraction: float = 0.7,
    power: int = 3,
) -> tuple[Any, dict[str, Any]]:
    """A tfmot ``PolynomialDecay`` (0 -> ``sparsity``) that really reaches ``sparsity``.

    tfmot only prunes at steps ``begin_step + i x frequency`` that are ``<= end_step``; if ``end_step``
    is not on that grid, the last pruning step comes earlier and the model stays below the target
    (0.744 instead of 0.75 with ``frequency=100``). Here ``end_step`` is put on the grid, at about
    ``end_fraction`` of the ``total_steps`` training steps, so the rest fine-tunes at the final
    sparsity. ``frequency`` defaults to ``total_steps // 20`` clipped to [1, 100] (about 14 pruning
    updates). Returns the schedule and a dict describing it. Used by :func:`prune_finetune`.
    """
    sparsity = _check_sparsity(sparsity)
    total_steps = int(total_steps)
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0.0 < end_fraction <= 1.0:
        raise ValueError(f"end_fraction must be in (0, 1], got {end_fraction!r}")
    if frequency is None:
        frequency = int(np.clip(total_steps // 20, 1, 100))
    frequency = int(frequency)
    if frequency < 1:
        raise ValueError(f"frequency must be >= 1, got {frequency}")
    if frequency > total_steps:  # a single pruning update, at the last step
        frequency = total_steps
    # The wrapper increments its step *before* pruning, so the steps seen in training are 1..total_steps
    # and pruning happens at steps frequency, 2 x frequency, ..., end_step.
    begin_step = 0
    end_step = begin_step + frequency * max(1, int(np.floor(end_fraction * total_steps / frequency)))
    sched = _tfmot_sparsity().PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity,
                                              begin_step=begin_step, end_step=end_step, power=power,
                                              frequency=frequency)
    info = {"final_sparsity": sparsity, "begin_step": begin_step, "end_step": end_step,
            "frequency": frequency, "total_steps": total_steps, "pruning_updates": end_step // frequency,
            "power": power}
    return sched, info


def last_pruned_sparsity(schedule: Any, total_steps: int) -> tuple[int, float]:
    """``(step, sparsity)`` of the last pruning update a tfmot schedule makes within ``total_steps``
    training steps (steps 1..total_steps, as the pruning wrapper counts them); ``(0, 0.0)`` if none.

    Used by :func:`schedule_table` (notebook 07).
    """
    tf = _tf()
    steps = tf.range(1, int(total_steps) + 1, dtype=tf.int64)
    should, sparsity = schedule(steps)
    should = np.asarray(should).reshape(-1)
    sparsity = np.broadcast_to(np.asarray(sparsity, np.float64).reshape(-1), should.shape)
    hits = np.flatnonzero(should)
    if hits.size == 0:
        return 0, 0.0
    return int(hits[-1] + 1), float(sparsity[hits[-1]])


def schedule_table(sparsity: float, total_steps: int, *, frequency: int = 100) -> pd.DataFrame:
    """The end-step pitfall in numbers: a ``PolynomialDecay`` with ``end_step = total_steps`` (the
    obvious choice) next to :func:`pruning_schedule`'s aligned one, with the step of the last pruning
    update and the sparsity it reaches. Used by notebook 07.
    """
    sk = _tfmot_sparsity()
    naive = sk.PolynomialDecay(initial_sparsity=0.0, final_sparsity=float(sparsity), begin_step=0,
                               end_step=int(total_steps), frequency=int(frequency))
    aligned, info = pruning_schedule(sparsity, total_steps, frequency=frequency)
    rows = []
    for label, sched, end in (("end_step = total steps", naive, int(total_steps)),
                              ("end_step aligned (labkit)", aligned, info["end_step"])):
        step, reached = last_pruned_sparsity(sched, total_steps)
        rows.append({"schedule": label, "total_steps": int(total_steps), "frequency": int(frequency),
                     "end_step": end, "last_pruning_step": step, "target": float(sparsity),
                     "reached": round(reached, 4)})
    return pd.DataFrame(rows).set_index("schedule")


EAGER_MAX_STEPS = 12
"""Fine-tuning runs of at most this many steps run eagerly: tracing the training graph (several
seconds for a wrapped DS-CNN) costs more than a dozen eager steps (smoke profile)."""


def _compile(model: "tf.keras.Model", loss: Any, metrics: Sequence[Any] | None, learning_rate: float,
             total_steps: int | None = None) -> None:
    """Adam; with ``total_steps`` (a fine-tuning run) a cosine decay of the learning rate over the run."""
    tf = _tf()
    eager = total_steps is not None and total_steps <= EAGER_MAX_STEPS
    lr: Any = learning_rate
    if total_steps is not None:
        lr = tf.keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps), alpha=0.05)
    model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss=loss, metrics=list(metrics or []), run_eagerly=eager)


def _dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> tuple[Any, int]:
    tf = _tf()
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty with the same length, got {len(x)} and {len(y)}")
    opts = tf.data.Options()
    opts.deterministic = True
    ds = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
          .batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(opts))
    return ds, int(np.ceil(len(x) / batch_size))


def _fit(model, x, y, *, epochs, batch_size, validation_data, seed, callbacks, verbose) -> dict[str, list[float]]:
    tf = _tf()
    ds, _ = _dataset(x, y, batch_size, seed)
    val = None
    if validation_data is not None:
        val = tf.data.Dataset.from_tensor_slices(tuple(np.asarray(a) for a in validation_data)).batch(512)
    callbacks = list(callbacks)
    if verbose == 0:
        callbacks.append(_TqdmEpochs(epochs))
    hist = model.fit(ds, validation_data=val, epochs=epochs, callbacks=callbacks, verbose=verbose)
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def _TqdmEpochs(epochs: int) -> Any:  # noqa: N802 - a callback factory
    tf = _tf()
    from tqdm.auto import tqdm

    class TqdmEpochs(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=epochs, desc="fine-tune epochs", leave=False)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return TqdmEpochs()


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
    end_fraction: float = 0.7,
    depthwise: str = "prune",
    seed: int = 0,
    verbose: int = 0,
) -> FinetuneResult:
    """Gradual magnitude pruning to ``sparsity`` while fine-tuning a copy of a trained ``model``.

    tfmot's ``prune_low_magnitude`` wraps every layer that has prunable weights (Dense, Conv, LSTM
    kernels; other layers, e.g. custom ones, are left as they are), the schedule comes from
    :func:`pruning_schedule` (end step aligned with the pruning frequency, so the target is reached
    exactly), the ``UpdatePruningStep`` callback advances it, and ``strip_pruning`` returns plain
    Keras layers. ``depthwise="prune"`` also hands the ``DepthwiseConv2D`` kernels to tfmot (its
    registry lists none), ``"dense"`` leaves them dense as tfmot does. Adam on ``loss`` with the
    learning rate decaying from ``learning_rate`` (cosine); ``model`` itself is not modified.
    Used by notebook 07.
    """
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
                                   end_fraction=end_fraction)

    def wrap(layer):
        if isinstance(layer, tf.keras.layers.DepthwiseConv2D) and depthwise == "prune":
            layer.get_prunable_weights = lambda layer=layer: [layer.depthwise_kernel]
            return sk.prune_low_magnitude(layer, pruning_schedule=sched)
        if _tfmot_weight_names(layer) and not isinstance(layer, tf.keras.layers.DepthwiseConv2D):
            return sk.prune_low_magnitude(layer, pruning_schedule=sched)
        return layer

    wrapped = tf.keras.models.clone_model(base, clone_function=wrap)
    _compile(wrapped, loss, metrics, learning_rate, info["total_steps"])
    t0 = time.perf_counter()
    history = _fit(wrapped, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                   seed=seed, callbacks=[sk.UpdatePruningStep()], verbose=verbose)
    seconds = time.perf_counter() - t0
    stripped = sk.strip_pruning(wrapped)
    clean = copy_model(stripped)  # fresh layers, without the get_prunable_weights attribute
    _compile(clean, loss, metrics, learning_rate)
    info["depthwise"] = depthwise
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
    seed: int = 0,
    verbose: int = 0,
) -> FinetuneResult:
    """Plain fine-tuning of a copy of ``model`` (e.g. after :func:`prune_channels`) with Adam, the
    learning rate decaying from ``learning_rate`` (cosine).

    Used by notebook 07.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    config.seed_everything(seed)
    tuned = copy_model(model)
    _compile(tuned, loss, metrics, learning_rate, epochs * int(np.ceil(len(x) / batch_size)))
    t0 = time.perf_counter()
    history = _fit(tuned, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                   seed=seed, callbacks=[], verbose=verbose)
    seconds = time.perf_counter() - t0
    _compile(tuned, loss, metrics, learning_rate)  # graph mode for whoever uses it next
    return FinetuneResult(model=tuned, history=history, schedule={}, seconds=seconds)


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


class _Graph:
    """Layer connectivity of a Sequential or functional model, by layer name."""

    def __init__(self, model: "tf.keras.Model") -> None:
        tf = _tf()
        self.model = model
        self.layers = {layer.name: layer for layer in model.layers}
        self.order = [layer.name for layer in model.layers]
        self.inputs: dict[str, list[str]] = {}
        if isinstance(model, tf.keras.Sequential):
            prev = None
            for name in self.order:
                self.inputs[name] = [] if prev is None else [prev]
                prev = name
            self.outputs = [self.order[-1]]
        else:
            cfg = model.get_config()
            for layer_cfg in cfg["layers"]:
                nodes = layer_cfg.get("inbound_nodes") or []
                if len(nodes) > 1:
                    raise ValueError(f"layer {layer_cfg['name']!r} is shared (called {len(nodes)} times); "
                                     "channel pruning needs each layer to be called once")
                self.inputs[layer_cfg["name"]] = [t[0] for t in (nodes[0] if nodes else [])]
            self.outputs = [o[0] for o in cfg["output_layers"]]
        self.consumers: dict[str, list[str]] = {n: [] for n in self.inputs}
        for name, ins in self.inputs.items():
            for src in ins:
                self.consumers.setdefault(src, []).append(name)

    def cls(self, name: str) -> str:
        layer = self.layers.get(name)
        return "InputLayer" if layer is None else type(layer).__name__


def prunable_channel_layers(model: "tf.keras.Model") -> list[str]:
    """Names of the layers whose output channels :func:`prune_channels` can remove.

    A Conv1D/Conv2D/Dense layer qualifies when every path from its output reaches another Conv/Dense
    layer through channel-following layers only (BatchNorm, activations, dropout, pooling, Flatten,
    DepthwiseConv2D): so never the output layer. Raises ``NotImplementedError`` for recurrent models.
    Used by notebook 07.
    """
    graph = _Graph(model)
    recurrent = [n for n in graph.order if graph.cls(n) in _RECURRENT]
    if recurrent:
        raise NotImplementedError(
            f"channel pruning of recurrent layers ({', '.join(recurrent)}) is not supported: the units of an "
            "LSTM/GRU are tied across its gates and its recurrent kernel. Use the width-multiplier route "
            "(retrain with models.build(..., alpha=0.5)) or unstructured pruning (prune_oneshot / "
            "prune_finetune) for this model.")

    def reaches_consumer(name: str) -> bool:
        if name in graph.outputs or not graph.consumers.get(name):
            return False
        for c in graph.consumers[name]:
            kind = graph.cls(c)
            if kind in _CHANNEL_OWNERS:
                continue
            if kind in _FOLLOWERS and reaches_consumer(c):
                continue
            return False
        return True

    return [n for n in graph.order if graph.cls(n) in _CHANNEL_OWNERS and reaches_consumer(n)]


def _following_bn(graph: _Graph, name: str) -> Any | None:
    consumers = graph.consumers.get(name, [])
    if len(consumers) == 1 and graph.cls(consumers[0]) == "BatchNormalization":
        return graph.layers[consumers[0]]
    return None


def channel_scores(model: "tf.keras.Model", norm: str = "l1", *, fold_bn: bool = True) -> dict[str, np.ndarray]:
    """Importance of every output channel of the prunable layers: the ``norm`` (``"l1"``, ``"l2"`` or
    ``"linf"``) of each filter's weights (all kernel entries that produce that channel).

    With ``fold_bn`` (default) a filter followed by BatchNorm is scaled by ``|gamma| / sqrt(var + eps)``
    first, i.e. the norm of the filter as deployed after BN folding (a BN layer would otherwise undo
    any difference in filter scale). Used by :func:`prune_channels` and notebook 07.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    graph = _Graph(model)
    scores = {}
    for name in prunable_channel_layers(model):
        kernel = np.asarray(graph.layers[name].get_weights()[0], np.float64)
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
    Used by :func:`prune_channels`.
    """
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
    Used by notebook 07.
    """
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
    Used by :func:`prune_channels` (notebook 07).
    """
    tf = _tf()
    graph = _Graph(model)
    allowed = set(prunable_channel_layers(model))
    keep = {name: np.asarray(sorted(set(int(i) for i in idx)), dtype=np.int64) for name, idx in keep.items()}
    for name, idx in keep.items():
        if name not in allowed:
            raise ValueError(f"layer {name!r} cannot be channel-pruned; prunable layers of {model.name!r}: "
                             f"{sorted(allowed)}")
        n = int(graph.layers[name].get_weights()[0].shape[-1])
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"keep[{name!r}] must hold between 1 and {n} channel indices in [0, {n})")

    # propagate which input channels each layer sees (None = all of them, unchanged)
    out_channels: dict[str, np.ndarray | None] = {}
    in_channels: dict[str, np.ndarray | None] = {}
    for name in graph.order:
        kind = graph.cls(name)
        ins = [out_channels.get(src) for src in graph.inputs.get(name, [])]
        cur = ins[0] if ins else None
        if any(i is not None for i in ins) and (len(ins) > 1 or kind not in _CHANNEL_OWNERS + _FOLLOWERS):
            raise ValueError(f"layer {name!r} ({kind}) receives pruned channels but is not supported by "
                             "channel pruning; prune only layers listed by prunable_channel_layers()")
        in_channels[name] = cur
        if cur is not None or name in keep:
            _check_channels_last(graph.layers[name])
        if kind in _CHANNEL_OWNERS:
            out_channels[name] = keep.get(name)
        elif kind == "Flatten" and cur is not None:
            shape = graph.layers[name].input_shape
            positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
            channels = int(shape[-1])
            out_channels[name] = (np.arange(positions)[:, None] * channels + cur[None, :]).reshape(-1)
        elif kind == "DepthwiseConv2D" and cur is not None and graph.layers[name].depth_multiplier != 1:
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
        old = graph.layers[layer.name]
        layer.set_weights(_slice_weights(old, old.get_weights(), in_channels[layer.name], keep.get(layer.name)))
    return new


# --------------------------------------------------------------------------- notebook 07: tasks and sweeps
SPARSITIES: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
"""Unstructured sparsities swept by notebook 07 (fraction of kernel weights set to zero)."""

KEEP_WIDTHS: tuple[float, ...] = (0.9, 0.75, 0.6, 0.5, 0.35)
"""Structured levels swept by notebook 07, as the fraction of channels *kept* (the course's convention:
"Structured 0.75" keeps 75 % of the channels of every hidden layer, i.e. ``prune_channels(model, 0.25)``,
the architecture of ``alpha=0.75``)."""

SUMMARY_LEVELS: dict[str, tuple[str, float]] = {
    "Structured 0.75": ("structured", 0.75), "Structured 0.5": ("structured", 0.5),
    "Sparse 0.8": ("sparse", 0.8), "Sparse 0.9": ("sparse", 0.9),
}
"""The rows of the course's summary table: (method, level) with the level as kept width (structured)
or sparsity (sparse); all fine-tuned."""


@dataclasses.dataclass
class Task:
    """What notebook 07 needs to prune, fine-tune and score one model family on one dataset.

    ``metric`` is the headline metric key (``"top1"``, higher is better; ``"T_mae"``, lower is better),
    ``extra_metrics`` other keys reported beside it; ``learning_rate`` is the peak learning rate of
    the training recipe (fine-tuning starts there). :meth:`train` returns the (cached) trained model
    for a width multiplier ``alpha``; :meth:`evaluate` scores a Keras model, :meth:`evaluate_tflite` a
    converted file, both on the test split. Build one with :func:`kws_task` or :func:`forecast_task`.
    Used by notebook 07 and benchmarks/pruning.py.
    """

    name: str
    model_name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    loss: str
    metric: str
    higher_is_better: bool
    metric_label: str
    batch_size: int
    learning_rate: float
    seed: int
    trainer: Callable[[float], Any] = dataclasses.field(repr=False)
    scorer: Callable[[Any], dict[str, float]] = dataclasses.field(repr=False)
    tflite_scorer: Callable[[Any], dict[str, float]] = dataclasses.field(repr=False)
    extra_metrics: tuple[str, ...] = ()
    x_calibration: np.ndarray | None = dataclasses.field(default=None, repr=False)  # int8 representative set

    def calibration_inputs(self) -> np.ndarray:
        """The representative inputs for int8 conversion (``x_calibration``, else the training inputs)."""
        return self.x_train if self.x_calibration is None else self.x_calibration

    def train(self, alpha: float = 1.0) -> Any:
        """The trained model at width ``alpha`` (a ``train.TrainResult``, from the model cache when it
        was trained before with the same recipe)."""
        return self.trainer(float(alpha))

    def evaluate(self, model: "tf.keras.Model") -> dict[str, float]:
        """Test-split metrics of a Keras model (``metric`` and ``extra_metrics``)."""
        return self.scorer(model)

    def evaluate_tflite(self, converted: Any) -> dict[str, float]:
        """Test-split metrics of a converted .tflite (LiteRT interpreter)."""
        return self.tflite_scorer(converted)

    def training_subset(self, max_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The training inputs and targets, or ``max_samples`` evenly spaced ones (fine-tuning data)."""
        if max_samples is None or len(self.x_train) <= max_samples:
            return self.x_train, self.y_train
        idx = np.linspace(0, len(self.x_train) - 1, int(max_samples)).round().astype(int)
        return self.x_train[idx], self.y_train[idx]

    def finetune_kwargs(self, epochs: int) -> dict[str, Any]:
        """Keyword arguments of :func:`prune_finetune` / :func:`finetune` for this task: its loss, batch
        size, seed and training learning rate, and ``epochs``."""
        return {"loss": self.loss, "epochs": int(epochs), "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "seed": self.seed}


def _predict(model: "tf.keras.Model", x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Inference-mode outputs in eager batches (``model.predict`` retraces for every new model)."""
    x = np.asarray(x, np.float32)
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)])


def sweep_settings(cfg: config.Profile) -> dict[str, Any]:
    """Keyword arguments of :func:`sweep` for a run profile: levels, fine-tuning epochs, latency runs.

    ``smoke`` sweeps only the summary-table levels, fine-tunes on at most 256 samples and retrains no
    width multiplier; ``quick`` sweeps 5 sparsities and 5 kept widths and retrains alpha 0.5; ``full``
    also retrains every kept width as a width multiplier. Used by notebook 07 and benchmarks/pruning.py.
    """
    out: dict[str, Any] = {"finetune_epochs": int(cfg.finetune_epochs), "bench_runs": int(cfg.bench_runs),
                           "bench_warmup": int(cfg.bench_warmup), "max_train_samples": None,
                           "sparsities": SPARSITIES, "keep_widths": KEEP_WIDTHS, "alphas": (0.5,)}
    if cfg.name == "smoke":
        out.update(sparsities=(0.8, 0.9), keep_widths=(0.75, 0.5), alphas=(), max_train_samples=256)
    elif cfg.name == "full":
        out.update(alphas=KEEP_WIDTHS)
    return out


def _default_lr(fn: Callable) -> float:
    import inspect

    return float(inspect.signature(fn).parameters["learning_rate"].default)


def kws_task(data: Any, model_name: str = "ds_cnn", features: Any = "mfcc_a", *, epochs: int,
             batch_size: int = 64, learning_rate: float | None = None, seed: int = 0) -> Task:
    """A keyword-spotting :class:`Task` on a ``KWSData``: features computed once (``train.kws_features``),
    metric = test top-1 accuracy; ``train(alpha)`` calls ``train.train_kws`` with the same recipe as
    notebook 03 (so the baseline comes from the cache). Used by notebook 07."""
    from . import convert, train

    f_train, f_val, f_test = train.kws_features(data, features)
    labels = list(data.labels)

    def trainer(alpha: float) -> Any:
        extra = {} if learning_rate is None else {"learning_rate": learning_rate}
        return train.train_kws(model_name, data, features, epochs=epochs, batch_size=batch_size, seed=seed,
                               alpha=alpha, **extra)

    def scorer(model: Any) -> dict[str, float]:
        return {"top1": train.kws_metrics(data.y_test, _predict(model, f_test), labels)["top1"]}

    def tflite_scorer(converted: Any) -> dict[str, float]:
        return {"top1": convert.evaluate_tflite_kws(converted, f_test, data.y_test, labels)["top1"]}

    return Task(name="kws", model_name=model_name, x_train=f_train, y_train=np.asarray(data.y_train, np.int64),
                x_val=f_val, y_val=np.asarray(data.y_val, np.int64), x_test=f_test,
                y_test=np.asarray(data.y_test, np.int64), loss="sparse_categorical_crossentropy",
                metric="top1", higher_is_better=True, metric_label="test top-1 accuracy",
                batch_size=batch_size, seed=seed, trainer=trainer, scorer=scorer, tflite_scorer=tflite_scorer,
                learning_rate=_default_lr(train.train_kws) if learning_rate is None else float(learning_rate))


def forecast_task(windows: Any, model_name: str = "fc_mlp", *, epochs: int, batch_size: int = 64,
                  learning_rate: float | None = None, seed: int = 0) -> Task:
    """A forecasting :class:`Task` on ``Windows``: MAE loss on normalised targets, metric = test
    temperature MAE in degC (humidity MAE beside it); ``train(alpha)`` calls ``train.train_forecaster``
    with notebook 04's recipe. Used by notebook 07."""
    from . import convert, train

    names = [train.short_target_name(n) for n in windows.target_names]
    keys = tuple(f"{n}_mae" for n in names)

    def trainer(alpha: float) -> Any:
        extra = {} if learning_rate is None else {"learning_rate": learning_rate}
        return train.train_forecaster(model_name, windows, epochs=epochs, batch_size=batch_size, seed=seed,
                                      alpha=alpha, **extra)

    def scorer(model: Any) -> dict[str, float]:
        out = train.forecast_metrics(windows, _predict(model, windows.x_test), "test")
        return {k: float(out[k]) for k in keys}

    def tflite_scorer(converted: Any) -> dict[str, float]:
        out = convert.evaluate_tflite_forecast(converted, windows, "test")
        return {k: float(out[k]) for k in keys}

    f32 = np.float32
    return Task(name="forecast", model_name=model_name, x_calibration=windows.calibration_inputs(),
                x_train=np.asarray(windows.x_train, f32),
                y_train=np.asarray(windows.y_train, f32), x_val=np.asarray(windows.x_val, f32),
                y_val=np.asarray(windows.y_val, f32), x_test=np.asarray(windows.x_test, f32),
                y_test=np.asarray(windows.y_test, f32), loss="mae", metric=keys[0], higher_is_better=False,
                metric_label=f"test {names[0]} MAE", batch_size=batch_size, seed=seed, trainer=trainer,
                learning_rate=_default_lr(train.train_forecaster) if learning_rate is None else float(learning_rate),
                scorer=scorer, tflite_scorer=tflite_scorer, extra_metrics=keys[1:])


def _nonzero_macs(model: "tf.keras.Model", profile: pd.DataFrame) -> int:
    """MACs a zero-skipping kernel would execute: each layer's MACs times the density of its kernel."""
    density = {}
    for layer, w, _ in _prunable_weights(model):
        v = np.asarray(w.numpy())
        density[layer.name] = float(np.count_nonzero(v)) / max(1, v.size)
    rows = profile[profile["name"] != "total"]
    return int(round(sum(int(m) * density.get(n, 1.0) for n, m in zip(rows["name"], rows["macs"]))))


def measure(
    task: Task,
    model: "tf.keras.Model",
    *,
    modes: Sequence[str] = ("int8_wa",),
    bench_runs: int = 100,
    bench_warmup: int = 10,
    latency: bool = True,
    mcu: McuModel = CORTEX_M4,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Everything notebook 07 reports about one model: test metrics of the Keras model, parameters
    (all, and non-zero), MACs (executed by a dense runtime, and non-zero), the estimated MCU latency
    from the MACs, and for each conversion ``mode`` (``"int8_wa"``, ``"fp32"``) the .tflite size, its
    zlib size (level 9), and for int8 the metric of the file and its measured CPU latency (LiteRT,
    batch 1, 1 thread, median). Returns ``(row, {mode: .tflite bytes})``. Used by notebook 07.
    """
    from . import bench, convert, estimate

    row: dict[str, Any] = dict(task.evaluate(model))
    prof = estimate.profile(model)
    total = prof.iloc[-1]
    report = sparsity_report(model).iloc[-1]
    row["params"] = int(total["params"])
    row["nonzero_params"] = int(total["params"]) - int(report["zeros"])
    row["kernel_sparsity"] = float(report["sparsity"])
    row["macs"] = int(total["macs"])
    row["nonzero_macs"] = _nonzero_macs(model, prof)
    row["mcu_ms_est"] = mcu.latency_ms(row["macs"])
    files = {}
    for mode in modes:
        data = convert.convert(model, mode, task.calibration_inputs() if mode == "int8_wa" else None).data
        files[mode] = data
        prefix = "int8" if mode == "int8_wa" else mode
        row[f"{prefix}_kb"] = len(data) / 1024
        row[f"{prefix}_zlib_kb"] = convert.zlib_size(data, 9) / 1024
        if mode == "int8_wa":
            row.update({f"{k}_int8": v for k, v in task.evaluate_tflite(data).items()})
            if latency:
                lat = bench.latency_tflite(data, task.x_test[:1], runs=bench_runs, warmup=bench_warmup)
                row["cpu_ms"] = float(lat["median_ms"])
    return row, files


def interleaved_latency(files: Mapping[str, bytes], x: np.ndarray, *, runs: int = 100, warmup: int = 10,
                        rounds: int = 3) -> dict[str, float]:
    """Median CPU latency (ms, LiteRT, batch 1, one thread) of several .tflite files measured in
    ``rounds`` interleaved rounds of ``runs / rounds`` timed runs each, keeping each file's lowest
    round median: a burst of load from other processes then hits every file alike instead of the one
    being timed. Used by :func:`sweep` (notebook 07)."""
    from . import bench

    per_round = max(1, int(runs) // max(1, int(rounds)))
    best = {name: float("inf") for name in files}
    for _ in range(max(1, int(rounds))):
        for name, data in files.items():
            lat = bench.latency_tflite(data, x[:1], runs=per_round, warmup=warmup)
            best[name] = min(best[name], float(lat["median_ms"]))
    return best


@dataclasses.dataclass
class SweepResult:
    """The rows of :func:`sweep` (one per variant), the Keras models and the converted files by
    variant name. Used by notebook 07."""

    table: pd.DataFrame
    models: dict[str, Any]
    files: dict[str, dict[str, Any]]


def _variant(method: str, level: float, training: str) -> str:
    if method == "baseline":
        return "baseline"
    return f"{method} {level:g} {training}"


def sweep(
    task: Task,
    model: "tf.keras.Model",
    *,
    sparsities: Sequence[float] = SPARSITIES,
    keep_widths: Sequence[float] = KEEP_WIDTHS,
    alphas: Sequence[float] = (0.75, 0.5),
    finetune_epochs: int = 3,
    learning_rate: float | None = None,
    norm: str = "l1",
    bench_runs: int = 100,
    bench_warmup: int = 10,
    max_train_samples: int | None = None,
    precomputed: Mapping[str, "tf.keras.Model"] | None = None,
    recalibrate: bool = True,
    progress: bool = True,
) -> SweepResult:
    """Prune the trained ``model`` of ``task`` at every level, with and without fine-tuning, and
    :func:`measure` each variant.

    Variants: the baseline; ``sparse s one-shot`` (:func:`prune_oneshot`, per layer) and ``sparse s
    fine-tuned`` (:func:`prune_finetune`) for each sparsity ``s``; ``structured w one-shot``
    (:func:`prune_channels` removing ``1 - w`` of the channels, ranked by ``norm``) and ``structured w
    fine-tuned`` for each kept width ``w``; ``alpha a retrained`` (the model built with width
    multiplier ``a`` and trained from scratch, ``task.train(a)``). With ``recalibrate`` the one-shot
    variants get their BatchNorm statistics re-estimated (:func:`recalibrate_bn`, no training). The
    baseline, fine-tuned and
    retrained variants are converted to int8 (sparse ones and the baseline also to float32); one-shot
    variants share the architecture of their fine-tuned twin, whose measured CPU latency they take
    (column ``latency_of``). Fine-tuning starts at ``learning_rate`` (default: the task's training
    learning rate) and decays it; ``max_train_samples`` fine-tunes on an evenly spaced subset (smoke runs);
    ``precomputed`` maps variant names (e.g. ``"sparse 0.8 fine-tuned"``) to models already made with
    the same settings, which are measured instead of being pruned again.
    Used by notebook 07 and benchmarks/pruning.py.
    """
    from tqdm.auto import tqdm

    x_fit, y_fit = task.training_subset(max_train_samples)

    jobs: list[tuple[str, float, str]] = [("baseline", 1.0, "none")]
    jobs += [("sparse", float(s), t) for s in sparsities for t in ("one-shot", "fine-tuned")]
    jobs += [("structured", float(w), t) for w in keep_widths for t in ("one-shot", "fine-tuned")]
    jobs += [("alpha", float(a), "retrained") for a in alphas]
    rows, models, files = [], {}, {}
    fit_kw = task.finetune_kwargs(finetune_epochs)
    if learning_rate is not None:
        fit_kw["learning_rate"] = float(learning_rate)
    for method, level, training in tqdm(jobs, desc=f"{task.name} variants", disable=not progress):
        name = _variant(method, level, training)
        t0 = time.perf_counter()
        if name in (precomputed or {}):
            variant = precomputed[name]
        elif method == "baseline":
            variant = model
        elif method == "sparse" and training == "one-shot":
            variant = prune_oneshot(model, level)
            if recalibrate:
                variant = recalibrate_bn(variant, x_fit)
        elif method == "sparse":
            variant = prune_finetune(model, level, x_fit, y_fit, **fit_kw).model
        elif method == "structured":
            variant = prune_channels(model, 1.0 - level, norm=norm)
            if training == "fine-tuned":
                variant = finetune(variant, x_fit, y_fit, **fit_kw).model
            elif recalibrate:
                variant = recalibrate_bn(variant, x_fit)
        else:
            variant = task.train(level).model
        seconds = time.perf_counter() - t0 if name not in (precomputed or {}) else float("nan")
        if training == "one-shot":
            modes: tuple[str, ...] = ()
        elif method in ("baseline", "sparse"):
            modes = ("int8_wa", "fp32")
        else:
            modes = ("int8_wa",)
        row, converted = measure(task, variant, modes=modes, latency=False)
        rows.append({"task": task.name, "model": task.model_name, "variant": name, "method": method,
                     "level": level, "training": training, **row,
                     "latency_of": name if "int8_wa" in converted else _variant(method, level, "fine-tuned"),
                     "prune_s": seconds if method != "alpha" else float("nan")})
        models[name], files[name] = variant, converted
    table = pd.DataFrame(rows)
    int8 = {name: f["int8_wa"] for name, f in files.items() if "int8_wa" in f}
    measured = interleaved_latency(int8, task.x_test, runs=bench_runs, warmup=bench_warmup)
    table["cpu_ms"] = [measured.get(v, float("nan")) for v in table["latency_of"]]
    return SweepResult(table=table, models=models, files=files)


def compare_norms(task: Task, model: "tf.keras.Model", keep_widths: Sequence[float] = KEEP_WIDTHS,
                  norms: Sequence[str] = NORMS, *, recalibrate: bool = True,
                  max_samples: int | None = 1024) -> pd.DataFrame:
    """One-shot channel pruning (no fine-tuning) of ``model`` at each kept width with each ranking norm:
    the test metric (after :func:`recalibrate_bn` on up to ``max_samples`` training inputs when
    ``recalibrate``), and how many of the kept channels each norm shares with L1 (``overlap_l1``, over
    all pruned layers). Used by notebook 07."""
    x_cal, _ = task.training_subset(max_samples)
    rows = []
    ref_scores = channel_scores(model, "l1")
    for w in keep_widths:
        ref_keep = channels_to_keep(ref_scores, 1.0 - w)
        for norm in norms:
            keep = channels_to_keep(channel_scores(model, norm), 1.0 - w)
            shared = sum(len(np.intersect1d(keep[k], ref_keep[k])) for k in keep)
            pruned = keep_channels(model, keep)
            metrics = task.evaluate(recalibrate_bn(pruned, x_cal) if recalibrate else pruned)
            rows.append({"keep_width": w, "norm": norm, **metrics,
                         "overlap_l1": shared / max(1, sum(len(v) for v in keep.values()))})
    return pd.DataFrame(rows)


def summary_table(result: SweepResult | pd.DataFrame, task: Task,
                  levels: Mapping[str, tuple[str, float]] = SUMMARY_LEVELS) -> pd.DataFrame:
    """The course's summary table for one task: the baseline and each ``levels`` row (fine-tuned), with
    the metric of the Keras model (``value``, the effect of pruning alone) and of the int8 .tflite
    (``value_int8``, pruning plus quantization), the int8 file's size and zlib size in kB, its measured
    CPU latency, the estimated MCU latency, and the change against the baseline (metrics in their own
    units, the rest in %). Used by notebook 07 and benchmarks/pruning.py.
    """
    table = result.table if isinstance(result, SweepResult) else result
    table = table[table["task"] == task.name].set_index("variant")
    wanted = {"Baseline": "baseline"}
    wanted.update({label: _variant(method, level, "fine-tuned") for label, (method, level) in levels.items()})
    missing = [v for v in wanted.values() if v not in table.index]
    if missing:
        raise ValueError(f"the sweep has no variant(s) {missing}; run sweep() with those levels")
    metric, metric8 = task.metric, f"{task.metric}_int8"
    base = table.loc["baseline"]
    rows = []
    for label, variant in wanted.items():
        r = table.loc[variant]
        rows.append({
            "task": task.name, "model": task.model_name, "variant": label, "metric": task.metric,
            "value": float(r[metric]), "delta": float(r[metric] - base[metric]),
            "value_int8": float(r[metric8]), "delta_int8": float(r[metric8] - base[metric8]),
            "params": int(r["params"]), "nonzero_params": int(r["nonzero_params"]), "macs": int(r["macs"]),
            "tflite_kb": float(r["int8_kb"]), "tflite_change_pct": 100 * (r["int8_kb"] / base["int8_kb"] - 1),
            "zlib_kb": float(r["int8_zlib_kb"]),
            "zlib_change_pct": 100 * (r["int8_zlib_kb"] / base["int8_zlib_kb"] - 1),
            "latency_ms": float(r["cpu_ms"]), "latency_change_pct": 100 * (r["cpu_ms"] / base["cpu_ms"] - 1),
            "mcu_ms_est": float(r["mcu_ms_est"]),
        })
    return pd.DataFrame(rows)


def summary_key(summary: pd.DataFrame) -> dict[str, float]:
    """Headline numbers of a :func:`summary_table` (both tasks) for the report's index page:
    per task and row, the metric and, for the pruned rows, the change of the zlib size and latency.
    Used by notebook 07."""
    key = {}
    for r in summary.itertuples(index=False):
        name = f"{r.task} {r.variant.lower()}"
        key[f"{name} {r.metric}"] = round(float(r.value), 4)
        if r.variant != "Baseline":
            key[f"{name} zlib %"] = round(float(r.zlib_change_pct), 1)
            key[f"{name} latency %"] = round(float(r.latency_change_pct), 1)
    return key


# --------------------------------------------------------------------------- figures of notebook 07
_STYLES = {  # (method, training) -> (label, marker, linestyle)
    ("sparse", "one-shot"): ("sparse, one-shot", "o", "--"),
    ("sparse", "fine-tuned"): ("sparse, fine-tuned", "o", "-"),
    ("structured", "one-shot"): ("structured, one-shot", "s", "--"),
    ("structured", "fine-tuned"): ("structured, fine-tuned", "s", "-"),
    ("alpha", "retrained"): ("width multiplier, retrained", "^", ":"),
}


def plot_tradeoffs(table: pd.DataFrame, task: Task, *, mcu: McuModel = CORTEX_M4, title: str = "") -> Any:
    """Metric vs non-zero parameters, vs MACs, vs measured CPU latency (int8 TFLite) and vs estimated
    MCU latency, one line per (method, training), the baseline as a star. Used by notebook 07."""
    import matplotlib.pyplot as plt

    table = table[table["task"] == task.name]
    axes_spec = [("nonzero_params", "non-zero parameters", True), ("macs", "MACs per inference", True),
                 ("cpu_ms", "CPU latency, int8 TFLite (ms, measured)", False),
                 ("mcu_ms_est", f"MCU latency (ms, ESTIMATE: {mcu.cycles_per_mac:.1f} cycles/MAC "
                                f"@ {mcu.clock_hz / 1e6:.0f} MHz)", False)]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.9), sharey=True)
    base = table[table["method"] == "baseline"].iloc[0]
    for ax, (col, label, log) in zip(axes, axes_spec):
        for (method, training), (name, marker, ls) in _STYLES.items():
            part = table[(table["method"] == method) & (table["training"] == training)].sort_values(col)
            if len(part):
                ax.plot(part[col], part[task.metric], marker=marker, ls=ls, lw=1.3, ms=5, label=name)
        ax.plot([base[col]], [base[task.metric]], "k*", ms=12, label="baseline")
        ax.set_xlabel(label, fontsize=9)
        if log:
            ax.set_xscale("log")
    axes[0].set_ylabel(task.metric_label + (" (higher is better)" if task.higher_is_better else
                                            " (lower is better)"))
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle(title or f"{task.name}: {task.model_name} pruned (Keras float metric)")
    fig.tight_layout()
    return fig


def plot_sizes(table: pd.DataFrame, task: Task) -> Any:
    """.tflite size and zlib-compressed size (float32 and int8) of the fine-tuned sparse models against
    their sparsity: the raw file does not shrink, the compressed one does. Used by notebook 07."""
    import matplotlib.pyplot as plt

    t = table[(table["task"] == task.name) & (table["method"].isin(["baseline", "sparse"]))
              & (table["training"] != "one-shot")].copy()
    t["sparsity"] = np.where(t["method"] == "baseline", 0.0, t["level"])
    t = t.sort_values("sparsity")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for prefix, color in (("fp32", "tab:blue"), ("int8", "tab:orange")):
        ax.plot(t["sparsity"], t[f"{prefix}_kb"], color=color, ls="--", marker="o", label=f"{prefix} .tflite")
        ax.plot(t["sparsity"], t[f"{prefix}_zlib_kb"], color=color, marker="o", label=f"{prefix} zlib -9")
    ax.set(xlabel="sparsity (fraction of kernel weights = 0)", ylabel="kB",
           title=f"{task.name}: {task.model_name}, file size vs sparsity (fine-tuned)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_norms(frame: pd.DataFrame, task: Task) -> Any:
    """Metric of one-shot channel pruning vs kept width, one line per ranking norm
    (:func:`compare_norms`). Used by notebook 07."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for norm, part in frame.groupby("norm", sort=False):
        part = part.sort_values("keep_width")
        ax.plot(part["keep_width"], part[task.metric], marker="o", label=norm)
    ax.set(xlabel="fraction of channels kept", ylabel=task.metric_label,
           title=f"{task.name}: filter ranking norm, one-shot channel pruning")
    ax.legend(title="norm")
    fig.tight_layout()
    return fig
