"""The course's pruning summary table (notebook 07) for keyword spotting and forecasting: baseline,
Structured 0.75 / 0.5 (fraction of channels kept) and Sparse 0.8 / 0.9 (fraction of weights zeroed),
all fine-tuned, with the test metric (Keras float and int8 .tflite), the int8 .tflite size, its zlib
size, the measured CPU latency and the estimated Cortex-M4 latency, plus the change against the
baseline.

    .venv/bin/python benchmarks/pruning.py [--profile quick] [--seed 0] [--kws-model ds_cnn]
                                           [--fc-model fc_mlp] [--norm l1] [--sweep]

Trained baselines come from the model cache (notebooks 03/04 with the same profile), else are trained.
Only the summary levels are pruned unless ``--sweep`` asks for the notebook's full sweep. Latencies
depend on the machine and its load: run it on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import labkit  # noqa: F401  (before TensorFlow)
import pandas as pd

from labkit import config, data, estimate, prune, session, tasks, train
from labkit.experiments import pruning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=sorted(config.PROFILES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kws-model", default="ds_cnn")
    parser.add_argument("--features", default="mfcc_a")
    parser.add_argument("--fc-model", default="fc_mlp")
    parser.add_argument("--norm", default="l1", choices=prune.NORMS)
    parser.add_argument("--sweep", action="store_true", help="run every level of notebook 07, not only the summary's")
    args = parser.parse_args()

    cfg = session.setup(args.profile, seed=args.seed)
    settings = pruning.sweep_settings(cfg)
    if not args.sweep:
        settings.update(sparsities=(0.8, 0.9), keep_widths=(0.75, 0.5), alphas=())
    print(f"profile {cfg.name}, seed {args.seed}; {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"MCU estimate: {estimate.CORTEX_M4.name}, {estimate.CORTEX_M4.cycles_per_mac:.2f} cycles/MAC "
          f"({estimate.CORTEX_M4.source})")

    start = time.perf_counter()
    kws = data.load_kws(cfg.kws_dataset, per_word=cfg.synth_per_word, seed=args.seed)
    kws_task = tasks.kws_task(kws, args.kws_model, args.features, **train.kws_settings(cfg), seed=args.seed)
    windows = data.make_windows(data.load_weather(cfg.forecast_dataset))
    fc_task = tasks.forecast_task(windows, args.fc_model, **train.forecast_settings(cfg), seed=args.seed)
    summaries, sweeps = [], []
    for task in (kws_task, fc_task):
        result = pruning.sweep(task, task.train().model, norm=args.norm, **settings)
        sweeps.append(result.table)
        summaries.append(pruning.summary_table(result, task))
    summary = pd.concat(summaries, ignore_index=True)

    print(f"\nPruning summary ({kws.name} keywords, {cfg.forecast_dataset} weather; "
          f"{settings['finetune_epochs']} fine-tuning epochs; {time.perf_counter() - start:.0f} s):")
    shown = summary[["task", "model", "variant", "metric", "value", "delta", "value_int8", "delta_int8",
                     "tflite_kb", "tflite_change_pct", "zlib_kb", "zlib_change_pct", "latency_ms",
                     "latency_change_pct", "mcu_ms_est"]]
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(shown.round({"value": 4, "delta": 4, "value_int8": 4, "delta_int8": 4, "tflite_kb": 2,
                           "tflite_change_pct": 1, "zlib_kb": 2, "zlib_change_pct": 1, "latency_ms": 4,
                           "latency_change_pct": 1, "mcu_ms_est": 3}).to_string(index=False))
        if args.sweep:
            print("\nEvery variant:")
            table = pd.concat(sweeps, ignore_index=True)
            print(table.drop(columns=["latency_of"]).round(4).to_string(index=False))


if __name__ == "__main__":
    main()
