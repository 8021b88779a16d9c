"""Notebook 07: the pruning sweep (sparse, structured and width-multiplier variants, with and without
fine-tuning), the filter-ranking norms, the summary table and the smaller lesson tables.

The techniques are ``labkit.prune``'s; scoring, calibration inputs and fine-tuning settings come from
``labkit.tasks.Task`` (the same as notebook 08's search), files from ``labkit.tflite``, costs from
``labkit.estimate``; the figures are in ``labkit.plots``.
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import bench, config, estimate, prune, tasks, tflite
from .. import metrics
from ..estimate import CORTEX_M4, McuModel
from ..tasks import Task

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["last_pruned_sparsity", "SPARSITIES", "KEEP_WIDTHS", "SUMMARY_LEVELS", "sweep_settings", "sparsity_comparison", "width_table",
           "schedule_table", "measure", "interleaved_latency", "SweepResult", "sweep", "compare_norms",
           "summary_table", "summary_key"]

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


def sweep_settings(cfg: config.Profile) -> dict[str, Any]:
    """Keyword arguments of :func:`sweep` for a run profile: levels, fine-tuning epochs and samples
    (``tasks.finetune_settings``: ``cfg.prune_epochs``, the same as notebook 08's), latency runs.

    ``smoke`` sweeps only the summary-table levels, fine-tunes on at most 256 samples and retrains no
    width multiplier; ``quick`` prunes 5 sparsities and 5 kept widths one-shot, fine-tunes the summary
    levels only (Sparse 0.8/0.9, Structured 0.75/0.5: each fine-tune costs ``prune_epochs`` epochs) and
    retrains alpha 0.5 (for the baseline's epochs plus ``prune_epochs``); ``full`` fine-tunes every level
    and retrains every kept width as a width multiplier. Every profile adds the "baseline fine-tuned"
    control. Used by notebook 07 and benchmarks/pruning.py.
    """
    finetune = tasks.finetune_settings(cfg)
    summary_s = tuple(lv for m, lv in SUMMARY_LEVELS.values() if m == "sparse")
    summary_w = tuple(lv for m, lv in SUMMARY_LEVELS.values() if m == "structured")
    out: dict[str, Any] = {"finetune_epochs": finetune["epochs"], "bench_runs": int(cfg.bench_runs),
                           "bench_warmup": int(cfg.bench_warmup), "max_train_samples": finetune["max_train_samples"],
                           "sparsities": SPARSITIES, "keep_widths": KEEP_WIDTHS, "alphas": (0.5,),
                           "finetuned_sparsities": summary_s, "finetuned_keep_widths": summary_w}
    if cfg.name == "smoke":
        out.update(sparsities=summary_s, keep_widths=summary_w, alphas=())
    elif cfg.name == "full":
        out.update(alphas=KEEP_WIDTHS, finetuned_sparsities=SPARSITIES, finetuned_keep_widths=KEEP_WIDTHS)
    return out


def sparsity_comparison(models: Mapping[str, "tf.keras.Model"]) -> pd.DataFrame:
    """Per-layer kernel sparsity of several models side by side (one column per name), with the layer
    type and whether tfmot prunes it; the last row is the total. Used by notebook 07."""
    frames = []
    for label, model in models.items():
        rep = prune.sparsity_report(model).set_index("layer")
        frames.append(rep["sparsity"].rename(label))
    first = prune.sparsity_report(next(iter(models.values()))).set_index("layer")
    return pd.concat([first[["type", "params", "tfmot_prunable"]], *frames], axis=1)


def width_table(models: Mapping[str, "tf.keras.Model"]) -> pd.DataFrame:
    """Kernel shape of every Conv/Dense/depthwise layer of several models side by side, then their
    parameter and MAC totals (``labkit.estimate``): shows what channel pruning removed. Used by notebook 07."""
    columns = {}
    for label, model in models.items():
        col = {layer.name: "x".join(str(d) for d in w.shape) for layer, w, _ in prune.prunable_weights(model)}
        tot = estimate.totals(model)
        col.update({"params (total)": f"{tot['params']:,}", "MACs (total)": f"{tot['macs']:,}"})
        columns[label] = col
    return pd.DataFrame(columns)


def schedule_table(sparsity: float, total_steps: int, *, frequency: int = 100) -> pd.DataFrame:
    """The end-step pitfall in numbers: a ``PolynomialDecay`` with ``end_step = total_steps`` (the
    obvious choice) next to ``prune.pruning_schedule``'s aligned one, with the step of the last pruning
    update and the sparsity it reaches. Used by notebook 07.
    """
    import tensorflow_model_optimization as tfmot

    naive = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=float(sparsity), begin_step=0,
                               end_step=int(total_steps), frequency=int(frequency))
    aligned, info = prune.pruning_schedule(sparsity, total_steps, frequency=frequency)
    rows = []
    for label, sched, end in (("end_step = total steps", naive, int(total_steps)),
                              ("end_step aligned (labkit)", aligned, info["end_step"])):
        step, reached = last_pruned_sparsity(sched, total_steps)
        rows.append({"schedule": label, "total_steps": int(total_steps), "frequency": int(frequency),
                     "end_step": end, "last_pruning_step": step, "target": float(sparsity),
                     "reached": round(reached, 4)})
    return pd.DataFrame(rows).set_index("schedule")


def last_pruned_sparsity(schedule: Any, total_steps: int) -> tuple[int, float]:
    """``(step, sparsity)`` of the last pruning update a tfmot schedule makes within ``total_steps``
    training steps (steps 1..total_steps, as the pruning wrapper counts them); ``(0, 0.0)`` if none.

    Used by :func:`schedule_table` (notebook 07) and tests/test_prune.py.
    """
    import tensorflow as tf

    steps = tf.range(1, int(total_steps) + 1, dtype=tf.int64)
    should, sparsity = schedule(steps)
    should = np.asarray(should).reshape(-1)
    sparsity = np.broadcast_to(np.asarray(sparsity, np.float64).reshape(-1), should.shape)
    hits = np.flatnonzero(should)
    if hits.size == 0:
        return 0, 0.0
    return int(hits[-1] + 1), float(sparsity[hits[-1]])


def _nonzero_macs(model: "tf.keras.Model", profile: pd.DataFrame) -> int:
    """MACs a zero-skipping kernel would execute: each layer's MACs times the density of its kernel."""
    density = {}
    for layer, w, _ in prune.prunable_weights(model):
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
    row: dict[str, Any] = dict(task.evaluate(model))
    prof = estimate.profile(model)
    total = prof.iloc[-1]
    report = prune.sparsity_report(model).iloc[-1]
    row["params"] = int(total["params"])
    row["nonzero_params"] = int(total["params"]) - int(report["zeros"])
    row["kernel_sparsity"] = float(report["sparsity"])
    row["macs"] = int(total["macs"])
    row["nonzero_macs"] = _nonzero_macs(model, prof)
    row["mcu_ms_est"] = mcu.latency_ms(row["macs"])
    files = {}
    for mode in modes:
        data = tflite.convert(model, mode, task.calibration_inputs() if mode == "int8_wa" else None).data
        files[mode] = data
        prefix = "int8" if mode == "int8_wa" else mode
        row[f"{prefix}_kb"] = len(data) / 1024
        row[f"{prefix}_zlib_kb"] = tflite.zlib_size(data, 9) / 1024
        if mode == "int8_wa":
            row.update({f"{k}_int8": v for k, v in task.evaluate_tflite(data).items()})
            if latency:
                lat = tflite.latency(data, task.x_test[:1], runs=bench_runs, warmup=bench_warmup)
                row["cpu_ms"] = float(lat["median_ms"])
    return row, files


def interleaved_latency(files: Mapping[str, bytes], x: np.ndarray, *, runs: int = 100, warmup: int = 10,
                        rounds: int | None = None) -> dict[str, float]:
    """Median CPU latency (ms, LiteRT, batch 1, one thread) of several .tflite files measured in
    ``rounds`` interleaved rounds (``bench.interleaved`` of ``tflite.invoker``; default: rounds of about 10
    calls), keeping each file's lowest
    round median: a burst of load from other processes then hits every file alike instead of the one
    being timed. Used by :func:`sweep` (notebook 07)."""
    return bench.interleaved({name: tflite.invoker(data, x) for name, data in files.items()}, runs=runs,
                             warmup=warmup, rounds=rounds)


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
    if method == "control":
        return "baseline fine-tuned"
    return f"{method} {level:g} {training}"


def sweep(
    task: Task,
    model: "tf.keras.Model",
    *,
    sparsities: Sequence[float] = SPARSITIES,
    keep_widths: Sequence[float] = KEEP_WIDTHS,
    alphas: Sequence[float] = (0.75, 0.5),
    finetune_epochs: int = 15,
    finetuned_sparsities: Sequence[float] | None = None,
    finetuned_keep_widths: Sequence[float] | None = None,
    learning_rate: float | None = None,
    norm: str = "l1",
    bench_runs: int = 100,
    bench_warmup: int = 10,
    max_train_samples: int | None = None,
    precomputed: Mapping[str, "tf.keras.Model"] | None = None,
    recalibrate: bool = True,
    finetune_baseline: bool = True,
    progress: bool = True,
) -> SweepResult:
    """Prune the trained ``model`` of ``task`` at every level, with and without fine-tuning, and
    :func:`measure` each variant.

    Variants: the baseline; ``sparse s one-shot`` (``prune.prune_oneshot``, per layer) and ``sparse s
    fine-tuned`` (``prune.prune_finetune``) for each sparsity ``s``; ``structured w one-shot``
    (``prune.prune_channels`` removing ``1 - w`` of the channels, ranked by ``norm``) and ``structured w
    fine-tuned`` for each kept width ``w``; ``alpha a retrained`` (the model built with width
    multiplier ``a`` and trained from scratch, ``task.train(a)``, for the baseline's epochs plus
    ``finetune_epochs``: the same number of epochs as a fine-tuned pruned model in all, column
    ``train_epochs``; :func:`width_versus_pruning` compares the two). ``finetuned_sparsities`` /
    ``finetuned_keep_widths`` (default: every level) restrict the fine-tuned twins to some levels; the
    one-shot variants cover every level (fine-tuning is what costs). One-shot sparse variants prune the
    same layers as ``prune.prune_finetune`` (``prune.pruned_layers``: depthwise and output kernels dense).
    With ``recalibrate`` the one-shot variants get their BatchNorm statistics re-estimated
    (``prune.recalibrate_bn``, no training). The baseline, fine-tuned and retrained variants are converted
    to int8 (sparse ones and the baseline also to float32); a one-shot variant takes the measured CPU
    latency of its fine-tuned twin (same architecture; sparse: the baseline's), column ``latency_of``: ``cpu_ms``
    (the interpreter call, interleaved rounds) and ``total_ms`` (a whole prediction, ``Task.latency_breakdown``).
    Fine-tuning starts at ``learning_rate`` (default: ``task.finetune_kwargs``, the training learning rate
    x ``tasks.FINETUNE_LR_SCALE``) and decays it; ``max_train_samples`` fine-tunes on an evenly spaced
    subset (smoke runs); ``precomputed`` maps variant names (e.g. ``"sparse 0.8 fine-tuned"``) to models
    already made with the same settings, which are measured instead of being pruned again.
    ``finetune_baseline`` adds ``baseline fine-tuned`` (method ``control``): the unpruned model fine-tuned
    with the very same budget, the fair reference when the baseline was not trained to convergence (the
    quick profile's 10-epoch DS-CNN gained 7 points from 15 more epochs: part of a pruned model's
    "recovery" is then just more training).
    Used by notebook 07 and benchmarks/pruning.py.
    """
    from tqdm.auto import tqdm

    x_fit, y_fit = task.training_subset(max_train_samples)

    tuned_s = [float(v) for v in (sparsities if finetuned_sparsities is None else finetuned_sparsities)]
    tuned_w = [float(v) for v in (keep_widths if finetuned_keep_widths is None else finetuned_keep_widths)]
    jobs: list[tuple[str, float, str]] = [("baseline", 1.0, "none")]
    if finetune_baseline:
        jobs.append(("control", 1.0, "fine-tuned"))
    jobs += [("sparse", v, t) for v in sorted({*map(float, sparsities), *tuned_s})
             for t in ("one-shot", "fine-tuned") if t == "one-shot" or v in tuned_s]
    jobs += [("structured", v, t) for v in sorted({*map(float, keep_widths), *tuned_w}, reverse=True)
             for t in ("one-shot", "fine-tuned") if t == "one-shot" or v in tuned_w]
    jobs += [("alpha", float(a), "retrained") for a in alphas]
    oneshot_layers = prune.pruned_layers(model)
    budget = int(task.epochs or 0) + int(finetune_epochs)  # epochs a fine-tuned pruned model had in all
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
        elif method == "control":
            variant = prune.finetune(model, x_fit, y_fit, **fit_kw).model
        elif method == "sparse" and training == "one-shot":
            variant = prune.prune_oneshot(model, level, layers=oneshot_layers)
            if recalibrate:
                variant = prune.recalibrate_bn(variant, x_fit)
        elif method == "sparse":
            variant = prune.prune_finetune(model, level, x_fit, y_fit, **fit_kw).model
        elif method == "structured":
            variant = prune.prune_channels(model, 1.0 - level, norm=norm)
            if training == "fine-tuned":
                variant = prune.finetune(variant, x_fit, y_fit, **fit_kw).model
            elif recalibrate:
                variant = prune.recalibrate_bn(variant, x_fit)
        else:  # the width multiplier's budget: the baseline's training plus the pruned models' fine-tune
            variant = task.train(level, epochs=budget).model
        seconds = time.perf_counter() - t0 if name not in (precomputed or {}) else float("nan")
        twin = _variant(method, level, "fine-tuned") if (method, level, "fine-tuned") in jobs else None
        if training == "one-shot":  # same architecture as its fine-tuned twin (sparse: as the baseline)
            modes: tuple[str, ...] = () if twin or method == "sparse" else ("int8_wa",)
        elif method in ("baseline", "sparse"):
            modes = ("int8_wa", "fp32")
        else:
            modes = ("int8_wa",)
        row, converted = measure(task, variant, modes=modes, latency=False)
        rows.append({"task": task.name, "model": task.model_name, "variant": name, "method": method,
                     "level": level, "training": training, **row,
                     "latency_of": name if "int8_wa" in converted else twin or "baseline",
                     "prune_s": seconds if method != "alpha" else float("nan"),
                     "train_epochs": {"baseline": task.epochs, "alpha": budget}.get(
                         method, task.epochs if training == "one-shot" else budget)})
        models[name], files[name] = variant, converted
    table = pd.DataFrame(rows)
    int8 = {name: f["int8_wa"] for name, f in files.items() if "int8_wa" in f}
    measured = interleaved_latency(int8, task.x_test, runs=bench_runs, warmup=bench_warmup)
    table["cpu_ms"] = [measured.get(v, float("nan")) for v in table["latency_of"]]
    totals = {name: task.latency_breakdown(data, runs=bench_runs, warmup=bench_warmup).set_index("stage")
              .loc["total", "ms"] for name, data in int8.items()}  # a whole prediction: features + inference + argmax
    table["total_ms"] = [float(totals.get(v, float("nan"))) for v in table["latency_of"]]
    return SweepResult(table=table, models=models, files=files)


def compare_norms(task: Task, model: "tf.keras.Model", keep_widths: Sequence[float] = KEEP_WIDTHS,
                  norms: Sequence[str] = prune.NORMS, *, recalibrate: bool = True,
                  max_samples: int | None = 1024) -> pd.DataFrame:
    """One-shot channel pruning (no fine-tuning) of ``model`` at each kept width with each ranking norm:
    the test metric (after ``prune.recalibrate_bn`` on up to ``max_samples`` training inputs when
    ``recalibrate``), and how many of the kept channels each norm shares with L1 (``overlap_l1``, over
    all pruned layers). Used by notebook 07."""
    x_cal, _ = task.training_subset(max_samples)
    rows = []
    ref_scores = prune.channel_scores(model, "l1")
    for w in keep_widths:
        ref_keep = prune.channels_to_keep(ref_scores, 1.0 - w)
        for norm in norms:
            keep = prune.channels_to_keep(prune.channel_scores(model, norm), 1.0 - w)
            shared = sum(len(np.intersect1d(keep[k], ref_keep[k])) for k in keep)
            pruned = prune.keep_channels(model, keep)
            metrics = task.evaluate(prune.recalibrate_bn(pruned, x_cal) if recalibrate else pruned)
            rows.append({"keep_width": w, "norm": norm, **metrics,
                         "overlap_l1": shared / max(1, sum(len(v) for v in keep.values()))})
    return pd.DataFrame(rows)


def summary_table(result: SweepResult | pd.DataFrame, task: Task,
                  levels: Mapping[str, tuple[str, float]] = SUMMARY_LEVELS) -> pd.DataFrame:
    """The course's summary table for one task: the baseline, the unpruned baseline fine-tuned with the
    pruned rows' budget (``Baseline fine-tuned``, when the sweep has it) and each ``levels`` row (fine-tuned),
    with the metric of the Keras model (``value``, the effect of pruning alone) and of the int8 .tflite
    (``value_int8``, pruning plus quantization), the int8 file's size and zlib size in kB, its measured
    CPU latency (the interpreter call, and ``total_ms``: a whole prediction), the estimated MCU latency,
    and the change against the baseline (metrics in their own units, the rest in %). The task's other
    metrics (a forecaster's ``RH_mae``) come beside it, of the Keras model and (``RH_mae_int8``) of the
    int8 file, so that notebook 09 can take whole rows from it. Used by notebook 07 and benchmarks/pruning.py.
    """
    table = result.table if isinstance(result, SweepResult) else result
    table = table[table["task"] == task.name].set_index("variant")
    wanted = {"Baseline": "baseline"}
    if "baseline fine-tuned" in table.index:
        wanted["Baseline fine-tuned"] = "baseline fine-tuned"
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
            "total_ms": float(r.get("total_ms", float("nan"))), "mcu_ms_est": float(r["mcu_ms_est"]),
            **{f"{k}{s}": float(r[f"{k}{s}"]) for k in task.extra_metrics for s in ("", "_int8")
               if f"{k}{s}" in r.index},
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
        if not r.variant.startswith("Baseline"):
            key[f"{name} zlib %"] = round(float(r.zlib_change_pct), 1)
            key[f"{name} latency %"] = round(float(r.latency_change_pct), 1)
    return key


# --------------------------------------------------------------- is a change against the baseline noise?
def versus_baseline(table: pd.DataFrame, task: Task, *, n_test: int | None = None,
                    columns: Sequence[str] = ()) -> tuple[pd.DataFrame, str]:
    """A short view of a :func:`sweep` table or a :func:`summary_table` for ``task``: each variant's int8
    metric, its change against the baseline's, and for top-1 on ``n_test`` clips whether that change is
    inside the noise band, two standard errors of the difference (``metrics.accuracy_difference``: ``noise`` True means this test set cannot
    tell the variant from the baseline), then ``columns``; and one sentence saying which changes are noise.
    Used by notebook 07."""
    t = table[table["task"] == task.name] if "task" in table.columns else table
    value = "value_int8" if "value_int8" in t.columns else f"{task.metric}_int8"
    is_base = t["variant"].str.lower() == "baseline"
    base = float(t.loc[is_base, value].iloc[0])
    view = t[["variant", value]].copy()
    view["change"] = view[value] - base
    band = metrics.accuracy_difference(base, base, n_test)["band"] if task.higher_is_better and n_test else None
    if band is not None:
        view["noise"] = [metrics.accuracy_difference(v, base, n_test)["noise"] if v == v else None for v in view[value]]
    view = pd.concat([view, t[[c for c in columns if c in t.columns]]], axis=1).reset_index(drop=True)
    others = view[~is_base.to_numpy() & view["change"].notna().to_numpy()]  # one-shot rows have no int8 file
    if band is None:
        text = (f"{task.metric_label}: one seed, and no standard error of an MAE is computed here: read small "
                f"changes as unproven (largest change against the baseline: {others['change'].abs().max():.3f}).")
        return view, text

    def listed(rows: pd.DataFrame) -> str:
        return ", ".join(f"{v} {c:+.3f}" for v, c in zip(rows["variant"], rows["change"])) or "none"

    noisy, real = others[others["noise"].astype(bool)], others[~others["noise"].astype(bool)]
    text = (f"On {n_test} test clips the noise band of a difference to the baseline's int8 top-1 ({base:.3f}) is "
            f"about ±{band:.3f} (2 standard errors, one seed). Inside it, noise, not a change: {listed(noisy)}"
            + (" (this test set cannot tell these from the baseline: none is better or worse)" if len(noisy) else "")
            + f". Larger than the noise: {listed(real)}.")
    return view, text


def width_versus_pruning(table: pd.DataFrame, task: Task, *, n_test: int | None = None) -> str:
    """One sentence per width multiplier of a :func:`sweep` table that has a fine-tuned structured twin of the
    same width: the model trained narrow from scratch against the pruned one, after the same number of epochs
    in all (``train_epochs``), on their int8 files, with the noise band of the difference for top-1 on
    ``n_test`` clips (``metrics.accuracy_difference``). Used by notebook 07."""
    t = table[table["task"] == task.name] if "task" in table.columns else table
    value = f"{task.metric}_int8" if f"{task.metric}_int8" in t.columns else "value_int8"
    rows = t.set_index("variant")
    lines = []
    for level in t.loc[t["method"] == "alpha", "level"]:
        a, s = _variant("alpha", level, "retrained"), _variant("structured", level, "fine-tuned")
        if s not in rows.index:
            continue
        va, vs = float(rows.loc[a, value]), float(rows.loc[s, value])
        budget = f"{rows.loc[a, 'train_epochs']:g} epochs" if "train_epochs" in rows.columns else "its epochs"
        head = (f"{a} ({budget} from scratch) {va:.3f} vs {s} (the trained baseline's channels, same epochs in "
                f"all) {vs:.3f}: {va - vs:+.3f}")
        if task.higher_is_better and n_test:
            d = metrics.accuracy_difference(va, vs, n_test)
            verdict = ("inside the noise band, so this test set cannot tell the two routes apart" if d["noise"] else
                       f"outside the noise band: {'training narrow' if va > vs else 'pruning'} wins here")
            lines.append(f"{head} (noise band ±{d['band']:.3f}: {verdict}).")
        else:
            lines.append(f"{head} ({task.metric_label}, lower is better; one seed: not assessed for noise).")
    return "\n".join(lines) or "no width multiplier with a fine-tuned structured twin of the same width in this sweep"


__all__ += ["versus_baseline", "width_versus_pruning"]
