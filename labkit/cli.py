"""The ``labkit`` command line.

    labkit report [--profile smoke|quick|full] [--only 01,03] [--output reports/] [--seed 0] [--force] [--jobs N]
    labkit check-pages [FOLDER]
    labkit data [--list | --fetch NAME | --synthetic N]
    labkit info
    labkit warmup
    labkit search --task kws|forecast [--trials N] [--storage URL] [--study NAME] [--profile P] [--seed 0]
                  [--workers N] [--debug]
    labkit search status --storage URL --study NAME
    labkit assign [--out dist/] [--only 01,03]
    labkit grade SUBMISSIONS [--autograder dist/autograder] [--out grades/] [--timeout S] [--jobs N] [--mode M]

Errors a user can fix (a failed download, a missing dataset, a bad argument) print their message and
what to do, without a traceback; ``--debug`` (or ``LABKIT_DEBUG=1``) shows the traceback.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

from . import config, data, features, pagecheck, report, results, search, studies
from .course import assign, grade
from .data.registry import DatasetError


def _cmd_report(args: argparse.Namespace) -> int:
    only = [s for s in (args.only or "").split(",") if s.strip()] or None
    runs = report.run_report(args.profile, only=only, output=args.output, seed=args.seed, timeout=args.timeout,
                             force=args.force, progress=not args.no_progress, jobs=args.jobs)
    return 0 if runs and all(r.status == "ok" for r in runs) else 1


def _cmd_check_pages(args: argparse.Namespace) -> int:
    folder = args.folder or str(config.reports_dir())
    problems = pagecheck.check_pages(folder, screenshots=args.screenshots)
    for problem in problems:
        print(problem)
    pages = len(pagecheck.pages(folder))
    print(f"check-pages: {pages} pages in {folder}, {len(problems)} problem(s)")
    return 1 if problems else 0


def _cmd_info(_: argparse.Namespace) -> int:
    for k, v in results.versions().items():
        print(f"{k:32s} {v}")
    print(f"{'data cache':32s} {config.data_dir()}")
    print(f"{'reports':32s} {config.reports_dir()}")
    print(f"{'shared data (developers only)':32s} {config.shared_data_dir() or 'absent'}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
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
        features.warmup()
    except (ImportError, AttributeError) as exc:  # features not available: nothing to warm
        print(f"warmup skipped: {exc}")
        return 0
    print(f"warmup done in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    """``labkit search`` and ``labkit search status``: a database that cannot be used is one clear error
    (URL with the password masked, what to do), its traceback only with ``--debug``."""
    studies.log_to_stderr()
    try:
        return _search_status(args) if args.search_command == "status" else _search(args)
    except KeyboardInterrupt:
        print("\ninterrupted: finished trials are kept; the same command resumes the study", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  (database errors only; everything else is re-raised)
        message = _storage_error(exc, args.storage)
        if message is None or getattr(args, "debug", False):
            raise
        print(f"labkit search: error: {message}", file=sys.stderr)
        return 2


def _storage_error(exc: BaseException, storage: str | None) -> str | None:
    """The one-line message of a database error (also one that happens mid-run), else None."""
    if isinstance(exc, studies.StorageError):
        return str(exc)
    import optuna
    import sqlalchemy

    if isinstance(exc, (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)):
        return studies.describe_error(exc.__cause__ or exc, storage or "the default SQLite file")
    return None


def _search(args: argparse.Namespace) -> int:
    """Run (or join, or resume) a trade-off study and print its Pareto front and the presets it meets."""
    import time

    import pandas as pd

    if args.task is None:
        args.parser.error("the following arguments are required: --task")
    if args.workers < 1:
        args.parser.error("--workers must be at least 1")
    if args.storage:
        studies.check_storage(args.storage)  # a wrong URL fails now, not after loading the data
        os.environ.setdefault("LABKIT_WORKER", "1")  # a shared study: seed this worker's sampler apart
    if args.workers > 1 and args.storage and re.fullmatch(r"sqlite:/*(:memory:)?", args.storage.strip()):
        args.parser.error("an in-memory SQLite database cannot be shared by workers; use a file or a server URL")
    cfg = config.profile(args.profile)
    config.seed_everything(args.seed)
    if args.task == "kws":
        dataset = data.load_kws(cfg.kws_dataset, per_word=cfg.synth_per_word, seed=args.seed)
    else:
        dataset = data.make_windows(data.load_weather(cfg.forecast_dataset))
    t0 = time.perf_counter()
    if args.workers > 1:
        name = args.study or search.study_name(args.task, dataset, cfg, seed=args.seed)
        url = args.storage or search.default_storage(name)
        directions = ["maximize" if s == "max" else "minimize" for s in search.OBJECTIVES[args.task].values()]
        search.open_study(name, directions, storage=url, seed=args.seed)  # tables and study: created once, here
        command = [sys.executable, "-m", "labkit.cli", "search", "--task", args.task, "--study", name,
                   "--profile", args.profile, "--seed", str(args.seed), "--worker"]
        command += ["--trials", str(args.trials)] if args.trials is not None else []
        print(f"starting {args.workers} workers on study {name!r} in {studies.mask_url(url)}", flush=True)
        codes = studies.run_workers(command, args.workers, env={"LABKIT_STORAGE": url})  # URL not on the command line
        for i, code in enumerate(codes, 1):
            if code:
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                print(f"worker {i} {how}; a trial it left running is failed and run again by a worker still "
                      f"going (or by the next run)", file=sys.stderr)
        result = search.run_search(args.task, dataset, cfg, seed=args.seed, n_trials=0, storage=url, name=name,
                                   progress=False)
        result.seconds = time.perf_counter() - t0
    else:
        result = search.run_search(args.task, dataset, cfg, seed=args.seed, n_trials=args.trials,
                                   storage=args.storage, name=args.study, progress=False)
        result.new_trials = studies.trials_run_here(result.study)
    wanted = args.trials if args.trials is not None else cfg.search_trials
    if args.worker:
        print(f"worker {os.environ.get('LABKIT_WORKER', '')} done: ran {studies.trials_run_here(result.study)} trials "
              f"in {result.seconds:.0f} s; the study holds {len(result.trials)} finished trials")
        return 0 if len(result.trials) >= wanted else 1
    by = (f"{args.workers} workers in {result.seconds:.0f} s" if args.workers > 1 else
          f"{result.new_trials} run by this worker in {result.seconds:.0f} s")
    print(f"study {result.name!r} in {studies.mask_url(result.storage)}: {len(result.trials)} finished trials ({by})")
    if not len(result.trials):
        return 1
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print("\nPareto front:")
        print(result.front[["trial", "config", *search.OBJECTIVES[args.task]]].round(4).to_string(index=False))
        print("\nConstraint presets:")
        best = search.best_configs(result.trials, args.task, reference=result.reference)
        print(search.preset_checks(best).round(4).to_string(index=False))
    return 0 if len(result.trials) >= wanted else 1


def _search_status(args: argparse.Namespace) -> int:
    """``labkit search status``: trial counts, running and failed trials, best configuration per preset."""
    import pandas as pd

    if not args.storage:
        args.parser.error("the following arguments are required: --storage (or set LABKIT_STORAGE)")
    status = studies.study_status(args.storage, args.study)
    print(studies.format_status(status))
    trials = status.finished
    task = next((t for t in search.TASKS if len(trials) and set(search.OBJECTIVES[t]) <= set(trials.columns)), None)
    if task is None:
        print("\nbest configuration per constraint preset: none yet" if not len(trials) else
              "\nbest configuration per constraint preset: not a trade-off study of labkit's tasks "
              f"(its trials measure {', '.join(c for c in trials.columns if c != 'trial')})")
        return 0
    params = [k for k in search.PARAM_DEFAULTS[task] if k in trials.columns]
    trials.insert(1, "config", [search.describe({k: r[k] for k in params}, task) for r in trials.to_dict("records")])
    best = search.best_configs(trials, task, reference=status.reference)  # a forecaster must beat persistence
    columns = [c for c in ("preset", "status", "trial", "config", *search.OBJECTIVES[task], "beats_persistence")
               if c in best.columns]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(f"\nbest configuration per constraint preset so far ({task}):")
        print(best[columns].round(4).to_string(index=False))
    return 0


def _cmd_assign(args: argparse.Namespace) -> int:
    only = [s for s in (args.only or "").split(",") if s.strip()] or None
    result = assign.assign(args.notebooks, args.out, only=only)
    total = sum(q.points for q in result.questions)
    print(f"{len(result.student)} notebooks, {len(result.questions)} exercises, {total:g} points in "
          f"{result.seconds:.1f} s\n  student edition -> {result.student[0].parent}\n  autograder      -> "
          f"{result.manifest.parent}")
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    result = grade.grade(args.submissions, autograder=args.autograder, out=args.out, timeout=args.timeout,
                         jobs=args.jobs, profile=args.profile, mode=args.mode, keep=args.keep)
    return 0 if result.rows else 1


_SEARCH_EPILOG = """\
storage:
  Trials are stored in an Optuna database. By default a SQLite file reports/search/<study>.db: an
  interrupted run (Ctrl-C, a crash, a killed machine) resumes where it stopped when started again with
  the same arguments, without losing finished trials; configurations proposed again are measured once.

