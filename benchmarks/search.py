"""The trade-off search of notebook 08 as a benchmark: for each task, how long a study takes, how many
distinct configurations its trials measured and what one measurement costs, the Pareto front, the
constraint presets met (or the closest configuration, with margins), and the cost of resuming a
finished study (which must measure nothing).

    .venv/bin/python benchmarks/search.py [--profile quick] [--task kws|forecast|both] [--trials N]
                                          [--storage URL] [--seed 0]

Trained models come from the model cache (notebooks 03/04 with the same profile), else are trained;
pruned models are cached too, so a second run mostly measures conversion and latency. Without
``--storage`` each run uses a fresh SQLite file in a temporary folder (a cold study). Latencies depend
on the machine and its load: run it on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import labkit  # noqa: F401  (before TensorFlow)
import pandas as pd

from labkit import config, data, search, session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=sorted(config.PROFILES))
    parser.add_argument("--task", default="both", choices=("kws", "forecast", "both"))
    parser.add_argument("--trials", type=int, default=None, help="default: the profile's search_trials")
    parser.add_argument("--storage", default=None, help="Optuna database URL (default: a temporary SQLite file)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cfg = session.setup(args.profile, seed=args.seed, search_trials=args.trials)
    print(f"profile {cfg.name}, seed {args.seed}, {cfg.search_trials} trials per task; "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    tasks = search.TASKS if args.task == "both" else (args.task,)
    summary = []
    with tempfile.TemporaryDirectory(prefix="labkit-search-") as tmp, \
            pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_colwidth", 60):
        for task in tasks:
            t0 = time.perf_counter()
            if task == "kws":
                dataset = data.load_kws(cfg.kws_dataset, per_word=cfg.synth_per_word, seed=args.seed)
            else:
                dataset = data.make_windows(data.load_weather(cfg.forecast_dataset))
            load_s = time.perf_counter() - t0
            storage = args.storage or f"sqlite:///{Path(tmp) / f'{task}.db'}"
            result = search.run_search(task, dataset, cfg, seed=args.seed, storage=storage, progress=False)
            t1 = time.perf_counter()
            again = search.run_search(task, dataset, cfg, seed=args.seed, storage=storage, progress=False)
            resume_s = time.perf_counter() - t1
            trials = result.trials
            distinct = trials.drop_duplicates("config")
            best = search.best_configs(trials, task)
            summary.append({
                "task": task, "space": search.space_size(result.space), "trials": len(trials),
                "distinct": len(distinct), "load_s": round(load_s, 1), "search_s": round(result.seconds, 1),
                "median_eval_s": round(float(distinct["eval_s"].median()), 2),
                "max_eval_s": round(float(distinct["eval_s"].max()), 1), "front": int(trials["pareto"].sum()),
                "resume_s": round(resume_s, 2), "resume_new_trials": again.new_trials,
                "presets_met": ", ".join(best.loc[best["status"] == "met", "preset"]) or "none"})
            print(f"\n{task}: Pareto front ({result.name})")
            print(result.front[["trial", "config", *search.OBJECTIVES[task], "eval_s"]].round(4).to_string(index=False))
            print(f"\n{task}: constraint presets")
            print(search.preset_checks(best).round(4).to_string(index=False))
        print("\nSummary:")
        print(pd.DataFrame(summary).to_string(index=False))


if __name__ == "__main__":
    main()
