"""One task abstraction for the two tasks of the course: keyword spotting and forecasting.

A :class:`Task` is everything a lesson needs to train, fine-tune and score one model family on one
dataset: the splits (features for KWS, normalised windows for forecasting), the loss, the headline
metric and how it is computed for a Keras model *and* for a converted .tflite (the same function,
``labkit.metrics``, on the first ``eval_limit`` test samples), the int8 calibration inputs, evenly
spaced training subsets, the fine-tuning settings, the raw input of one prediction (for a latency
breakdown from waveform or raw window to answer) and the training recipe (:meth:`Task.train`, through
the model cache). Build one with :func:`kws_task` or :func:`forecast_task`.

Notebooks 05-08 all score through it: conversion (``experiments.conversion``), quantization
(``experiments.quantization``), pruning (``experiments.pruning``) and the trade-off search (``search``).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import pandas as pd

from . import bench, config, features as feats, metrics, tflite, train
from .data import evenly_spaced

__all__ = ["TASKS", "Task", "kws_task", "forecast_task", "finetune_settings", "predict", "is_tflite",
           "FINETUNE_LR_SCALE", "FINETUNE_KEEP_BEST"]

TASKS: tuple[str, ...] = ("kws", "forecast")
"""The two tasks of the course."""

FINETUNE_LR_SCALE: dict[str, float] = {"kws": 5.0, "forecast": 0.3}
"""Fine-tuning learning rate of every pruning fine-tune = the task's training learning rate x this
(notebooks 07 and 08). Measured on the quick DS-CNN (benchmarks/pruning_recipe.py): a fine-tune after pruning has
to re-learn, not polish; sparse 0.9 after 15 epochs reached 0.777 top-1 at 2e-3 (the training rate), 0.830 at
5e-3 and 0.870 at 1e-2, while lower rates recovered far less (5e-4: 0.36 after 3 epochs). The forecasters, trained
to convergence, drift at their training rate (1e-2) in long fine-tunes: with :data:`FINETUNE_KEEP_BEST`, seeds 0-2,
T MAE ratio to the unpruned model under ``full`` (30 epochs) / ``quick`` (15), mean (worst): at 1e-2 fc_mlp Sparse
0.8 1.14 (1.22) / 1.01 (1.03), fc_lstm 1.14 (1.28) / 0.98 (1.04); at 3e-3 fc_mlp 1.01 (1.07) / 1.00 (1.02), fc_lstm
0.95 (0.98) / 0.96 (0.99). Some cells got a little worse, most of all fc_cnn's: Sparse 0.8 under full 1.00 (1.03)
-> 1.04 (1.13), Structured 0.5 under quick 1.02 (1.03) -> 1.06 (1.16). The worst cell over the three forecasters,
four variants and both budgets fell from 1.28 to 1.16 (fc_cnn Structured 0.5)."""

FINETUNE_KEEP_BEST: dict[str, bool] = {"kws": False, "forecast": True}
"""Whether a task's fine-tunes return the epoch with the lowest validation loss (``prune.finetune(keep_best=True)``;
sparse: among the epochs at the final sparsity) instead of the last one. A forecaster is trained to its best
validation epoch (early stopping), so more epochs at its training rate only drift: fc_mlp on Payerne, seeds 0-2,
``full``'s 30-epoch fine-tunes, last epoch: Sparse 0.8 T MAE x1.16 (up to x1.27), Structured 0.5 +0.077 degC (up
to +0.170), the unpruned control +0.107 degC. The KWS models (10 epochs under ``quick``) still improve to the
end of a fine-tune, and their 300-clip validation split is a noisy judge: they keep the last epoch."""

SMOKE_FINETUNE_SAMPLES = 256
"""Training samples (evenly spaced) of every fine-tune under the smoke profile."""


def is_tflite(model: Any) -> bool:
    """Whether ``model`` is a converted .tflite (``tflite.Converted``, its bytes or a file path) rather
    than a Keras model."""
    return isinstance(model, (tflite.Converted, bytes, bytearray, memoryview, str, os.PathLike))


def predict(model: Any, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Float outputs of a Keras model (float, PTQ or QAT; ``train.predict``) or of a converted .tflite
    (``tflite.predict``: int8 inputs quantized, outputs dequantized) on float inputs ``x``.
    Used by :class:`Task` and notebook 06."""
    if is_tflite(model):
        return tflite.predict(model, x, batch_size=batch_size)
    return train.predict(model, x, batch_size=batch_size)


