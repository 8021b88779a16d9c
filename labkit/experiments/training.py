"""Notebooks 03 and 04: which models to train on which features, and the tables and forecasts they show.

Thin on purpose: the training itself is ``labkit.train`` (recipes + model cache), the metrics
``labkit.metrics``; this module only lays their results out the way the lessons present them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..metrics import persistence, short_target_name
from ..train import TrainResult, predict

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["TINYCONV_FEATURES", "kws_plan", "kws_table", "per_class_table", "forecast_table", "forecast_predictions"]


TINYCONV_FEATURES = "logmel"
"""TinyConv is built for micro_speech's 49x40 log-mel input; :func:`kws_plan` gives it that."""


def kws_plan(models: Sequence[str], features: Sequence[str]) -> list[tuple[str, str]]:
    """(model, features) pairs to train: every model on every feature preset, except TinyConv, which
    gets :data:`TINYCONV_FEATURES` only. Used by notebook 03 and benchmarks/kws_real.py."""
    plan: list[tuple[str, str]] = []
    for m in models:
        for f in ([TINYCONV_FEATURES] if m == "tinyconv" else list(features)):
            if (m, f) not in plan:
                plan.append((m, f))
    return plan


def kws_table(results: Mapping[str, TrainResult]) -> "pd.DataFrame":
    """One row per KWS run: model, features, test top-1, best validation top-1, test clips (``n``), params, float32 size,
    train time, epochs run, cache hit. Used by notebooks 03 and 08."""
    import pandas as pd

    cols = ["model", "features", "top1", "val_top1", "n", "params", "size_kb", "train_time_s", "epochs", "cache_hit"]
    rows = []
    for name, res in results.items():
        row = res.row()
        rows.append({"run": name, **{c: row.get(c) for c in cols}})
    return pd.DataFrame(rows).set_index("run")


def per_class_table(results: Mapping[str, TrainResult]) -> "pd.DataFrame":
    """Test accuracy per label (rows) and run (columns). Used by notebook 03."""
    import pandas as pd

    return pd.DataFrame({name: res.metrics["per_class_accuracy"] for name, res in results.items()})


def forecast_table(results: Mapping[str, TrainResult]) -> "pd.DataFrame":
    """One row per forecaster plus a first ``persistence`` row: test MAE of each target in real units
    (averaged over the output steps), the ratio to persistence, params, float32 size and train time.

    Used by notebooks 04 and 08.
    """
    import pandas as pd

    if not results:
        raise ValueError("forecast_table needs at least one TrainResult")
    first = next(iter(results.values()))
    shorts = [short_target_name(n) for n in first.info.get("target_names", ["T (degC)", "rh (%)"])]
    rows = [{"model": "persistence", **{f"{s}_mae": first.metrics[f"persist_{s}_mae"] for s in shorts},
             **{f"{s}_ratio": 1.0 for s in shorts}, "params": 0, "size_kb": 0.0, "train_time_s": 0.0,
             "epochs": 0, "cache_hit": None}]
    for name, res in results.items():
        m = res.metrics
        rows.append({"model": name, **{f"{s}_mae": m[f"{s}_mae"] for s in shorts},
                     **{f"{s}_ratio": m[f"{s}_ratio"] for s in shorts}, "params": res.params,
                     "size_kb": round(res.params * 4 / 1024, 2), "train_time_s": round(res.train_time_s, 1),
                     "epochs": len(res.history.get("loss", [])), "cache_hit": res.cache_hit})
    return pd.DataFrame(rows).set_index("model")


def forecast_predictions(results: Mapping[str, TrainResult], windows: Any, split: str = "test"
                         ) -> dict[str, np.ndarray]:
    """Real-unit predictions ``(N, steps, targets)`` of every model on ``split``, plus
    ``"persistence"``. Used by notebook 04 (predictions vs truth)."""
    x = np.asarray(getattr(windows, f"x_{split}"), np.float32)
    out = {name: np.asarray(windows.denormalize_targets(predict(res.model, x, batch_size=1024)))
           for name, res in results.items()}
    out["persistence"] = persistence(windows, split)
    return out
