"""Notebook 06: the bit-width sweeps (PTQ and QAT), the summary of real int8 files next to their
simulation, and the worked tables that explain quantization error (rounding, ranges, clipping).

The techniques are ``labkit.quantize``'s; scoring goes through ``labkit.tasks.Task`` (a Keras model,
a fake-quantized one or a converted .tflite, with the same metric); files through ``labkit.tflite``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import metrics, quantize, tasks, tflite
from ..data import evenly_spaced
from ..quantize import QATResult

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["Evaluator", "PTQ_METHODS", "calibration_set", "kws_evaluator", "forecast_evaluator", "ptq_sweep",
           "qat_sweep", "summary_table", "w4a8_table", "wa_by_features", "versus", "weight_error",
           "quantization_table", "clipping_table", "agreement"]

Evaluator = Callable[[Any], dict[str, float]]
"""``model -> metrics``: a Keras model (float, PTQ or QAT) or a converted .tflite, scored by a task."""


def calibration_set(x: np.ndarray, samples: int = 200) -> np.ndarray:
    """Up to ``samples`` inputs evenly spaced over any ``x`` (``data.evenly_spaced``), the selection
    ``labkit.tflite.convert`` makes. The kit's calibration data come from ``tasks.Task.calibration_inputs``
    (the rule); this is for experiments that calibrate on something else on purpose (notebook 06 shows
    what calibrating a forecaster on the training weeks alone does). Used by notebook 06."""
    x = np.asarray(x, np.float32)
    if len(x) == 0:
        raise ValueError("no inputs to calibrate on: pass training inputs, e.g. features of data.x_train")
    return x[evenly_spaced(len(x), samples)]


def kws_evaluator(x: np.ndarray, y: np.ndarray, *, limit: int | None = None) -> Evaluator:
    """A function ``model -> {"top1": accuracy}`` on features ``x`` and labels ``y`` (first ``limit``):
    ``Task.evaluate`` of a KWS task on these test samples. Used by notebook 06."""
    return tasks.Task("kws", x_test=np.asarray(x, np.float32), y_test=np.asarray(y).astype(np.int64).ravel(),
                      eval_limit=limit).evaluate


def forecast_evaluator(windows: Any, split: str = "test", *, limit: int | None = None) -> Evaluator:
    """A function ``model -> {"T_mae": ..., "RH_mae": ...}`` (real units, averaged over the output steps)
    on the first ``limit`` windows of ``split``: ``Task.evaluate`` of the forecasting task. Used by notebook 06."""
    task = tasks.forecast_task(windows, eval_limit=limit)
    return lambda model: task.evaluate(model, split)


PTQ_METHODS: dict[str, dict[str, Any]] = {
    "PTQ W": {"weights": "per_channel", "activations": False},
    "PTQ W (per-tensor)": {"weights": "per_tensor", "activations": False},
    "PTQ W+A": {"weights": "per_channel", "activations": True},
    "PTQ W+A (clipped)": {"weights": "per_channel", "activations": True, "percentile": 99.9},
}
"""The PTQ variants of :func:`ptq_sweep`, by label. ``PTQ W+A`` calibrates each activation range on its
min and max (TFLite's rule); ``PTQ W+A (clipped)`` on the 0.1st and 99.9th percentiles
(``quantize.calibrate(..., percentile=99.9)``)."""


def ptq_sweep(model: "tf.keras.Model", evaluate: Evaluator, *, bits: Sequence[int] = range(2, 9),
              representative: Any = None, methods: Sequence[str] = ("PTQ W", "PTQ W+A"),
              name: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Accuracy (or MAE) of ``quantize.ptq`` at every bit width in ``bits`` for each of ``methods`` (keys of
    :data:`PTQ_METHODS`), plus the float model (``method="FP32"``, ``bits=32``). The model is folded and
    its activation ranges calibrated once on ``representative``. One row per (method, bits).
    Used by notebook 06."""
    from tqdm.auto import tqdm

    unknown = [m for m in methods if m not in PTQ_METHODS]
    if unknown:
        raise ValueError(f"unknown PTQ method(s) {unknown}; choose from {list(PTQ_METHODS)}")
    name = name or model.name
    folded = quantize.fold_batchnorm(model)
    calibrations = {}  # percentile (None: min/max) -> Calibration, measured once for the whole sweep
    for method in methods:
        spec = PTQ_METHODS[method]
        if spec["activations"] and spec.get("percentile") not in calibrations:
            if representative is None:
                raise ValueError("PTQ W+A needs representative inputs: pass representative=x_train[:500]")
            calibrations[spec.get("percentile")] = quantize.calibrate(model, representative, folded=folded,
                                                                      percentile=spec.get("percentile"))
    rows = [{"model": name, "method": "FP32", "bits": 32, **evaluate(model)}]
    jobs = [(m, b) for m in methods for b in bits]
    for method, b in tqdm(jobs, desc=f"PTQ sweep {name}", leave=False, disable=not progress):
        spec = PTQ_METHODS[method]
        q = quantize.ptq(model, int(b), weights=spec["weights"], activations=spec["activations"],
                         calibration=calibrations.get(spec.get("percentile")) if spec["activations"] else None,
                         folded=folded)
        rows.append({"model": name, "method": method, "bits": int(b), **evaluate(q)})
    return pd.DataFrame(rows)


def qat_sweep(model: "tf.keras.Model", evaluate: Evaluator, *, bits: Sequence[int] = (2, 4, 6, 8),
              x_train: np.ndarray, y_train: np.ndarray, name: str | None = None, progress: bool = True,
              **qat_kwargs: Any) -> tuple[pd.DataFrame, dict[int, QATResult]]:
    """``quantize.qat`` at each width in ``bits`` (same fine-tuning budget each, ``qat_kwargs`` passed on),
    each evaluated in simulation: a table with one row per width (``method="QAT W+A"``, ``scheme``,
    ``train_time_s``) and the results by width (the 8-bit one converts to a real int8 .tflite).
    Used by notebook 06."""
    from tqdm.auto import tqdm

    name = name or model.name
    rows, results = [], {}
    for b in tqdm(list(bits), desc=f"QAT sweep {name}", leave=False, disable=not progress):
        res = quantize.qat(model, int(b), x_train=x_train, y_train=y_train, **qat_kwargs)
        results[int(b)] = res
        rows.append({"model": name, "method": "QAT W+A", "bits": int(b), **evaluate(res.model),
                     "scheme": res.scheme, "train_time_s": round(res.train_time_s, 1)})
    return pd.DataFrame(rows), results


def summary_table(model: "tf.keras.Model", evaluate: Evaluator, *, representative: np.ndarray,
                  qat_model: "QATResult | tf.keras.Model | None" = None, converted: Mapping[str, Any] | None = None,
                  name: str | None = None, runs: int = 200, warmup: int = 20) -> pd.DataFrame:
    """The course's summary: FP32, INT8 W, INT8 W+A (post-training) and QAT INT8 (``qat_model``, from
    ``quantize.qat`` at 8 bits) as real .tflite files (``labkit.tflite``): metric measured on the file, the
    same metric simulated in Keras (float model, 8-bit ``quantize.ptq``, QAT model), file and zlib size (kB)
    and LiteRT batch-1 latency (``tflite.latency``: median ms over ``runs``, one thread, with the 10th and 90th
    percentiles; notebook 05's ``inference_ms`` times the same call). ``converted`` reuses files already converted
    from ``model`` (``{"int8_wa": Converted, ...}``). Used by notebook 06."""
    name = name or model.name
    if isinstance(qat_model, QATResult):
        if not qat_model.convertible:
            raise ValueError(f"the {qat_model.num_bits}-bit QAT model has no TFLite kernels; pass the 8-bit one")
        qat_model = qat_model.model
    x1 = np.asarray(representative, np.float32)[:1]
    entries = [("FP32", model, "fp32", model), ("INT8 W", model, "int8_w", quantize.ptq(model, 8)),
               ("INT8 W+A", model, "int8_wa", quantize.ptq(model, 8, activations=True, representative=representative))]
    if qat_model is not None:
        entries.append(("QAT INT8", qat_model, "int8_wa", qat_model))
    rows = []
    for label, source, mode, simulated in entries:
        conv = (converted or {}).get(mode) if source is model else None
        if conv is None:
            conv = tflite.convert(source, mode, representative if mode == "int8_wa" else None, name=name)
        measured = evaluate(conv)
        sim = evaluate(simulated)
        lat = tflite.latency(conv, x1, runs=runs, warmup=warmup)
        rows.append({"model": name, "variant": label, **measured, **{f"simulated_{k}": v for k, v in sim.items()},
                     "tflite_kb": round(conv.size_kb, 2), "zlib_kb": round(conv.zlib_kb, 2),
                     "latency_ms": round(lat["median_ms"], 4), "latency_p10_ms": round(lat["p10_ms"], 4),
                     "latency_p90_ms": round(lat["p90_ms"], 4)})
    return pd.DataFrame(rows)


def w4a8_table(model: "tf.keras.Model", evaluate: Evaluator, *, x_train: np.ndarray, y_train: np.ndarray,
               representative: np.ndarray, x_check: np.ndarray, int8: Any = None, name: str | None = None,
               **qat_kwargs: Any) -> tuple[pd.DataFrame, QATResult]:
    """A real 4-bit-weight model next to the int8 one: ``quantize.qat(model, 4, activation_bits=8)``
    (``qat_kwargs``: epochs, batch_size, seed ...), converted with mode ``"w4a8"`` (int4 weights packed two
    per byte, int8 activations), and the post-training INT8 W+A file (``int8``, or converted here). Per
    file: the metric measured with LiteRT and simulated in Keras, sizes (kB, zlib), bytes of int4 / int8
    constants, and TFLite Micro against LiteRT on ``x_check`` (``tflite.compare_tflm_litert``: largest
    output difference in LSB, predicted-class agreement, minimal arena). Used by notebook 06."""
    name = name or model.name
    res = quantize.qat(model, 4, activation_bits=8, x_train=x_train, y_train=y_train, representative=representative,
                       **qat_kwargs)
    files = {"INT8 W+A (PTQ)": (int8 if int8 is not None else tflite.convert(model, "int8_wa", representative, name=name),
                                quantize.ptq(model, 8, activations=True, representative=representative)),
             "INT4 W + INT8 A (QAT)": (tflite.convert(res.model, "w4a8", representative, name=name), res.model)}
    storage = tflite.storage_table({label: conv for label, (conv, _) in files.items()})
    rows = []
    for label, (conv, simulated) in files.items():
        check = tflite.compare_tflm_litert(conv, x_check)
        rows.append({"model": name, "variant": label, **evaluate(conv),
                     **{f"simulated_{k}": v for k, v in evaluate(simulated).items()},
                     "tflite_kb": round(conv.size_kb, 2), "zlib_kb": round(conv.zlib_kb, 2),
                     "int4_bytes": int(storage.loc[label].get("int4", 0)),
                     "int8_bytes": int(storage.loc[label].get("int8", 0)),
                     "tflm_max_diff_lsb": check["max_diff_lsb"], "tflm_agreement": check["agreement"],
                     "tflm_min_arena_bytes": check["min_arena_bytes"], "tflm_n": check["n"]})
    return pd.DataFrame(rows), res


def versus(table: pd.DataFrame, reference: str, *, n: int, metric: str = "top1", by: str = "variant") -> pd.DataFrame:
    """``table`` with, per row, its ``metric`` minus the ``reference`` row's (same model), the noise band of
    that difference on ``n`` test clips (``metrics.accuracy_difference``: two standard errors each) and
    ``noise`` (True: the test set cannot tell the two apart). Rows without ``metric`` are left as they are.
    Used by notebook 06."""
    out = table.copy()
    out[f"vs_{reference}"], out["band"], out["noise"] = np.nan, np.nan, None
    if metric not in out.columns:
        return out
    for i, row in out.iterrows():
        ref = out[(out["model"] == row["model"]) & (out[by] == reference)]
        if ref.empty or pd.isna(row[metric]):
            continue
        d = metrics.accuracy_difference(float(row[metric]), float(ref[metric].iloc[0]), n)
        out.loc[i, [f"vs_{reference}", "band"]] = [d["difference"], d["band"]]
        out.loc[i, "noise"] = d["noise"]
    return out


def wa_by_features(data: Any, models: Sequence[str], features: Sequence[str], *, epochs: int, batch_size: int,
                   seed: int = 0, eval_limit: int | None = None, samples: int = 200,
                   augment: Any = None) -> pd.DataFrame:
    """Full-integer (INT8 W+A) files of the same networks trained on different features (notebook 03's
    cached models): per (model, features), the float model's test top-1, the 8-bit W+A simulation's and
    the real .tflite's (LiteRT), calibrated by the kit's rule (``Task.calibration_inputs(samples)``), the
    change from float with its noise band on the ``n`` test clips (``metrics.accuracy_difference``) and
    ``input_clipped``, the fraction of quantized test inputs at the int8 limits. Used by notebook 06."""
    from tqdm.auto import tqdm

    rows = []
    for name, feat in tqdm([(m, f) for m in models for f in features], desc="INT8 W+A by features", leave=False):
        task = tasks.kws_task(data, name, feat, epochs=epochs, batch_size=batch_size, seed=seed,
                              eval_limit=eval_limit, augment=augment)  # augment as train.kws_settings says
        model = task.train().model
        rep = task.calibration_inputs(samples)
        fp32 = task.evaluate(model)["top1"]
        sim = task.evaluate(quantize.ptq(model, 8, activations=True, representative=rep))["top1"]
        conv = tflite.convert(model, "int8_wa", rep, name=f"{name} · {feat}")
        real = task.evaluate(conv)["top1"]
        n = task.n_eval()
        xq = tflite.LiteRTRunner(conv).prepare(np.asarray(task.x_test, np.float32)[:n])
        d = metrics.accuracy_difference(real, fp32, n)
        rows.append({"model": name, "features": feat, "fp32_top1": fp32, "simulated_int8_wa_top1": sim,
                     "int8_wa_top1": real, "change": d["difference"], "band": d["band"], "noise": d["noise"],
                     "input_clipped": float(np.isin(xq, (-128, 127)).mean()), "n": n})
    return pd.DataFrame(rows)


def weight_error(model: "tf.keras.Model", bits: Sequence[int] = (8, 4)) -> pd.DataFrame:
    """Per quantized layer of the BN-folded model: output channels, how unequal the channels' ranges are
    (largest / smallest channel max|w|) and the relative RMS weight error
    ``||w_q - w|| / ||w||`` per tensor vs per channel at each width in ``bits``. Used by notebook 06."""
    rows = []
    for layer in quantize.fold_batchnorm(model).layers:
        cls = type(layer).__name__
        if cls not in quantize.KERNEL_LAYERS:
            continue
        name = layer.name
        w = np.asarray(layer.get_weights()[0], np.float64)
        if cls == "DepthwiseConv2D":
            w = w.reshape(w.shape[0], w.shape[1], -1)
        ch_max = np.max(np.abs(w.reshape(-1, w.shape[-1])), axis=0)
        row: dict[str, Any] = {"layer": name, "type": cls, "channels": int(w.shape[-1]),
                               "range_ratio": float(ch_max.max() / max(ch_max[ch_max > 0].min(), 1e-12))
                               if np.any(ch_max > 0) else float("nan")}
        norm = np.linalg.norm(w) or 1.0
        for b in bits:
            for per_channel, tag in ((False, "per_tensor"), (True, "per_channel")):
                err = np.linalg.norm(quantize.quantize_weights(w, b, per_channel=per_channel) - w) / norm
                row[f"err_{b}bit_{tag}"] = float(err)
        rows.append(row)
    return pd.DataFrame(rows)


def quantization_table(x: Sequence[float], num_bits: int, rmin: float, rmax: float) -> pd.DataFrame:
    """A worked example: each value of ``x`` with its integer code, the value that code stands for and
    the error, for activations calibrated to ``[rmin, rmax]`` at ``num_bits`` (``quantize.asymmetric_params``).
    Values outside the range are clipped. Used by notebook 06."""
    x = np.asarray(x, np.float64)
    scale, zp = quantize.asymmetric_params(rmin, rmax, num_bits)
    q = quantize.quantize_int(x, num_bits, scale, zp)
    x_hat = quantize.fake_quant(x, num_bits, scale, zp)
    return pd.DataFrame({"bits": num_bits, "scale": scale, "zero_point": zp, "x": x, "x/scale": x / scale,
                         "q": q, "x_hat": x_hat, "error": x_hat - x})


def clipping_table(model: "tf.keras.Model", representative: Any, x: np.ndarray, *, num_bits: int = 8
                   ) -> pd.DataFrame:
    """For every calibrated activation tensor: the range calibrated on ``representative``, the range the
    tensor actually takes on ``x`` (e.g. the test inputs), the fraction of its values on ``x`` that fall
    outside the calibrated range (clipped by quantization) and the step (scale) at ``num_bits``.
    Clipping, unlike rounding, does not shrink with more bits. Used by notebook 06."""
    import tensorflow as tf

    folded = quantize.fold_batchnorm(model)
    calibration = quantize.calibrate(model, representative, folded=folded)
    names = list(calibration.ranges)
    probe = tf.keras.Model(folded.inputs, [folded.get_layer(n).output for n in names])
    seen = {n: [np.inf, -np.inf, 0, 0] for n in names}
    for xb in quantize.batches(np.asarray(x, np.float32)):
        outs = probe(xb, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for n, o in zip(names, outs):
            o = o.numpy()
            lo, hi = calibration.ranges[n]
            rec = seen[n]
            rec[0], rec[1] = min(rec[0], float(o.min())), max(rec[1], float(o.max()))
            rec[2] += int(np.count_nonzero((o < min(lo, 0.0)) | (o > max(hi, 0.0))))
            rec[3] += o.size
    rows = []
    for n in names:
        lo, hi = calibration.ranges[n]
        rows.append({"tensor": n, "calibrated_min": lo, "calibrated_max": hi, "min": seen[n][0], "max": seen[n][1],
                     "clipped_fraction": seen[n][2] / max(seen[n][3], 1),
                     "scale": quantize.asymmetric_params(lo, hi, num_bits)[0]})
    return pd.DataFrame(rows)


def agreement(a: Any, b: Any, x: np.ndarray) -> dict[str, float]:
    """How closely two models (Keras, PTQ/QAT or a converted .tflite) agree on inputs ``x``: fraction of
    equal argmax (top-1 decisions) and the mean and max absolute output difference. Used by notebook 06."""
    pa, pb = tasks.predict(a, x), tasks.predict(b, x)
    pa, pb = pa.reshape(len(pa), -1), pb.reshape(len(pb), -1)
    diff = np.abs(pa - pb)
    return {"argmax_agreement": float((pa.argmax(-1) == pb.argmax(-1)).mean()),
            "mean_abs_diff": float(diff.mean()), "max_abs_diff": float(diff.max())}
