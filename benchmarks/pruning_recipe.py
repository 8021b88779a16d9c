"""Why pruning lost accuracy, and the recipe that fixed it: fine-tuned pruning variants side by side.

For DS-CNN (MFCC) keyword spotting and the fc_mlp forecaster of a profile, prunes the trained baseline
(from the model cache of notebooks 03/04) to Sparse 0.8 / 0.9 and Structured 0.5 with several recipes and
prints the test metric (Keras float), the validation metric, the total kernel sparsity and the time:

* ``old``: the recipe before issue 13 (3 epochs, depthwise and output kernels pruned, training LR);
* ``old, lr 5e-4``: the same at the lower learning rate the search once used;
* ``depthwise dense``: tfmot's default (depthwise kernels never pruned), 3 epochs;
* ``recipe``: ``prune.prune_finetune``'s defaults (depthwise and output kernels dense) at the task's
  fine-tuning learning rate (``Task.finetune_kwargs``: training LR x ``tasks.FINETUNE_LR_SCALE``) for the
  profile's ``prune_epochs``: what notebooks 07 and 08 use;
* ``recipe + BN re-estimated``: the same with ``recalibrate=True``;
* references: the unpruned baseline fine-tuned with the same budget (the control), one-shot (BN
  re-estimated, the same layers) and the alpha=0.5 network trained from scratch.

    .venv/bin/python benchmarks/pruning_recipe.py [--profile quick] [--seed 0] [--tasks kws forecast]
                                                  [--variants old recipe] [--epochs 15]

Measured (quick, seed 0, DS-CNN baseline 0.860): old Sparse 0.8 / 0.9 / Structured 0.5 0.593 / 0.273 / 0.737;
recipe (15 epochs, LR 1e-2) 0.903 / 0.870 / 0.867, the unpruned control 0.930. fc_mlp T MAE 0.398: old Sparse
0.8 0.560, recipe 0.389. Not a test: it prints a table (a few minutes per task on 2 cores).

The ``full`` profile's settings offline (2026-12-01: ``--profile full --kws-dataset
../shared/data/speech_commands_test_v0.02_part_a --words yes no up down left right on off stop go --weather payerne
--variants recipe``; 12 labels, 2,538/341/187 clips, 40 training and 30 fine-tuning epochs): DS-CNN 0.850, control
0.877, Sparse 0.8 0.856, Sparse 0.9 0.845, Structured 0.5 0.877, alpha 0.5 from scratch 0.834 (187 test clips:
about +-0.05). The forecaster's 30-epoch fine-tunes at its training rate drifted (fc_mlp T MAE 0.393: control 0.451,
Structured 0.5 0.563), which is why a forecaster's fine-tune now keeps its best validation epoch and starts at 0.3x
its training rate (``tasks.FINETUNE_KEEP_BEST``, ``tasks.FINETUNE_LR_SCALE``; fc_mlp, seeds 0-2, under ``full``:
Structured 0.5 x1.02 and Sparse 0.8 x1.01 the unpruned T MAE, instead of x1.20 and x1.16).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import labkit  # noqa: F401  (before TensorFlow)
import numpy as np

from labkit import config, data, prune, session, tasks, train

VARIANTS: dict[str, dict[str, Any]] = {
    "old": {"epochs": 3, "depthwise": "prune", "skip": (), "lr_scale": 1.0},
    "old, lr 5e-4": {"epochs": 3, "depthwise": "prune", "skip": (), "learning_rate": 5e-4},
    "depthwise dense": {"epochs": 3, "depthwise": "dense", "skip": (), "lr_scale": 1.0},
    "recipe": {},
    "recipe + BN re-estimated": {"recalibrate": True},
}
"""``prune.prune_finetune`` / ``prune.finetune`` keyword arguments of each compared recipe (``recipe``: the
defaults, ``epochs`` from the profile; ``lr_scale`` 1.0: the training learning rate, as before issue 13)."""

LEVELS: tuple[tuple[str, float], ...] = (("sparse", 0.8), ("sparse", 0.9), ("structured", 0.5))


def _val_metric(task: tasks.Task, model: Any) -> float:
    p = tasks.predict(model, task.x_val)
    if task.higher_is_better:
        return float((p.argmax(-1) == task.y_val).mean())
    return float(np.abs(p - task.y_val).mean())


def _row(task: tasks.Task, variant: str, level: str, model: Any, t0: float, **extra: Any) -> dict[str, Any]:
    return {"task": task.name, "variant": variant, "level": level, **task.evaluate(model),
            "val": _val_metric(task, model), **extra,
            "sparsity": float(prune.sparsity_report(model).iloc[-1]["sparsity"]),
            "seconds": round(time.perf_counter() - t0, 1)}


def run_task(task: tasks.Task, variants: list[str], epochs: int) -> list[dict[str, Any]]:
    """Rows of the comparison for one task."""
    base = task.train().model
    t0 = time.perf_counter()
    rows = [_row(task, "baseline", "-", base, t0)]
    rows.append(_row(task, "unpruned, same fine-tune (control)", "-",
                     prune.finetune(base, task.x_train, task.y_train, **task.finetune_kwargs(epochs)).model, t0,
                     epochs=epochs))
    for method, level in LEVELS:
        name = f"{method} {level:g}"
        for v in variants:
            kw = {**task.finetune_kwargs(epochs), **VARIANTS[v]}
            scale = kw.pop("lr_scale", None)
            if scale is not None:  # relative to the training learning rate
                kw["learning_rate"] = float(task.learning_rate) * scale
            t0 = time.perf_counter()
            if method == "sparse":
                model = prune.prune_finetune(base, level, task.x_train, task.y_train, **kw).model
            else:
                if v == "depthwise dense":  # depthwise/skip only matter for unstructured pruning
                    continue
                kw = {k: val for k, val in kw.items() if k not in ("depthwise", "skip")}
                model = prune.finetune(prune.prune_channels(base, 1.0 - level), task.x_train, task.y_train, **kw).model
            rows.append(_row(task, v, name, model, t0, epochs=kw["epochs"], lr=kw["learning_rate"]))
            print({k: (round(x, 4) if isinstance(x, float) else x) for k, x in rows[-1].items()}, flush=True)
        t0 = time.perf_counter()
        if method == "sparse":
            ref = prune.recalibrate_bn(prune.prune_oneshot(base, level, layers=prune.pruned_layers(base)), task.x_train)
            rows.append(_row(task, "one-shot + BN re-estimated", name, ref, t0))
        else:
            rows.append(_row(task, f"alpha {level:g} from scratch", name, task.train(level).model, t0))
    return rows


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick", choices=sorted(config.PROFILES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", nargs="+", default=["kws", "forecast"], choices=["kws", "forecast"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs of 'recipe' (default: the "
                    "profile's prune_epochs)")
    ap.add_argument("--kws-dataset", default=None, help="KWS dataset instead of the profile's (a name or a folder in "
                    "Speech Commands layout, e.g. ../shared/data/speech_commands_test_v0.02_part_a)")
    ap.add_argument("--words", nargs="+", default=None, help="keywords to load from --kws-dataset (default: the "
                    "loader's)")
    ap.add_argument("--weather", default=None, help="weather dataset instead of the profile's (e.g. payerne offline)")
    args = ap.parse_args(argv)

    cfg = session.setup(args.profile, seed=args.seed, kws_dataset=args.kws_dataset, forecast_dataset=args.weather)
    epochs = args.epochs or cfg.prune_epochs
    rows = []
    t0 = time.perf_counter()
    if "kws" in args.tasks:
        kws = data.load_kws(cfg.kws_dataset, words=args.words, per_word=cfg.synth_per_word, seed=args.seed)
        print(kws, flush=True)
        rows += run_task(tasks.kws_task(kws, "ds_cnn", "mfcc_a", **train.kws_settings(cfg), seed=args.seed),
                         args.variants, epochs)
    if "forecast" in args.tasks:
        windows = data.make_windows(data.load_weather(cfg.forecast_dataset))
        rows += run_task(tasks.forecast_task(windows, "fc_mlp", **train.forecast_settings(cfg), seed=args.seed),
                         args.variants, epochs)
    df = pd.DataFrame(rows)
    print(f"\n== pruning recipes, profile {cfg.name} ({cfg.kws_dataset}, {cfg.forecast_dataset}), seed {args.seed}, "
          f"recipe epochs {epochs}, "
          f"{time.perf_counter() - t0:.0f} s (test metric of the Keras model; val = validation metric)")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
