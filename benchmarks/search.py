"""The trade-off search of notebook 08 as a benchmark: for each task, how long a study takes, how many
distinct configurations its trials measured and what one measurement costs, the Pareto front, the
constraint presets met (or the closest configuration, with margins), and the cost of resuming a
finished study (which must measure nothing). Then the throughput of the real `labkit search` command
with 1 and 2 worker processes on one study (trials per minute, wall clock from the command's start to
its end, and "steady": from the first trial's start to the last trial's end, i.e. without process
start-up and data loading).

    .venv/bin/python benchmarks/search.py [--profile quick] [--task kws|forecast|both] [--trials N]
                                          [--storage URL] [--seed 0] [--workers 1,2] [--no-study]

Trained models come from the model cache (notebooks 03/04 with the same profile), else are trained;
pruned models are cached too, so a second run mostly measures conversion and latency. Without
``--storage`` each run uses a fresh SQLite file in a temporary folder (a cold study). Latencies depend
on the machine and its load: run it on an idle machine. Before the worker runs, every configuration
of the space is measured once in this process, so that all of them are in the model cache (each
worker count then measures conversions and latencies, not first trainings); each run gets a fresh study.
With ``--storage`` (e.g. a PostgreSQL URL) the worker runs use that database, else a SQLite file.
"""
from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import labkit  # noqa: F401  (before TensorFlow)
import pandas as pd

from labkit import config, data, search, session, studies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=sorted(config.PROFILES))
    parser.add_argument("--task", default="both", choices=("kws", "forecast", "both"))
    parser.add_argument("--trials", type=int, default=None, help="default: the profile's search_trials")
    parser.add_argument("--storage", default=None, help="Optuna database URL (default: a temporary SQLite file)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", default="1,2", help="worker counts of the throughput table ('' = none)")
    parser.add_argument("--no-study", action="store_true", help="only the throughput table")
    args = parser.parse_args()

    cfg = session.setup(args.profile, seed=args.seed, search_trials=args.trials)
    print(f"profile {cfg.name}, seed {args.seed}, {cfg.search_trials} trials per task; "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    tasks = search.TASKS if args.task == "both" else (args.task,)
    if not args.no_study:
        study_table(args, cfg, tasks)
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    if counts:
        workers_table(args, cfg, tasks, counts)


def _load(task: str, cfg: config.Profile, seed: int):
    if task == "kws":
        return data.load_kws(cfg.kws_dataset, per_word=cfg.synth_per_word, seed=seed)
    return data.make_windows(data.load_weather(cfg.forecast_dataset))


def study_table(args: argparse.Namespace, cfg: config.Profile, tasks) -> None:
    """One search per task: Pareto front, presets, cost of a measurement and of a resume."""
    summary = []
    with tempfile.TemporaryDirectory(prefix="labkit-search-") as tmp, \
            pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_colwidth", 60):
        for task in tasks:
            t0 = time.perf_counter()
            dataset = _load(task, cfg, args.seed)
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


def workers_table(args: argparse.Namespace, cfg: config.Profile, tasks, counts: list[int]) -> None:
    """Trials per minute of `labkit search --workers W` for each W, each on a fresh study."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="labkit-workers-") as tmp:
        for task in tasks:
            dataset = _load(task, cfg, args.seed)
            space = search.search_space(task, cfg)
            evaluate = search.make_objective(task, dataset, cfg, seed=args.seed)
            for values in itertools.product(*space.values()):  # fill the model cache: no first training below
                try:
                    evaluate(dict(zip(space, values)))
                except NotImplementedError:
                    pass
            for w in counts:
                name = f"bench-{task}-{w}w-{uuid.uuid4().hex[:6]}"
                storage = args.storage or f"sqlite:///{Path(tmp) / f'{name}.db'}"
                command = [sys.executable, "-m", "labkit.cli", "search", "--task", task, "--profile", cfg.name,
                           "--seed", str(args.seed), "--trials", str(cfg.search_trials), "--workers", str(w),
                           "--study", name]
                t0 = time.perf_counter()
                proc = subprocess.run(command, capture_output=True, text=True,
                                      env={**os.environ, "LABKIT_STORAGE": storage})
                wall = time.perf_counter() - t0
                if proc.returncode:
                    print(proc.stdout[-3000:], proc.stderr[-3000:])
                status = studies.study_status(storage, name)
                trials = studies.load_study(storage, name).get_trials(deepcopy=False)
                done = [t for t in trials if t.state.name == "COMPLETE"]
                steady = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in trials)).total_seconds()
                rows.append({"profile": cfg.name, "task": task, "workers": w, "exit": proc.returncode,
                             "finished": len(done), "failed": status.counts["FAIL"],
                             "distinct": len({tuple(sorted(t.params.items())) for t in done}),
                             "wall_s": round(wall, 1), "trials_per_min": round(60 * len(done) / wall, 2),
                             "steady_s": round(steady, 1), "steady_trials_per_min": round(60 * len(done) / steady, 2)})
                print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    backend = studies.mask_url(args.storage) if args.storage else "SQLite file"
    print(f"\nWorkers ({backend}; {os.cpu_count()} CPUs; every configuration cached before the runs):")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
