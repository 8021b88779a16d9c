"""Notebook 05: every conversion mode of a trained model, measured side by side.

:func:`compare_modes_kws` / :func:`compare_modes_forecast` convert a model in each mode
(``labkit.tflite.convert_all``), score each file with the task's metric next to the Keras model's
(``labkit.tasks.Task``), time one prediction stage by stage (``Task.latency_breakdown``), count the
test inputs outside the calibrated int8 range, and run the int8 file in TFLite Micro against LiteRT.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import estimate, features as feats, tasks, tflite
from ..estimate import CORTEX_M4, McuModel
from ..tasks import Task

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["ModeComparison", "compare_modes_kws", "compare_modes_forecast", "size_table", "mcu_vs_host"]


@dataclasses.dataclass
class ModeComparison:
    """Everything notebook 05 shows for one trained model: the converted files, the course table
    (one row per mode), the latency breakdown (one row per mode and stage) and the TFLM check of the
    full-integer model. Used by notebook 05."""

    name: str
    converted: dict[str, tflite.Converted]
    table: pd.DataFrame
    breakdown: pd.DataFrame
    tflm: dict[str, Any] | None

    def tflm_row(self) -> dict[str, Any]:
        """The TFLM check of the INT8 W+A file as one row (model, arena bytes reported / minimal,
        LSB differences, class agreement, samples)."""
        t = self.tflm or {}
        keys = ("arena_bytes", "min_arena_bytes", "max_diff_lsb", "exact", "agreement", "max_diff_lsb_xnnpack",
                "exact_xnnpack", "agreement_xnnpack", "n")
        return {"model": self.name, **{k: t.get(k) for k in keys}}


def _tflm_columns(tflm: Mapping[str, Any] | None) -> dict[str, Any]:
    if not tflm:
        return {}
    return {"tflm_arena_kb": round(tflm["arena_bytes"] / 1024, 2),
            "tflm_min_arena_kb": round(tflm["min_arena_bytes"] / 1024, 2),
            "tflm_max_diff_lsb": tflm.get("max_diff_lsb"), "tflm_agreement": tflm.get("agreement")}


def _clipped(q: np.ndarray, params: tflite.QuantParams | None) -> float | None:
    """Fraction of integer values at the limits of their type (saturated by the calibrated range)."""
    if params is None or q.size == 0:
        return None
    info = np.iinfo(np.dtype(params.dtype))
    return float(np.isin(q, (info.min, info.max)).mean())


def _compare(task: Task, name: str, model: "tf.keras.Model", *, modes: Sequence[str], runs: int, warmup: int,
             tflm: bool) -> ModeComparison:
    """Convert ``model`` in every mode (int8 calibrated on the task's calibration inputs), then score, time
    and (for int8_wa) run in TFLM every file on the task's scored test inputs, next to the Keras model."""
    keras_metrics = task.evaluate(model)
    converted = tflite.convert_all(model, task.calibration_inputs(), modes=modes, name=name)
    x = np.asarray(task.x_test, np.float32)[:task.n_eval()]
    rows, parts = [], []
    tflm_result = tflite.compare_tflm_litert(converted["int8_wa"], x) if tflm and "int8_wa" in converted else None
    for mode, conv in converted.items():
        runner = tflite.LiteRTRunner(conv)
        raw = runner.predict_raw(x)
        m = task.scores(runner.finish(raw))
        bd = task.latency_breakdown(conv, runs=runs, warmup=warmup, name=name)
        parts.append(bd)
        stage = bd.set_index("stage")
        row: dict[str, Any] = {"model": name, "mode": conv.label}
        for key, value in m.items():
            row[key] = value
            row[f"keras_{key}"] = keras_metrics[key]
            row[f"diff_{key}"] = value - keras_metrics[key]
        row.update({"tflite_kb": round(conv.size_kb, 2), "zlib_kb": round(conv.zlib_kb, 2),
                    "inference_ms": float(stage.loc["inference", "ms"]),
                    "inference_p10_ms": float(stage.loc["inference", "p10_ms"]),
                    "inference_p90_ms": float(stage.loc["inference", "p90_ms"]), "total_ms": float(stage.loc["total", "ms"]),
                    "total_p10_ms": float(stage.loc["total", "p10_ms"]), "total_p90_ms": float(stage.loc["total", "p90_ms"]),
                    "method": conv.method})
        if conv.input_quant is not None:  # int8 I/O: how much of the test data falls outside the calibrated range
            row["input_clipped"] = _clipped(runner.prepare(x), conv.input_quant)
            row["output_clipped"] = _clipped(raw, conv.output_quant)
        if mode == "int8_wa":
            row.update(_tflm_columns(tflm_result))
        rows.append(row)
    return ModeComparison(name=name, converted=converted, table=pd.DataFrame(rows),
                          breakdown=pd.concat(parts, ignore_index=True), tflm=tflm_result)


def compare_modes_kws(
    name: str,
    model: "tf.keras.Model",
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    labels: Sequence[str],
    representative: np.ndarray,
    clip: np.ndarray,
    features: Any,
    modes: Sequence[str] = tflite.MODES,
    limit: int | None = None,
    runs: int = 200,
    warmup: int = 20,
    tflm: bool = True,
) -> ModeComparison:
    """Convert a trained KWS model in every mode and measure each file: test top-1 next to the Keras
    model's on the same samples (first ``limit``), file and zlib size, LiteRT latency per stage on one
    ``clip`` (features -> inference -> argmax, medians over ``runs``), and TFLM vs LiteRT on the
    int8 model. ``x_test`` are features, ``features`` the FeatureConfig/preset that made them.
    For files with int8 input/output, ``input_clipped`` / ``output_clipped`` are the fractions of the
    quantized test inputs / outputs stuck at the int8 limits: data outside the range calibrated on
    ``representative``. Used by notebook 05.
    """
    task = Task("kws", x_train=np.asarray(representative, np.float32), x_test=np.asarray(x_test, np.float32),
                y_test=np.asarray(y_test), labels=tuple(labels), features=feats.get(features), clip=clip,
                eval_limit=limit)
    return _compare(task, name, model, modes=modes, runs=runs, warmup=warmup, tflm=tflm)


def compare_modes_forecast(
    name: str,
    model: "tf.keras.Model",
    windows: Any,
    *,
    modes: Sequence[str] = tflite.MODES,
    limit: int | None = None,
    runs: int = 200,
    warmup: int = 20,
    tflm: bool = True,
) -> ModeComparison:
    """Like :func:`compare_modes_kws` for a forecaster on ``windows``: test T and RH MAE (real units)
    next to Keras', sizes, latency per stage (normalise -> inference -> de-normalise) and TFLM vs
    LiteRT on the int8 model. Calibration uses the train + validation windows
    (``Task.calibration_inputs``). Used by notebook 05.
    """
    task = tasks.forecast_task(windows, eval_limit=limit)
    return _compare(task, name, model, modes=modes, runs=runs, warmup=warmup, tflm=tflm)


def size_table(converted: Mapping[str, tflite.Converted]) -> pd.DataFrame:
    """``tflite.storage_table`` of one model's files (one row per mode) with ``overhead_share`` (the part of
    the file that is not constant data: graph, names, shapes, quantization parameters, alignment) and
    ``zlib_saving`` (how much smaller zlib makes the file). Used by notebook 05."""
    table = tflite.storage_table({c.label: c for c in converted.values()})
    table["overhead_share"] = table["overhead"] / table["file"]
    table["zlib_saving"] = [1 - c.zlib_size / c.size for c in converted.values()]
    return table


def mcu_vs_host(models: Mapping[str, "tf.keras.Model"], table: pd.DataFrame, *, mode: str = "INT8 W+A",
                mcu: McuModel = CORTEX_M4) -> pd.DataFrame:
    """For each Keras model (``{table model name: model}``): its MACs (``estimate.totals``), the host's
    median inference time of its ``mode`` file (``table``: notebook 05's course table), the kit's
    microcontroller estimate (``mcu.latency_ms``, ``estimate.CORTEX_M4``) and how many times slower that is.
    Used by notebook 05."""
    rows = []
    indexed = table.set_index(["model", "mode"])
    for name, model in models.items():
        if (name, mode) not in indexed.index:
            continue
        macs = int(estimate.totals(model)["macs"])
        host = float(indexed.loc[(name, mode), "inference_ms"])
        est = mcu.latency_ms(macs)
        rows.append({"model": name, "macs": macs, "host_ms": host, "mcu_estimate_ms": est,
                     "mcu_over_host": est / host if host > 0 else float("nan")})
    return pd.DataFrame(rows)
