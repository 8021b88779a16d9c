"""DS-CNN (or another KWS model) converted to TFLite in every mode: test top-1 next to Keras, file and
zlib size, LiteRT latency per stage, what each file stores, and the INT8 W+A file in TFLite Micro.

    .venv/bin/python benchmarks/conversion.py [--profile quick] [--model ds_cnn] [--features mfcc_a]

The model is the one notebook 03 trains under the same profile (taken from the model cache when it is
there, trained otherwise). Latencies depend on the machine and its load: run it on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import labkit  # noqa: F401  (before TensorFlow)
import pandas as pd

from labkit import data, session, tflite, train
from labkit.experiments import conversion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", help="smoke | quick | full (dataset, epochs, runs)")
    parser.add_argument("--model", default="ds_cnn", help="a KWS model of labkit.models")
    parser.add_argument("--features", default="mfcc_a", help="feature preset the model is trained on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="test samples evaluated (default: all)")
    args = parser.parse_args()

    cfg = session.setup(args.profile, seed=args.seed)
    print(f"profile {cfg.name}: {cfg.kws_dataset}, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}")
    kws = data.load_kws(cfg.kws_dataset, per_word=cfg.synth_per_word, seed=args.seed)
    fit = train.train_kws(args.model, kws, args.features, **train.kws_settings(cfg), seed=args.seed)
    f_train, _, f_test = train.kws_features(kws, args.features)
    name = f"{args.model} · {args.features}"

    start = time.perf_counter()
    cmp = conversion.compare_modes_kws(name, fit.model, f_test, kws.y_test, labels=kws.labels,
                                    representative=f_train, clip=kws.x_test[0], features=args.features,
                                    limit=args.limit, runs=cfg.bench_runs, warmup=cfg.bench_warmup)
    elapsed = time.perf_counter() - start

    pd.set_option("display.width", 160)
    n = len(f_test) if args.limit is None else min(args.limit, len(f_test))
    print(f"\n{name}: {fit.params:,} parameters, Keras test top-1 {cmp.table['keras_top1'].iloc[0]:.4f} "
          f"on {n} test clips ({kws.name}); LiteRT, batch 1, 1 thread, medians of {cfg.bench_runs} runs")
    cols = ["mode", "top1", "diff_top1", "tflite_kb", "zlib_kb", "inference_ms", "total_ms", "method"]
    print(cmp.table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\nBytes of constant data per tensor type:")
    print(tflite.storage_table(cmp.converted).to_string())
    print("\nLatency per stage (ms):")
    print(cmp.breakdown.pivot_table(index="mode", columns="stage", values="ms", sort=False)
          .to_string(float_format=lambda v: f"{v:.4f}"))
    t = cmp.tflm
    print(f"\nINT8 W+A in TFLite Micro on {t['n']} clips: arena reported {t['arena_bytes']:,} B "
          f"(head {t['arena_head_bytes']:,}, tail {t['arena_tail_bytes']:,}), smallest that runs "
          f"{t['min_arena_bytes']:,} B; vs LiteRT builtin kernels: max {t['max_diff_lsb']} LSB, "
          f"{t['exact']:.1%} identical, classes agree {t['agreement']:.1%}; vs LiteRT+XNNPACK: max "
          f"{t['max_diff_lsb_xnnpack']} LSB, classes agree {t['agreement_xnnpack']:.1%}")
    print(f"\n({elapsed:.0f} s for conversion, evaluation, timing and the TFLM run)")


if __name__ == "__main__":
    main()
