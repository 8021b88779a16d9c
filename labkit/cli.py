"""The ``labkit`` command line.

    labkit report [--profile smoke|quick|full] [--only 01,03] [--output reports/] [--seed 0] [--force]
    labkit check-pages [FOLDER]
    labkit data [--list | --fetch NAME | --synthetic N]
    labkit info
    labkit warmup
    labkit search --task kws|forecast [--trials N] [--storage URL] [--study NAME] [--profile P] [--seed 0]

Errors a user can fix (a failed download, a missing dataset, a bad argument) print their message and
what to do, without a traceback; ``--debug`` (or ``LABKIT_DEBUG=1``) shows the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import config


def _cmd_report(args: argparse.Namespace) -> int:
    from . import report

    only = [s for s in (args.only or "").split(",") if s.strip()] or None
    runs = report.run_report(args.profile, only=only, output=args.output, seed=args.seed, timeout=args.timeout,
                             force=args.force, progress=not args.no_progress)
    return 0 if runs and all(r.status == "ok" for r in runs) else 1


def _cmd_check_pages(args: argparse.Namespace) -> int:
    from . import pagecheck

    folder = args.folder or str(config.reports_dir())
    problems = pagecheck.check_pages(folder, screenshots=args.screenshots)
    for problem in problems:
        print(problem)
    pages = len(pagecheck.pages(folder))
    print(f"check-pages: {pages} pages in {folder}, {len(problems)} problem(s)")
    return 1 if problems else 0


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

    p = add("warmup", help="compile librosa's numba kernels once (run by `make setup`)")
    p.set_defaults(func=_cmd_warmup)
    return parser


def _user_error(exc: BaseException) -> str | None:
    """The message of an error the user can act on (``None`` for a bug)."""
    from .data.registry import DatasetError

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