def finetune_settings(cfg: config.Profile) -> dict[str, Any]:
    """How long every pruning fine-tune of a profile runs: ``epochs`` (``cfg.prune_epochs``) and
    ``max_train_samples`` (:data:`SMOKE_FINETUNE_SAMPLES` evenly spaced samples under ``smoke``, else all).
    With :meth:`Task.finetune_kwargs` (loss, batch size, learning rate, seed) the one fine-tuning recipe
    of notebooks 07 and 08."""
    return {"epochs": int(cfg.prune_epochs),
            "max_train_samples": SMOKE_FINETUNE_SAMPLES if cfg.name == "smoke" else None}


@dataclasses.dataclass
class Task:
    """One task (``name``: ``"kws"`` or ``"forecast"``) on one dataset; see the module docstring.

    ``x_<split>`` / ``y_<split>``: model inputs (features or normalised windows) and targets (class
    indices or normalised windows); ``labels``: KWS class names; ``features``: the ``FeatureConfig``
    that made the KWS inputs; ``windows``: the forecasting ``Windows`` (real units, persistence);
    ``clip``: one raw KWS test waveform; ``eval_limit``: score only the first samples of a split.
    The training recipe (:meth:`train`): ``dataset``, ``model_name``, ``epochs``, ``batch_size``,
    ``learning_rate`` (``None``: the recipe's peak rate), ``augment`` (KWS: ``train_kws``'s) and ``seed``;
    fine-tunes start at ``learning_rate x finetune_lr_scale`` (``None``: :data:`FINETUNE_LR_SCALE` of the task).
    Used by notebooks 05-08.
    """

    name: str
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    labels: tuple[str, ...] = ()
    features: feats.FeatureConfig | None = None
    windows: Any = dataclasses.field(default=None, repr=False)
    clip: np.ndarray | None = dataclasses.field(default=None, repr=False)
    eval_limit: int | None = None
    dataset: Any = dataclasses.field(default=None, repr=False)
    model_name: str = ""
    epochs: int | None = None
    batch_size: int = 64
    learning_rate: float | None = None
    seed: int = 0
    finetune_lr_scale: float | None = None
    augment: Any = None

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ValueError(f"unknown task {self.name!r}; choose one of {TASKS}")
        if self.name == "forecast" and self.windows is None:
            raise ValueError("a forecasting task needs windows= (their normalisation and real-unit targets)")
        if self.learning_rate is None:
            self.learning_rate = train.KWS_LEARNING_RATE if self.name == "kws" else train.FORECAST_LEARNING_RATE
        if self.finetune_lr_scale is None:
            self.finetune_lr_scale = FINETUNE_LR_SCALE[self.name]
        self.labels = tuple(self.labels)

    # --------------------------------------------------------------------------- what is measured
    @property
    def loss(self) -> str:
        """The training loss: sparse categorical cross-entropy (KWS) or MAE on normalised targets."""
        return "sparse_categorical_crossentropy" if self.name == "kws" else "mae"

    @property
    def metric_keys(self) -> tuple[str, ...]:
        """Keys of :meth:`evaluate`: ``("top1",)`` or one ``"<target>_mae"`` per forecast target."""
        if self.name == "kws":
            return ("top1",)
        return tuple(f"{metrics.short_target_name(t)}_mae" for t in self.windows.target_names)

    @property
    def metric(self) -> str:
        """The headline metric: ``"top1"`` (higher is better) or the first target's MAE (lower is better)."""
        return self.metric_keys[0]

    @property
    def extra_metrics(self) -> tuple[str, ...]:
        """The other keys :meth:`evaluate` reports beside :attr:`metric`."""
        return self.metric_keys[1:]

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger :attr:`metric` is better."""
        return self.name == "kws"

    @property
    def metric_label(self) -> str:
        """The metric as an axis label."""
        if self.name == "kws":
            return "test top-1 accuracy"
        return f"test {metrics.short_target_name(self.windows.target_names[0])} MAE"

    def split(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; choose train, val or test")
        x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        if x is None or y is None:
            raise ValueError(f"this {self.name} task has no {split} split")
        return x, y

    def n_eval(self, split: str = "test") -> int:
        """How many samples of ``split`` are scored: all, or the first ``eval_limit``."""
        n = len(self.split(split)[0])
        return n if self.eval_limit is None else max(0, min(n, int(self.eval_limit)))

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        """Float outputs of a Keras model or a converted .tflite on ``x`` (:func:`predict`)."""
        return predict(model, x)

    def scores(self, outputs: np.ndarray, split: str = "test") -> dict[str, float]:
        """:attr:`metric_keys` of float model outputs for the first :meth:`n_eval` samples of ``split``:
        top-1 accuracy, or MAE in real units (exact targets, ``labkit.metrics.forecast_metrics``)."""
        n = self.n_eval(split)
        outputs = np.asarray(outputs)[:n]
        if self.name == "kws":
            y = np.asarray(self.split(split)[1])[:n]
            labels = list(self.labels) or [str(i) for i in range(outputs.shape[-1])]
            return {"top1": float(metrics.kws_metrics(y, outputs, labels)["top1"])}
        out = metrics.forecast_metrics(self.windows, outputs, split, n=n)
        return {k: float(out[k]) for k in self.metric_keys}

    def evaluate(self, model: Any, split: str = "test") -> dict[str, float]:
        """:meth:`scores` of a Keras model (float, PTQ or QAT) or a converted .tflite on ``split``
        (first :meth:`n_eval` samples)."""
        x = np.asarray(self.split(split)[0], np.float32)[:self.n_eval(split)]
        return self.scores(self.predict(model, x), split)

    def evaluate_tflite(self, converted: Any, split: str = "test") -> dict[str, float]:
        """:meth:`evaluate` for a converted .tflite (LiteRT interpreter)."""
        if not is_tflite(converted):
            raise TypeError(f"expected a converted .tflite, got {type(converted).__name__}; use evaluate()")
        return self.evaluate(converted, split)

    # --------------------------------------------------------------------------- data for techniques
    def calibration_inputs(self, samples: int | None = None) -> np.ndarray:
        """The kit's one rule for int8 calibration data (the converter's representative dataset and every
        simulated activation range): inputs from *before* the test split, never the test split itself.

        * keyword spotting: the training features;
        * forecasting: the training *and* validation windows (``Windows.calibration_inputs``). The splits
          run forward in time and the validation weeks sit between the training and the test weeks, so they
          bring the calibrated ranges closer to what the test weeks reach.

        ``samples``: keep that many, evenly spaced (``data.evenly_spaced``), which is also the subset
        ``labkit.tflite.convert`` keeps from what it is given (``tflite.DEFAULT_CALIBRATION_SAMPLES``, 200).
        Test inputs beyond the calibrated range are still clipped to the int8 limits: notebook 05 prints
        that fraction (``input_clipped``). Used by notebooks 05-08 (directly or through ``search``)."""
        if self.name == "forecast":
            x = np.asarray(self.windows.calibration_inputs(), np.float32)
        elif self.x_train is None:
            raise ValueError("this KWS task has no training inputs (x_train=) to calibrate on")
        else:
            x = np.asarray(self.x_train, np.float32)
        if samples is None or len(x) <= samples:
            return x
        return x[evenly_spaced(len(x), int(samples))]

    def training_subset(self, max_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The training inputs and targets, or ``max_samples`` evenly spaced ones (``data.evenly_spaced``)."""
        x, y = self.split("train")
        if max_samples is None or len(x) <= max_samples:
            return x, y
        idx = evenly_spaced(len(x), max_samples)
        return x[idx], y[idx]

    def finetune_kwargs(self, epochs: int) -> dict[str, Any]:
        """Keyword arguments of every fine-tune (``prune.prune_finetune`` / ``prune.finetune``) of this
        task: its loss, batch size, seed, the fine-tuning learning rate (the training recipe's peak rate x
        ``finetune_lr_scale``) and ``epochs`` (:func:`finetune_settings`). A forecaster's fine-tune also keeps
        its best validation epoch (``keep_best``, as its training's early stopping does): see
        :data:`FINETUNE_KEEP_BEST`. Used by notebooks 07 and 08."""
        kw = {"loss": self.loss, "epochs": int(epochs), "batch_size": int(self.batch_size),
              "learning_rate": float(self.learning_rate) * float(self.finetune_lr_scale), "seed": int(self.seed)}
        if FINETUNE_KEEP_BEST[self.name] and self.x_val is not None and len(self.x_val):
            kw.update(validation_data=(self.x_val, self.y_val), keep_best=True)
        return kw

    def train(self, alpha: float = 1.0, *, epochs: int | None = None) -> "train.TrainResult":
        """The trained model at width ``alpha`` (a ``train.TrainResult``, from the model cache when it was
        trained before with the same recipe: notebook 03's / 04's). ``epochs`` overrides the recipe's (the
        pruning sweep trains a width-multiplier model for as many epochs as a pruned model had in all)."""
        if self.dataset is None or self.epochs is None:
            raise ValueError("this task has no training recipe: build it with kws_task(data, ..., epochs=...) "
                             "or forecast_task(windows, ..., epochs=...)")
        epochs = int(self.epochs if epochs is None else epochs)
        kw = dict(epochs=epochs, batch_size=int(self.batch_size), seed=int(self.seed), alpha=float(alpha),
                  learning_rate=float(self.learning_rate))
        if self.name == "kws":
            return train.train_kws(self.model_name, self.dataset, self.features, augment=self.augment, **kw)
        return train.train_forecaster(self.model_name, self.dataset, **kw)

    # --------------------------------------------------------------------------- one prediction
    def raw_sample(self) -> np.ndarray:
        """The raw input of one prediction: a test waveform (KWS) or the first test window in real units."""
        if self.name == "kws":
            if self.clip is None:
                raise ValueError("this KWS task has no raw clip (clip=) to time the feature pipeline on")
            return np.asarray(self.clip, np.float32)
        x0 = np.asarray(self.split("test")[0][0], np.float64)
        return x0 * np.asarray(self.windows.feature_std) + np.asarray(self.windows.feature_mean)

    def latency_breakdown(self, model: Any, *, runs: int = 100, warmup: int = 10, name: str = "",
                          num_threads: int = 1) -> pd.DataFrame:
        """Median latency in ms of each stage of one prediction with a .tflite (``Converted``, bytes or
        path), batch 1, on this CPU (``bench.stage_latency``), with the 10th-90th percentile spread.
        KWS: preprocessing = the features (``features.tf_fn``) of :meth:`raw_sample` and, for an integer
        model, quantizing them; inference = the interpreter call alone, ``tflite.invoker`` (exactly what
        ``tflite.latency`` times, so notebook 06's latency column measures the same thing);
        postprocessing = read and dequantize the output, argmax. Forecasting: preprocessing = normalise the
        raw window (and quantize), postprocessing = dequantize and de-normalise the targets. ``total`` is
        the pipeline timed end to end. Rows (model, mode, stage, ms, p10_ms, p90_ms, runs).
        Used by notebooks 05 and 08."""
        runner = tflite.LiteRTRunner(model, num_threads=num_threads)
        converted = model if isinstance(model, tflite.Converted) else None
        mode = converted.label if converted is not None else ""
        name = name or (converted.name if converted is not None else "")
        raw = self.raw_sample()
        if self.name == "kws":
            if self.features is None:
                raise ValueError("a KWS latency breakdown needs the task's features (the FeatureConfig of its inputs)")
            fn = feats.tf_fn(self.features)

            def pre() -> np.ndarray:
                return fn(raw).numpy()[None]

            def post(y: np.ndarray) -> Any:
                return int(np.argmax(y[0]))
        else:
            w = self.windows
            mean, std = np.asarray(w.feature_mean, np.float32), np.asarray(w.feature_std, np.float32)
            raw32 = np.asarray(raw, np.float32)

            def pre() -> np.ndarray:
                return ((raw32 - mean) / std)[None]

            def post(y: np.ndarray) -> Any:
                return w.denormalize_targets(y)

        x = pre()
        if x.shape[1:] != runner.sample_shape:
            raise ValueError(f"preprocessing gives {x.shape[1:]}, the model expects {runner.sample_shape}: "
                             "score it with the task (features / windows) it was trained on")
        runner.resize(1)
        raw_out = runner.invoke_prepared(runner.prepare(x))
        invoke = tflite.invoker(model, x, num_threads=num_threads)
        timings = bench.stage_latency({"preprocessing": lambda: runner.prepare(pre()), "inference": invoke,
                                       "postprocessing": lambda: post(runner.finish(raw_out))},
                                      total=lambda: post(runner.finish(runner.invoke_prepared(runner.prepare(pre())))),
                                      runs=runs, warmup=warmup)
        return pd.DataFrame([{"model": name, "mode": mode, "stage": stage, "ms": t["median_ms"],
                              "p10_ms": t["p10_ms"], "p90_ms": t["p90_ms"], "runs": t["runs"]}
                             for stage, t in timings.items()])


