"""Training recipes for keyword spotting and forecasting, and the Keras primitives
every fine-tune shares (eager batched :func:`predict`, :func:`compile_model`, :func:`dataset`, :func:`fit`).

* :func:`train_kws` trains a KWS model on a :class:`~labkit.data.KWSData` with a ``tf.data`` pipeline
  (features computed once and cached, or per epoch when waveform augmentation is on), a cosine
  learning-rate schedule and early stopping that restores the best weights; it reports test top-1,
  per-class accuracy and the confusion matrix.
* :func:`train_forecaster` trains a forecaster on :class:`~labkit.data.Windows` on MAE loss; by default
  the network predicts the *change* from the last observed value (``models.build(..., residual=True)``,
  so the saved model is self-contained).
* Metrics come from ``labkit.metrics`` (top-1 with per-class accuracy; MAE in real units next to
  persistence), the same functions ``labkit.tasks`` scores every later model with.
* :func:`compile_model`, :func:`dataset` and :func:`fit` are the one way a model is compiled (Adam,
  cosine decay, eager below :data:`EAGER_MAX_STEPS`), fed (seeded shuffles) and fitted (a tqdm bar over
  epochs): the recipes here use them, and so do pruning's fine-tunes (``labkit.prune``).
* Every trained model goes through the model cache (``labkit.model_cache``, re-exported here: ``TrainResult``,
  ``load_cached``, ``save_cached``, ``cache_key`` ...), keyed by a hash of the data fingerprint, features,
  model architecture, hyper-parameters, seed and ``RECIPE_VERSION``; later notebooks (conversion,
  quantization, pruning, trade-offs) call the same ``train_*`` function and get the cached model back in a
  second, and a model another process is training meanwhile is waited for, not trained twice.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from . import config, features as feats, models
from .augment import KWS_AUGMENT, Augment, mask_fn, resolve as _resolve_augment, smoothed_sparse_ce, waveform_fn
from .data import check_splits, synthetic_clips
from .model_cache import (RECIPE_VERSION, TrainResult, architecture_fingerprint, cache_key, cache_lock,  # noqa: F401
                          canonical_json, fingerprint, hash_arrays, load_cached, models_dir, report_hit, save_cached)
from .metrics import forecast_metrics, kws_metrics, short_target_name

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

KWS_LEARNING_RATE = 2e-3
"""Peak Adam learning rate of :func:`train_kws` (cosine decay from there); fine-tunes start at it too."""

FORECAST_LEARNING_RATE = 1e-2
"""Peak Adam learning rate of :func:`train_forecaster`; fine-tunes start at it too."""

EAGER_MAX_STEPS = 40
"""Trainings and fine-tunes of at most this many steps run eagerly: tracing the train/test graphs costs a
few seconds, more than it saves on so few steps (the smoke profile)."""


# ------------------------------------------------------------------------------------- shared pieces
def predict(model: "tf.keras.Model", x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """``model`` outputs on ``x`` in inference mode, batched eagerly (no per-model ``predict``
    tracing, so looping over many models stays quiet). The one Keras predict of the kit (the batch
    size does not change the outputs). Used by notebooks 03-08."""
    import tensorflow as tf

    x = np.asarray(x, np.float32)
    if len(x) == 0:
        raise ValueError("predict needs at least one sample")
    return np.concatenate([model(tf.constant(x[i:i + batch_size]), training=False).numpy()
                           for i in range(0, len(x), batch_size)])


def compile_model(model: "tf.keras.Model", loss: Any, learning_rate: float = 1e-3, *,
                  metrics: Sequence[Any] | None = None, total_steps: int | None = None) -> None:
    """Compile with Adam: at a constant ``learning_rate``, or for a run of ``total_steps`` steps with the
    rate decaying from ``learning_rate`` to 5 % of it (cosine); runs of at most :data:`EAGER_MAX_STEPS`
    steps run eagerly. Used by the recipes here and the fine-tunes of ``labkit.prune`` (notebooks 03-08)."""
    import tensorflow as tf

    lr: Any = learning_rate
    if total_steps is not None:
        lr = tf.keras.optimizers.schedules.CosineDecay(initial_learning_rate=learning_rate,
                                                       decay_steps=max(1, int(total_steps)), alpha=0.05)
    model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss=loss, metrics=list(metrics or []),
                  run_eagerly=total_steps is not None and total_steps <= EAGER_MAX_STEPS)


def dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int, cache: bool = False) -> Any:
    """A deterministic ``tf.data`` pipeline over ``(x, y)``: reshuffled every epoch from ``seed``, batched,
    prefetched (``cache`` keeps the tensors after the first epoch). Used by the recipes here and the
    fine-tunes of ``labkit.prune`` (notebooks 03-08)."""
    import tensorflow as tf

    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty with the same length, got {len(x)} and {len(y)}")
    opts = tf.data.Options()
    opts.deterministic = True
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if cache:
        ds = ds.cache()
    return (ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
            .prefetch(tf.data.AUTOTUNE).with_options(opts))


def fit(model: "tf.keras.Model", train_ds: Any, val_ds: Any = None, *, epochs: int, callbacks: Sequence[Any] = (),
        verbose: int = 0, desc: str = "epochs", monitor: str | None = None) -> dict[str, list[float]]:
    """``model.fit`` for ``epochs`` with one tqdm bar over the epochs (``verbose=0``; ``monitor`` names a
    metric to show beside it) and TensorFlow's retracing warnings silenced; returns the history as
    plain lists. Used by the recipes here and the fine-tunes of ``labkit.prune`` (notebooks 03-08)."""
    callbacks = list(callbacks)
    if verbose == 0:
        callbacks.append(_tqdm_callback(epochs, desc, monitor))
    with _quiet_retracing():
        hist = model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=verbose)
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def _early_stopping(monitor: str, mode: str, patience: int) -> Any:
    import tensorflow as tf

    return tf.keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience,
                                            restore_best_weights=True, verbose=0)


class _Timer:
    def __enter__(self) -> "_Timer":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.t0


@contextlib.contextmanager
def _quiet_retracing() -> Iterator[None]:
    """Silence TensorFlow's Python warnings (e.g. "N out of the last M calls triggered tf.function
    retracing", which every new model or a last partial batch triggers, harmlessly) in a block."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def quiet_cache_hits() -> Iterator[None]:
    """Swallow the "[train] cache hit" lines (one per model loaded from the cache) but keep every other
    line printed. Used by ``labkit.search`` and ``labkit.experiments.tradeoffs`` (notebook 08)."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        for line in buf.getvalue().splitlines():
            if not line.startswith("[train] cache hit"):
                print(line)


def _tqdm_callback(epochs: int, desc: str, monitor: str | None) -> Any:
    """A Keras callback showing one tqdm bar over epochs, with the monitored metric."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    class TqdmEpochs(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=epochs, desc=desc, leave=False)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.update(1)
            if monitor and logs and monitor in logs:
                self.bar.set_postfix({monitor: f"{logs[monitor]:.4f}"})

        def on_train_end(self, logs=None):
            self.bar.close()

    return TqdmEpochs()


