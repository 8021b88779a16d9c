"""The ``labkit`` command line.

    labkit report [--profile smoke|quick|full] [--only 01,03] [--output reports/] [--seed 0]
    labkit data [--list | --fetch NAME | --synthetic N]
    labkit info
    labkit warmup
    labkit search --task kws|forecast [--trials N] [--storage URL] [--study NAME] [--profile P] [--seed 0]
    labkit assign [--out dist/] [--only 01,03]
    labkit grade SUBMISSIONS [--autograder dist/autograder] [--out grades/] [--timeout S] [--jobs N] [--mode M]
"""
from __future__ import annotations

import argparse
import sys

from . import config


def _cmd_report(args: argparse.Namespace) -> int:
    from . import report

    only = [s for s in (args.only or "").split(",") if s.strip()] or None
    runs = report.run_report(args.profile, only=only, output=args.output, seed=args.seed, timeout=args.timeout)
    return 0 if runs and all(r.status == "ok" for r in runs) else 1


def _cmd_info(_: argparse.Namespace) -> int:
    from . import results

    for k, v in results.versions().items():
        print(f"{k:32s} {v}")
    print(f"{'data cache':32s} {config.data_dir()}")
    print(f"{'reports':32s} {config.reports_dir()}")
    print(f"{'shared data (developers only)':32s} {config.shared_data_dir() or 'absent'}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from . import data

    if args.fetch:
        print(data.fetch(args.fetch))
        return 0
    if args.synthetic:
        kws = data.load_kws("synthetic", per_word=args.synthetic, seed=args.seed)
        print(kws.summary().to_string())
        return 0
    print(data.available().to_string(index=False))
    return 0


def _cmd_warmup(_: argparse.Namespace) -> int:
    """One-off compilation work done at install time (librosa's numba kernels), so timings exclude it."""
    import time

    t0 = time.perf_counter()
    try:
        from . import features

        features.warmup()
    except (ImportError, AttributeError) as exc:  # features not available: nothing to warm
        print(f"warmup skipped: {exc}")
        return 0
    print(f"warmup done in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    """Run (or join, or resume) a trade-off study and print its Pareto front and the presets it meets."""
    import pandas as pd

    from . import data, search

    cfg = config.setup(args.profile, seed=args.seed)
    if args.task == "kws":
        dataset = data.load_kws(cfg.kws_dataset, per_word=cfg.synth_per_word, seed=args.seed)
    else:
        dataset = data.make_windows(data.load_weather(cfg.forecast_dataset))
    result = search.run_search(args.task, dataset, cfg, seed=args.seed, n_trials=args.trials, storage=args.storage,
                               name=args.study)
    print(f"study {result.name!r} in {result.storage}: {len(result.trials)} finished trials "
          f"({result.new_trials} run by this worker in {result.seconds:.0f} s)")
    if not len(result.trials):
        return 1
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print("\nPareto front:")
        print(result.front[["trial", "config", *search.OBJECTIVES[args.task]]].round(4).to_string(index=False))
        print("\nConstraint presets:")
        print(search.preset_checks(search.best_configs(result.trials, args.task)).round(4).to_string(index=False))
    return 0


def _cmd_assign(args: argparse.Namespace) -> int:
    from .course import assign

    only = [s for s in (args.only or "").split(",") if s.strip()] or None
    result = assign.assign(args.notebooks, args.out, only=only)
    total = sum(q.points for q in result.questions)
    print(f"{len(result.student)} notebooks, {len(result.questions)} exercises, {total:g} points in "
          f"{result.seconds:.1f} s\n  student edition -> {result.student[0].parent}\n  autograder      -> "
          f"{result.manifest.parent}")
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    from .course import grade

    result = grade.grade(args.submissions, autograder=args.autograder, out=args.out, timeout=args.timeout,
                         jobs=args.jobs, profile=args.profile, mode=args.mode, keep=args.keep)
    return 0 if result.rows else 1


_SEARCH_EPILOG = """\
storage:
  Trials are stored in an Optuna database. By default a SQLite file reports/search/<study>.db: an
  interrupted run (Ctrl-C, a crash, a killed machine) resumes where it stopped when started again with
  the same arguments, without losing finished trials; configurations proposed again are measured once.
  To spread one study over many processes or machines, start the same command in each of them with one
  shared database URL and one study name; Optuna hands every worker different trials and each stops
  once the study holds --trials finished ones:

    labkit search --task kws --trials 200 --profile full --study kws-full \\
                  --storage postgresql://user:password@dbhost/optuna      # on every machine

  (PostgreSQL needs `pip install psycopg2-binary`; MySQL works too with its driver.) Several processes
  on one machine can share the default SQLite file; across machines use a database server.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``labkit``."""
    parser = argparse.ArgumentParser(prog="labkit", description="tinyml-labkit command line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("report", help="run the notebooks headless and build reports/")
    p.add_argument("--profile", default="quick", choices=sorted(config.PROFILES),
                   help="smoke: seconds per notebook (tests); quick: offline data, < 20 min; full: real datasets")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 01,03")
    p.add_argument("--output", default=None, help="report folder (default: reports/ or $LABKIT_REPORTS)")
    p.add_argument("--seed", type=int, default=None, help="override every notebook's SEED")
    p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("data", help="list, fetch or generate datasets")
    p.add_argument("--fetch", metavar="NAME", help="download a registered dataset into the cache")
    p.add_argument("--synthetic", type=int, metavar="N", help="generate the synthetic keyword set, N clips per word")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("info", help="versions and folders")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("search", help="multi-objective trade-off search under the course's constraints (notebook 08)",
                       description="Search model family, width, pruning, quantization mode and features for the "
                                   "configurations that meet the course's constraint presets; every objective "
                                   "(metric, zlib size, latency) is measured.",
                       epilog=_SEARCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=("kws", "forecast"), help="keyword spotting or forecasting")
    p.add_argument("--trials", type=int, default=None,
                   help="finished trials the study should hold (default: the profile's search_trials)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna database URL, e.g. sqlite:///study.db or postgresql://user:pw@host/db "
                        "(default: sqlite file under reports/search/)")
    p.add_argument("--study", default=None, metavar="NAME",
                   help="study name (default: derived from task, profile, seed, data and settings)")
    p.add_argument("--profile", default="quick", choices=sorted(config.PROFILES),
                   help="data, training recipe and default search space")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("assign", help="build the student edition and the autograder (course mode)",
                       description="From the instructor notebooks (notebooks/, with solutions and tests) build "
                                   "dist/student/*.ipynb (no solutions, no hidden tests, no outputs) and "
                                   "dist/autograder/ (otter autograder zips, solutions, course.json).")
    p.add_argument("--out", default="dist", help="output folder (default: dist/)")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 01,03")
    p.add_argument("--notebooks", default=None, help="instructor notebooks folder (default: notebooks/)")
    p.set_defaults(func=_cmd_assign)

    p = sub.add_parser("grade", help="grade student submissions with otter and write a grade book",
                       description="Grade SUBMISSIONS/<student>/<NN_name>.ipynb (or an LMS export of "
                                   "<student>_<NN_name>.ipynb files): each notebook runs headless in its own "
                                   "process and folder under a timeout. Writes grades.csv, index.html and "
                                   "<student>/<notebook>.html.")
    p.add_argument("submissions", help="folder of per-student folders (or a flat LMS export)")
    p.add_argument("--autograder", default="dist/autograder", help="what `labkit assign` built (default: dist/autograder)")
    p.add_argument("--out", default="grades", help="grade book folder (default: grades/)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per notebook before it is stopped (default 600)")
    p.add_argument("--jobs", type=int, default=1, help="notebooks graded at the same time (default 1)")
    p.add_argument("--profile", default="smoke", choices=sorted(config.PROFILES),
                   help="profile the notebooks run under while graded (default: smoke)")
    p.add_argument("--mode", default="exercises", choices=("exercises", "full"),
                   help="exercises (default): run the setup, parameters, answer and check cells only (a NameError "
                        "re-grades that notebook in full); full: run every cell as the student did")
    p.add_argument("--keep", action="store_true", help="keep the temporary run folders (debugging)")
    p.set_defaults(func=_cmd_grade)

    p = sub.add_parser("warmup", help="compile librosa's numba kernels once (run by `make setup`)")
    p.set_defaults(func=_cmd_warmup)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``labkit`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