def kws_task(data: Any, model_name: str = "ds_cnn", features: Any = "mfcc_a", *, epochs: int | None = None,
             batch_size: int = 64, learning_rate: float | None = None, seed: int = 0,
             eval_limit: int | None = None, augment: Any = None) -> Task:
    """The keyword-spotting :class:`Task` on a ``KWSData``: features computed once (``train.kws_features``),
    metric = test top-1 accuracy, the first test clip as the raw sample; :meth:`Task.train` calls
    ``train.train_kws`` with notebook 03's recipe (``augment`` as in ``train.kws_settings``), so the baseline
    comes from the cache.
    Used by notebooks 06-08."""
    cfg = feats.get(features)
    f_train, f_val, f_test = train.kws_features(data, cfg)
    i64 = np.int64
    return Task(name="kws", x_train=f_train, y_train=np.asarray(data.y_train, i64), x_val=f_val,
                y_val=np.asarray(data.y_val, i64), x_test=f_test, y_test=np.asarray(data.y_test, i64),
                labels=tuple(data.labels), features=cfg, clip=np.asarray(data.x_test[0], np.float32),
                eval_limit=eval_limit, dataset=data, model_name=model_name, epochs=epochs, batch_size=batch_size,
                learning_rate=learning_rate, seed=seed, augment=augment)


def forecast_task(windows: Any, model_name: str = "fc_mlp", *, epochs: int | None = None, batch_size: int = 64,
                  learning_rate: float | None = None, seed: int = 0, eval_limit: int | None = None) -> Task:
    """The forecasting :class:`Task` on ``Windows``: MAE loss on normalised targets, metric = test
    temperature MAE in degC (humidity MAE beside it); :meth:`Task.train` calls ``train.train_forecaster``
    with notebook 04's recipe. Used by notebooks 05-08."""
    f32 = np.float32
    return Task(name="forecast", x_train=np.asarray(windows.x_train, f32), y_train=np.asarray(windows.y_train, f32),
                x_val=np.asarray(windows.x_val, f32), y_val=np.asarray(windows.y_val, f32),
                x_test=np.asarray(windows.x_test, f32), y_test=np.asarray(windows.y_test, f32), windows=windows,
                eval_limit=eval_limit, dataset=windows, model_name=model_name, epochs=epochs, batch_size=batch_size,
                learning_rate=learning_rate, seed=seed)