def kws_settings(cfg: config.Profile) -> dict[str, Any]:
    """``epochs``, ``batch_size`` and ``augment`` of a profile for :func:`train_kws`: every notebook passing
    these (and the same data, features and seed) gets the same cached model. ``smoke`` and ``quick`` train
    without augmentation (``augment=False``: features computed once, ~35 % faster; the synthetic set is
    already noisy and 10 epochs are too few for augmentation to pay); ``full`` gets :func:`train_kws`'s
    default recipe. Used by notebooks 03 and 05-08."""
    out: dict[str, Any] = {"epochs": int(cfg.kws_epochs), "batch_size": int(cfg.kws_batch_size)}
    if cfg.name in ("smoke", "quick"):
        out["augment"] = False
    return out


def forecast_settings(cfg: config.Profile) -> dict[str, int]:
    """``epochs`` and ``batch_size`` of a profile for :func:`train_forecaster` (same cached model
    everywhere). Used by notebooks 04-08."""
    return {"epochs": int(cfg.forecast_epochs), "batch_size": int(cfg.forecast_batch_size)}


# ------------------------------------------------------------------------------------------------ KWS
_FEATURE_CACHE: "OrderedDict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]" = OrderedDict()
_FEATURE_CACHE_SIZE = 3


def _feature_dict(cfg: Any, name: str | None) -> dict[str, Any]:
    d = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(vars(cfg))
    if name is not None:
        d.setdefault("name", name)
    return d


