"""Keyword spotting on real speech: every KWS model on STFT and MFCC features, float and int8.

Trains on the real clips in ``../shared/data/speech_commands_test_v0.02_part_a`` (the 8 words of
``config.KWS_WORDS``; speaker-disjoint train/val/test from ``load_kws``), then prints test top-1 per
model and feature type, for the float Keras model and its full-integer (int8 W+A) TFLite conversion,
plus DS-CNN with synthetic clips mixed into the training split. Not a test: it prints a table.

    .venv/bin/python benchmarks/kws_real.py [--epochs 30] [--seeds 0 1 2] [--extra-synthetic 300] [--cache]

Planning numbers (unseen speakers): DS-CNN MFCC 83-87 %, CNN MFCC 87 %, MLP 61 %; +300 synthetic
clips per word lifted DS-CNN to 88.6 %.
"""
from __future__ import annotations

import argparse
import sys
import time

import labkit  # noqa: F401  (before TensorFlow)
from labkit import config, data, tasks, tflite, train
from labkit.experiments import training

FOLDER = "speech_commands_test_v0.02_part_a"


def int8_top1(result: train.TrainResult, kws: data.KWSData, features: str) -> float:
    """Test top-1 of the full-integer TFLite conversion (calibrated on training features)."""
    task = tasks.kws_task(kws, features=features)
    tfl = tflite.convert(result.model, "int8_wa", representative=task.calibration_inputs())
    return task.evaluate(tfl)["top1"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn", "ds_cnn", "tinyconv"])
    ap.add_argument("--features", nargs="+", default=["stft", "mfcc_a"])
    ap.add_argument("--extra-synthetic", type=int, default=300, help="synthetic clips per word for the mixed run "
                    "(0 = skip)")
    ap.add_argument("--cache", action="store_true", help="reuse cached models (default: retrain and time)")
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 conversion")
    args = ap.parse_args(argv)

    shared = config.shared_data_dir()
    if shared is None or not (shared / FOLDER).is_dir():
        print(f"skipped: ../shared/data/{FOLDER} is not present (developers and CI only)")
        return 0
    kws = data.load_kws(str(shared / FOLDER), words=config.KWS_WORDS, unknown=False, silence=False, seed=0)
    print(kws)
    print(f"speakers per split: {kws.info['speakers']}, overlap {kws.info['speaker_overlap']}")
    int8 = not args.no_int8

    import pandas as pd

    rows = []
    plan = [(m, f, 0) for m, f in training.kws_plan(args.models, args.features)]
    if args.extra_synthetic:
        plan.append(("ds_cnn", "mfcc_a", args.extra_synthetic))
    t0 = time.perf_counter()
    for seed in args.seeds:
        for model, feats, extra in plan:
            res = train.train_kws(model, kws, feats, epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                                  extra_synthetic=extra, cache=args.cache)
            row = {"model": model, "features": feats, "synthetic/word": extra, "seed": seed,
                   "top1": res.metrics["top1"], "val_top1": res.metrics["val_top1"], "params": res.params,
                   "epochs": len(res.history["loss"]), "train_s": round(res.train_time_s, 1)}
            if int8:
                row["int8_top1"] = int8_top1(res, kws, feats)
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    df = pd.DataFrame(rows)
    print(f"\n== KWS on real speech ({kws.info['source']}), {len(kws.labels)} words, test n={len(kws.y_test)}, "
          f"epochs<={args.epochs}, total {time.perf_counter() - t0:.0f} s")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if len(args.seeds) > 1:
        agg = df.groupby(["model", "features", "synthetic/word"], sort=False)["top1"].agg(["mean", "std", "min", "max"])
        print("\nover seeds:\n" + agg.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
