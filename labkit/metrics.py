"""The course's metrics, from model outputs to numbers: top-1 accuracy with per-class accuracy and a
confusion matrix (keyword spotting), and MAE in real units next to persistence (forecasting).

Pure NumPy, no labkit imports: the training recipes (``labkit.train``) and the task abstraction
(``labkit.tasks``) both score with these functions, so a number means the same everywhere.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["SHORT_TARGET_NAMES", "short_target_name", "kws_metrics", "forecast_mae", "persistence",
           "forecast_metrics", "accuracy_se", "accuracy_difference"]

SHORT_TARGET_NAMES: dict[str, str] = {"T (degC)": "T", "rh (%)": "RH", "p (mbar)": "p"}
"""Short names used in metric keys (``T_mae``, ``RH_mae``)."""


def kws_metrics(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Top-1 accuracy, per-class accuracy and confusion matrix (rows = true, columns = predicted).

    Used by ``labkit.train.train_kws`` and ``labkit.tasks`` (notebooks 03-08).
    """
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    pred = np.asarray(probs).argmax(axis=-1).ravel()
    k = len(labels)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, pred), 1)
    support = cm.sum(axis=1)
    per_class = {lab: (float(cm[i, i] / support[i]) if support[i] else float("nan")) for i, lab in enumerate(labels)}
    return {"top1": float((pred == y_true).mean()) if len(y_true) else float("nan"),
            "per_class_accuracy": per_class, "confusion_matrix": cm.tolist(), "n": int(len(y_true))}


def short_target_name(name: str) -> str:
    """``"T (degC)"`` -> ``"T"``, ``"rh (%)"`` -> ``"RH"``; other names: their first word."""
    return SHORT_TARGET_NAMES.get(name, name.split(" ")[0])


def forecast_mae(y_true_real: np.ndarray, y_pred_real: np.ndarray, target_names: Sequence[str]) -> dict[str, Any]:
    """Mean absolute error per target in real units, averaged over samples and output steps
    (``"T_mae"``, ``"RH_mae"``) and per step (``"T_mae_steps"``, ``"RH_mae_steps"``: one value per step).

    Arrays are ``(N, steps, targets)`` (or ``(N, targets)`` for one step). Used by notebooks 04-08.
    """
    yt, yp = np.asarray(y_true_real, np.float64), np.asarray(y_pred_real, np.float64)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true shape {yt.shape} != y_pred shape {yp.shape}")
    if yt.ndim == 2:
        yt, yp = yt[:, None, :], yp[:, None, :]
    if yt.ndim != 3 or yt.shape[-1] != len(target_names):
        raise ValueError(f"expected (N, steps, {len(target_names)}) arrays, got {yt.shape}")
    err = np.abs(yt - yp)  # (N, steps, targets)
    out: dict[str, Any] = {}
    for j, name in enumerate(target_names):
        short = short_target_name(name)
        out[f"{short}_mae"] = float(err[:, :, j].mean())
        out[f"{short}_mae_steps"] = [float(v) for v in err[:, :, j].mean(axis=0)]
    return out


def persistence(windows: Any, split: str = "test") -> np.ndarray:
    """The persistence forecast in real units: the last observed value repeated over every output step,
    shape ``(N, output_steps, targets)``. Used by notebooks 04 and 08."""
    last = np.asarray(windows.last_observed(split), np.float64)
    y = np.asarray(getattr(windows, f"y_{split}"))
    return np.repeat(last[:, None, :], y.shape[1], axis=1)


def forecast_metrics(windows: Any, pred_normalised: np.ndarray, split: str = "test", *,
                     n: int | None = None) -> dict[str, Any]:
    """MAE in real units of normalised predictions (a Keras or a TFLite model's) on the first ``n`` windows
    of ``split`` (all by default), next to persistence's: ``T_mae``, ``RH_mae`` (+ ``_steps``),
    ``persist_T_mae``, ``persist_RH_mae`` (+ ``_steps``), ``T_ratio``, ``RH_ratio``.

    The targets are the exact real-unit values (``windows.y_true``) when the windows provide them, else
    the de-normalised ``y``. Used by ``labkit.train.evaluate_forecaster`` and ``labkit.tasks`` (notebooks 04-08).
    """
    names = list(windows.target_names)
    y = np.asarray(getattr(windows, f"y_{split}"))
    n = len(y) if n is None else max(0, min(len(y), int(n)))
    y = y[:n]
    if hasattr(windows, "y_true"):  # exact real-unit targets (no float32 round trip)
        true = np.asarray(windows.y_true(split), np.float64)[:n]
    else:
        true = np.asarray(windows.denormalize_targets(y), np.float64)
    pred = np.asarray(windows.denormalize_targets(np.asarray(pred_normalised).reshape(y.shape)), np.float64)
    out = forecast_mae(true, pred, names)
    base = forecast_mae(true, persistence(windows, split)[:n], names)
    for k, v in base.items():
        out[f"persist_{k}"] = v
    for name in names:
        s = short_target_name(name)
        out[f"{s}_ratio"] = out[f"{s}_mae"] / base[f"{s}_mae"] if base[f"{s}_mae"] > 0 else float("nan")
    return out


def accuracy_se(accuracy: float, n: int) -> float:
    """Standard error of a top-1 accuracy measured on ``n`` independent clips: ``sqrt(p (1 - p) / n)``.

    About 0.021 (2 points) at p = 0.85 on 300 clips. Used wherever a notebook compares two accuracies
    (notebooks 05-08 and the claims table) to say whether a difference is larger than the test set can show.
    """
    if n <= 0:
        raise ValueError(f"accuracy_se needs at least one test clip, got n={n}")
    p = min(max(float(accuracy), 0.0), 1.0)
    return float(np.sqrt(p * (1.0 - p) / n))


def accuracy_difference(a: float, b: float, n: int, *, z: float = 2.0) -> dict[str, Any]:
    """``a - b`` for two accuracies measured on the same ``n`` clips, with a noise band of ``z`` standard errors.

    The band is conservative (it treats the two measurements as independent, ``sqrt(se_a^2 + se_b^2)``; on the
    same clips the true spread is smaller). ``noise`` is True when ``|a - b|`` is inside the band: the test set
    cannot tell the two models apart. Used by notebooks 06-08 and the claims table.
    """
    band = z * float(np.hypot(accuracy_se(a, n), accuracy_se(b, n)))
    diff = float(a) - float(b)
    return {"difference": diff, "band": band, "noise": bool(abs(diff) <= band)}