def kws_features(data: Any, features: Any, *, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features of the train/val/test splits of ``data``, computed once per (data, features) and
    memoised in memory (the last few pairs). Used by :func:`train_kws` and ``labkit.tasks`` (notebooks 03-08)."""
    cfg = feats.get(features)
    key = (fingerprint(data), canonical_json(_feature_dict(cfg, None)))
    if key in _FEATURE_CACHE:
        _FEATURE_CACHE.move_to_end(key)
        return _FEATURE_CACHE[key]
    with _quiet_retracing():
        out = tuple(np.asarray(feats.compute(np.asarray(x, np.float32), cfg, batch_size=batch_size), np.float32)
                    for x in (data.x_train, data.x_val, data.x_test))
    _FEATURE_CACHE[key] = out  # type: ignore[assignment]
    while len(_FEATURE_CACHE) > _FEATURE_CACHE_SIZE:
        _FEATURE_CACHE.popitem(last=False)
    return out  # type: ignore[return-value]


def mix_synthetic(data: Any, per_word: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Training waveforms/labels of ``data`` plus ``per_word`` synthetic (eSpeak NG) clips per label,
    mapped to ``data``'s label indices by name (train split only; val/test stay real).

    Returns ``(x_train, y_train, added_per_label)``. Used by :func:`train_kws` (notebook 03).
    """
    labels = list(data.labels)
    x_syn, names = synthetic_clips(labels, int(per_word), seed=seed + 1000)  # not the eval set's seed
    index = {lab: i for i, lab in enumerate(labels)}
    keep = np.array([str(n) in index for n in names], dtype=bool)
    if not keep.any():
        raise ValueError(f"no synthetic clip matches the labels {labels}")
    y_syn = np.array([index[str(n)] for n in np.asarray(names)[keep]], dtype=np.int64)
    added = {lab: int(np.sum(y_syn == i)) for lab, i in index.items()}
    x_train = np.concatenate([np.asarray(data.x_train, np.float32), np.asarray(x_syn, np.float32)[keep]])
    y_train = np.concatenate([np.asarray(data.y_train, np.int64), y_syn])
    return x_train, y_train, added


def is_synthetic(data: Any) -> bool:
    """Whether a ``KWSData`` is the generated eSpeak NG set (``extra_synthetic`` then makes no sense).

    Used by notebook 03."""
    return str(getattr(data, "name", "")) == "synthetic" or "synthetic" in (getattr(data, "info", None) or {})


def _compile_kws(model: "tf.keras.Model", learning_rate: float = 1e-3, total_steps: int | None = None,
                 label_smoothing: float = 0.0) -> None:
    import tensorflow as tf

    loss: Any = tf.keras.losses.SparseCategoricalCrossentropy()
    if label_smoothing:
        loss = smoothed_sparse_ce(int(model.output_shape[-1]), label_smoothing)
    compile_model(model, loss, learning_rate, metrics=["accuracy"], total_steps=total_steps)


def train_kws(
    model_name: str,
    data: Any,
    features: Any = "mfcc_a",
    *,
    epochs: int,
    batch_size: int = 64,
    seed: int = 0,
    alpha: float = 1.0,
    learning_rate: float = KWS_LEARNING_RATE,
    patience: int = 30,
    augment: Augment | bool | None = None,
    noise: np.ndarray | None = None,
    label_smoothing: float = 0.0,
    extra_synthetic: int = 0,
    cache: bool = True,
    verbose: int = 0,
) -> TrainResult:
    """Train (or load from the cache) a KWS model and evaluate it on the test split.

    ``features`` is a preset name (``"mfcc_a"``, ``"stft"`` ...) or a ``FeatureConfig``. The default
    recipe is the one that did best on unseen speakers (speaker-disjoint 5-fold cross-validation on real
    Speech Commands clips, benchmarks/kws_real.py): ``augment=None`` (or ``True``) means ``augment.KWS_AUGMENT``
    (speed +-10 %, +-100 ms time shift, background noise on 80 % of the clips from the training ``_silence_`` /
    ``_background_noise_`` clips, ``data.noise``, else white noise), so features are recomputed each epoch
    (slower); ``augment=False`` computes them once; an ``Augment`` with ``time_masks`` / ``freq_masks`` adds
    SpecAugment-style masks. Adam with a cosine learning-rate decay over ``epochs``, early stopping on
    validation accuracy after ``patience`` epochs without improvement (the default lets a 30-epoch run
    finish its schedule: a small validation split is noisy), restoring the best weights.
    ``label_smoothing`` softens the targets (did not help). ``extra_synthetic=N`` mixes ``N`` synthetic
    clips per word into the training split (real datasets only; hurt on unseen speakers). An empty train
    or validation split fails early, saying how the data was split. ``cache=False`` neither loads nor stores:
    it retrains and leaves the cache as it was (an experiment never replaces the model the notebooks load).
    Used by notebooks 03, 05, 06, 07 and 08.
    """
    import tensorflow as tf

    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be >= 1")
    if extra_synthetic and is_synthetic(data):
        raise ValueError("extra_synthetic mixes synthetic clips into a *real* dataset; this dataset is "
                         "already synthetic (use per_word in load_kws for more clips instead)")
    augment = _resolve_augment(augment)
    check_splits(data)
    if augment and augment.on_waveform and noise is None:
        noise = getattr(data, "noise", None)   # the dataset's own background noise (training split)
    cfg = feats.get(features)
    feat_info = _feature_dict(cfg, features if isinstance(features, str) else feats.preset_name(cfg))
    labels = list(data.labels)
    input_shape = tuple(int(d) for d in feats.output_shape(cfg))

    config.seed_everything(seed)
    model = models.build(model_name, input_shape, len(labels), alpha=alpha, seed=seed)
    hyper = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "patience": patience,
             "augment": dataclasses.asdict(augment) if augment else None,
             "noise": hash_arrays(np.asarray(noise))[:16] if (augment and noise is not None) else None,
             "extra_synthetic": int(extra_synthetic)}
    if label_smoothing:
        hyper["label_smoothing"] = float(label_smoothing)
    key = cache_key("kws", model_name, {
        "data": fingerprint(data), "features": feat_info, "alpha": alpha, "seed": seed,
        "architecture": architecture_fingerprint(model), "hyper": hyper})
    info = {"model_name": model_name, "task": "kws", "dataset": getattr(data, "name", ""), "labels": labels,
            "features": feat_info, "input_shape": list(input_shape), "alpha": alpha, "seed": seed, **hyper}

    with cache_lock(key, enabled=cache):  # another process making this very model: wait, then load it
        hit = load_cached(key, compile_fn=_compile_kws) if cache else None
        if hit is not None:
            report_hit(hit)
            return hit

        # ---- data pipeline
        x_train_w, y_train = np.asarray(data.x_train, np.float32), np.asarray(data.y_train, np.int64)
        if extra_synthetic:
            x_train_w, y_train, added = mix_synthetic(data, int(extra_synthetic), seed=seed)
            info["synthetic_added"] = added
        f_train, f_val, f_test = kws_features(data, cfg)
        y_val, y_test = np.asarray(data.y_val, np.int64), np.asarray(data.y_test, np.int64)
        n_train = len(y_train)
        steps = int(np.ceil(n_train / batch_size))
        if augment and augment.on_waveform:
            opts = tf.data.Options()
            opts.deterministic = True
            fn = feats.tf_fn(cfg)
            train_ds = (tf.data.Dataset.from_tensor_slices((x_train_w, y_train))
                        .shuffle(n_train, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
                        .map(waveform_fn(augment, noise)).map(lambda x, y: (fn(x), y))
                        .prefetch(tf.data.AUTOTUNE).with_options(opts))
        else:
            if extra_synthetic:
                with _quiet_retracing():
                    f_extra = np.asarray(feats.compute(x_train_w[len(data.y_train):], cfg, batch_size=256), np.float32)
                f_train = np.concatenate([f_train, f_extra])
            train_ds = dataset(f_train, y_train, batch_size, seed=seed, cache=True)
        if augment and augment.on_features:
            train_ds = train_ds.map(mask_fn(augment))
        val_ds = tf.data.Dataset.from_tensor_slices((f_val, y_val)).batch(256).cache()

        _compile_kws(model, learning_rate, total_steps=epochs * steps, label_smoothing=label_smoothing)
        with _Timer() as t:
            history = fit(model, train_ds, val_ds, epochs=epochs, verbose=verbose, monitor="val_accuracy",
                          callbacks=[_early_stopping("val_accuracy", "max", patience)])
        probs = predict(model, f_test)
        metrics = kws_metrics(y_test, probs, labels)
        metrics["val_top1"] = float(max(history.get("val_accuracy", [float("nan")])))
        metrics["best_epoch"] = int(np.argmax(history["val_accuracy"])) + 1 if history.get("val_accuracy") else 0
        metrics["n_train"] = int(n_train)
        _compile_kws(model)  # plain optimizer for whoever fine-tunes it next
        result = TrainResult(model=model, history=history, metrics=metrics, train_time_s=t.seconds,
                             cache_hit=False, key=key, info=info)
        if cache:
            save_cached(result)
    print(f"[train] trained {model_name} on {feat_info.get('name', feat_info.get('kind'))} in {t.seconds:.1f} s "
          f"({len(history['loss'])} epochs): test top-1 {metrics['top1']:.3f}; "
          f"{'cached as ' + key if cache else 'not stored (cache=False)'}")
    return result


# -------------------------------------------------------------------------------------- forecasting
def _target_indices(windows: Any) -> list[int]:
    """Input-feature indices of the targets, checking they share the targets' normalisation (which
    the residual head of ``models.build(..., residual=True)`` relies on)."""
    feats = list(windows.feature_names)
    idx = []
    for j, name in enumerate(windows.target_names):
        if name not in feats:
            raise ValueError(f"residual forecasting needs target {name!r} among the input features "
                             f"{feats}; pass residual=False or include it in make_windows(features=...)")
        i = feats.index(name)
        if not (np.isclose(windows.feature_mean[i], windows.target_mean[j])
                and np.isclose(windows.feature_std[i], windows.target_std[j])):
            raise ValueError(f"target {name!r} is normalised differently as input and as target; "
                             "residual=True needs the same mean/std (pass residual=False)")
        idx.append(i)
    return idx


def _weighted_mae(weights: Sequence[float]) -> Callable:
    """MAE over samples, steps and targets with one weight per target (normalised units, mean weight 1)."""
    import tensorflow as tf

    w = tf.constant((np.asarray(weights, np.float64) / np.mean(weights)).astype(np.float32))

    def weighted_mae(y_true: Any, y_pred: Any) -> Any:
        return tf.reduce_mean(tf.abs(y_true - y_pred) * w, axis=-1)

    return weighted_mae


def _compile_fc(model: "tf.keras.Model", learning_rate: float = 1e-3, total_steps: int | None = None,
                target_weights: Sequence[float] | None = None) -> None:
    loss: Any = "mae" if target_weights is None else _weighted_mae(target_weights)
    compile_model(model, loss, learning_rate, metrics=["mse"], total_steps=total_steps)


def evaluate_forecaster(model: "tf.keras.Model", windows: Any, split: str = "test") -> dict[str, Any]:
    """MAE in real units of ``model`` on ``split`` and of persistence, with the ratio model/persistence.

    Keys: ``T_mae``, ``RH_mae`` (+ ``_steps``), ``persist_T_mae``, ``persist_RH_mae`` (+ ``_steps``),
    ``T_ratio``, ``RH_ratio``. Used by :func:`train_forecaster` and notebooks 04-08.
    """
    x = getattr(windows, f"x_{split}")
    pred = predict(model, np.asarray(x, np.float32), batch_size=1024)
    return forecast_metrics(windows, pred, split)


def train_forecaster(
    model_name: str,
    windows: Any,
    *,
    epochs: int,
    batch_size: int = 64,
    seed: int = 0,
    alpha: float = 1.0,
    learning_rate: float = FORECAST_LEARNING_RATE,
    patience: int = 15,
    residual: bool = True,
    target_weights: Sequence[float] | None = None,
    cache: bool = True,
    verbose: int = 0,
) -> TrainResult:
    """Train (or load from the cache) a forecaster on ``windows`` with MAE loss and evaluate it.

    ``residual=True`` (default) predicts the change from the last observed value, which helped most;
    early stopping (``patience`` epochs on validation MAE) restores the best weights. Metrics are in
    real units on the test split, with persistence beside them. ``target_weights`` (one per target) weighs
    each target's MAE in the loss (default: equal; [1, 2] did not beat noise over 7 seeds on Payerne).
    ``cache=False`` neither loads nor stores: it retrains and leaves the cache as it was. Used by
    notebooks 04-08.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be >= 1")
    x_train = np.asarray(windows.x_train, np.float32)
    y_train = np.asarray(windows.y_train, np.float32)
    input_shape = tuple(int(d) for d in x_train.shape[1:])
    outputs = tuple(int(d) for d in y_train.shape[1:])

    config.seed_everything(seed)
    model = models.build(model_name, input_shape, outputs, alpha=alpha, seed=seed, residual=residual,
                         target_indices=_target_indices(windows) if residual else None)
    hyper = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
             "patience": patience, "residual": residual}
    if target_weights is not None:
        if len(target_weights) != outputs[-1] or min(target_weights) < 0 or not sum(target_weights) > 0:
            raise ValueError(f"target_weights must be {outputs[-1]} non-negative weights (one per target "
                             f"{list(windows.target_names)}), got {target_weights!r}")
        hyper["target_weights"] = [float(v) for v in target_weights]
    key = cache_key("fc", model_name, {"data": fingerprint(windows), "alpha": alpha, "seed": seed,
                                       "architecture": architecture_fingerprint(model), "hyper": hyper})
    info = {"model_name": model_name, "task": "forecast", "input_shape": list(input_shape),
            "output_shape": list(outputs), "target_names": list(windows.target_names),
            "feature_names": list(windows.feature_names), "alpha": alpha, "seed": seed, **hyper}
    with cache_lock(key, enabled=cache):  # another process making this very model: wait, then load it
        hit = load_cached(key, compile_fn=_compile_fc) if cache else None
        if hit is not None:
            report_hit(hit)
            return hit

        import tensorflow as tf

        n = len(x_train)
        train_ds = dataset(x_train, y_train, batch_size, seed=seed, cache=True)
        val_ds = tf.data.Dataset.from_tensor_slices((np.asarray(windows.x_val, np.float32),
                                                     np.asarray(windows.y_val, np.float32))).batch(1024).cache()
        steps = int(np.ceil(n / batch_size))
        _compile_fc(model, learning_rate, total_steps=epochs * steps, target_weights=target_weights)
        with _Timer() as t:
            history = fit(model, train_ds, val_ds, epochs=epochs, verbose=verbose, monitor="val_loss",
                          callbacks=[_early_stopping("val_loss", "min", patience)])
        metrics = evaluate_forecaster(model, windows, "test")
        val = evaluate_forecaster(model, windows, "val")
        metrics.update({f"val_{k}": v for k, v in val.items() if k.endswith("_mae") and not k.startswith("persist")})
        metrics["best_epoch"] = int(np.argmin(history["val_loss"])) + 1
        metrics["n_train"] = int(n)
        _compile_fc(model)
        result = TrainResult(model=model, history=history, metrics=metrics, train_time_s=t.seconds,
                             cache_hit=False, key=key, info=info)
        if cache:
            save_cached(result)
    names = [short_target_name(nm) for nm in windows.target_names]
    summary = ", ".join(f"{s} MAE {metrics[f'{s}_mae']:.3f} (persistence {metrics[f'persist_{s}_mae']:.3f})"
                        for s in names)
    print(f"[train] trained {model_name} in {t.seconds:.1f} s ({len(history['loss'])} epochs): {summary}; "
          f"{'cached as ' + key if cache else 'not stored (cache=False)'}")
    return result