workers:
  --workers N starts N worker processes on this machine, all on one study (SQLite is fine for that).
  Workers on one machine share its cores, and latency is one of the measured objectives: parallel
  workers on the same cores make the latencies noisier. For a real speed-up, spread them over machines.
  To spread a study over many machines, use a PostgreSQL server and start the same command, with one
  shared URL and one study name, on every machine:

    pip install "tinyml-labkit[postgres]"          # the PostgreSQL driver (psycopg 3), once per machine
    export LABKIT_STORAGE=postgresql://user:password@dbhost:5432/optuna   # keeps the password off `ps`
    labkit search --task kws --trials 200 --profile full --study kws-full --workers 2   # on every machine
    labkit search status --study kws-full          # finished / running / failed, best per preset so far

  Optuna hands every worker different trials. Each running trial sends a heartbeat every 10 s; the
  trial of a worker that died (killed, machine lost: no heartbeat for 30 s) is marked failed and
  retried by another worker, and every worker stops once the study holds --trials finished trials.
  No server at hand? `pip install pgserver` starts a real PostgreSQL 16 from Python without system
  packages (laptop, Colab; it listens on a local socket, so for workers on this machine) and prints its URL:
    python -c "import pgserver; print(pgserver.get_server('pgdata', cleanup_mode=None).get_uri())"
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``labkit``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error (also: LABKIT_DEBUG=1)")
    parser = argparse.ArgumentParser(prog="labkit", description="tinyml-labkit command line", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, **kw):
        return sub.add_parser(name, parents=[common], **kw)

    p = add("report", help="run the notebooks headless and build reports/",
            description="Run the numbered notebooks headless (papermill) and build reports/: index.html (a "
                        "dashboard), report.html (one self-contained file for graders), html/, tables/, figures/, "
                        "logs/. Only notebooks whose inputs changed since their last successful run are run "
                        "again (reports/manifest.json); --force runs all.")
    p.add_argument("--profile", default="quick", choices=sorted(config.PROFILES),
                   help="smoke: seconds per notebook (tests); quick: offline data, < 20 min; full: real datasets")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 01,03")
    p.add_argument("--output", default=None, help="report folder (default: reports/ or $LABKIT_REPORTS)")
    p.add_argument("--seed", type=int, default=None, help="override every notebook's SEED")
    p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    p.add_argument("--force", action="store_true", help="run every selected notebook, even if nothing changed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (only the summary line)")
    p.add_argument("--jobs", type=int, default=None,
                   help="notebooks run at once, each when the notebooks it reads from are done (default: 2 on a "
                        "machine with 2+ cores, else 1; --jobs 1 times latencies on an otherwise quiet machine)")
    p.set_defaults(func=_cmd_report)

    p = add("check-pages", help="open every HTML page of a report in Chromium and list what is broken",
            description="Open every .html page under FOLDER in headless Chromium (Playwright) with the network "
                        "blocked; report console errors, page errors, network requests, images that do not "
                        "load and local links that do not resolve. Needs `playwright` and a Chromium "
                        "(e.g. apt-get install chromium).")
    p.add_argument("folder", nargs="?", default=None, help="report folder (default: reports/)")
    p.add_argument("--screenshots", default=None, metavar="DIR", help="save a screenshot of each page in DIR")
    p.set_defaults(func=_cmd_check_pages)

    p = add("data", help="list, fetch or generate datasets")
    p.add_argument("--fetch", metavar="NAME", help="download a registered dataset into the cache")
    p.add_argument("--synthetic", type=int, metavar="N", help="generate the synthetic keyword set, N clips per word")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_data)

    p = add("info", help="versions and folders")
    p.set_defaults(func=_cmd_info)

    p = add("search", help="multi-objective trade-off search under the course's constraints (notebook 08)",
                       description="Search model family, width, pruning, quantization mode and features for the "
                                   "configurations that meet the course's constraint presets; every objective "
                                   "(metric, zlib size, latency) is measured.",
                       epilog=_SEARCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=("kws", "forecast"), help="keyword spotting or forecasting (required)")
    p.add_argument("--trials", type=int, default=None,
                   help="finished trials the study should hold (default: the profile's search_trials)")
    p.add_argument("--storage", default=os.environ.get("LABKIT_STORAGE") or None, metavar="URL",
                   help="Optuna database URL, e.g. sqlite:///study.db or postgresql://user:pw@host:5432/db "
                        "(default: $LABKIT_STORAGE, else a SQLite file under reports/search/)")
    p.add_argument("--study", default=None, metavar="NAME",
                   help="study name (default: derived from task, profile, seed, data and settings)")
    p.add_argument("--profile", default="quick", choices=sorted(config.PROFILES),
                   help="data, training recipe and default search space")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes to start on this machine, all on one study (default: 1)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one of the --workers processes
    p.set_defaults(func=_cmd_search, parser=p, search_command=None)
    status = p.add_subparsers(dest="search_command", metavar="[status]")
    q = status.add_parser("status", help="finished / running / failed trials of a study, best configuration per "
                                         "constraint preset so far",
                          description="Finished, running and failed trials of a study (which worker runs or "
                                      "ran them, which trial retried a failed one), and the best configuration "
                                      "per constraint preset so far.")
    q.add_argument("--storage", default=os.environ.get("LABKIT_STORAGE") or None, metavar="URL",
                   help="the study's database URL (default: $LABKIT_STORAGE)")
    q.add_argument("--study", required=True, metavar="NAME", help="study name")
    q.add_argument("--debug", action="store_true", help="show the traceback of a database error")
    q.set_defaults(parser=q)

    p = add("assign", help="build the student edition and the autograder (course mode)",
                       description="From the instructor notebooks (notebooks/, with solutions and tests) build "
                                   "dist/student/*.ipynb (no solutions, no hidden tests, no outputs) and "
                                   "dist/autograder/ (otter autograder zips, solutions, course.json).")
    p.add_argument("--out", default="dist", help="output folder (default: dist/)")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 01,03")
    p.add_argument("--notebooks", default=None, help="instructor notebooks folder (default: notebooks/)")
    p.set_defaults(func=_cmd_assign)

    p = add("grade", help="grade student submissions with otter and write a grade book",
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

    p = add("warmup", help="compile librosa's numba kernels once (run by `make setup`)")
    p.set_defaults(func=_cmd_warmup)
    return parser


def _user_error(exc: BaseException) -> str | None:
    """The message of an error the user can act on (``None`` for a bug)."""
    if isinstance(exc, (DatasetError, FileNotFoundError, NotADirectoryError, PermissionError, ValueError)):
        return str(exc)
    if isinstance(exc, KeyError):  # unknown dataset / table names: KeyError(message)
        return str(exc.args[0]) if exc.args else repr(exc)
    if isinstance(exc, ImportError):
        return f"{exc}. Install the pinned environment with `make setup` (or `pip install -r requirements.txt`)."
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``labkit`` console script."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("LABKIT_DEBUG", "") not in ("", "0")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("\nlabkit: interrupted (finished notebooks stay cached; run the command again to resume)",
              file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        message = _user_error(exc)
        if message is None:
            print(f"labkit: unexpected error: {type(exc).__name__}: {exc}\n"
                  f"Run it again with --debug for the traceback, and please report it.", file=sys.stderr)
        else:
            print(f"labkit {args.command}: error: {message}\n(--debug shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
