"""Run the numbered notebooks headless and build the report (``labkit report``).

For each ``notebooks/NN_*.ipynb`` whose inputs changed since its last successful run (see
:mod:`labkit.manifest`; ``force=True`` runs all): papermill executes it with the profile's parameters
into ``reports/executed/``, :mod:`labkit.report_pages` renders ``reports/html/``, and the JSON rows
each notebook recorded become ``reports/tables/*.csv`` and ``*.md``. :mod:`labkit.report_index` then
writes ``reports/index.html`` (the dashboard) and ``reports/report.html`` (one file for graders).

The terminal shows one progress bar and one summary line. Each kernel talks over a local socket
(ipc, not TCP) and its own output (TensorFlow's C++ start-up lines, ipykernel's messages) goes with
papermill's log to ``reports/logs/NN_name.log``. A failing notebook is still rendered, with its error
visible, and marked failed; the others run, and a failure is never cached.

With ``jobs=2`` (the default on a machine with two or more cores) two notebooks run side by side, each in
its own process, when :data:`NEEDS` allows it: a notebook starts once the notebooks whose results it reads
are done, and the notebooks whose cached models it uses unless :data:`NEEDS` lets it start beside them (07
beside 03: a cache entry is made once, under a lock, by whichever notebook asks first). Every kernel runs
TensorFlow on one intra-op thread (``TF_NUM_INTRAOP_THREADS=1``, whatever ``jobs`` is), so the numbers do not
depend on how many notebooks ran at once.
"""
from __future__ import annotations

import ast
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import pandas as pd

from . import config, manifest, report_index, report_pages, results
from .report_pages import render_html  # noqa: F401  (public: renders one executed notebook)

KERNEL_NAME = "python3"
_SUBFOLDERS = ("executed", "html", "figures", "tables", "results", "logs")
KERNEL_ENV = {"TF_NUM_INTRAOP_THREADS": "1"}  # every kernel, any jobs: the numbers must not depend on them

# What a course notebook waits for when notebooks run side by side (``jobs > 1``): the notebooks whose
# recorded results it gathers or whose cached models and datasets it would otherwise make itself (its read
# trace, logs/NN.reads, lists them; tests/test_report.py checks the results part against it). Caches are made
# under a lock (the synthetic set, every model), so waiting for one is about time, not correctness: a notebook
# started early makes what it needs once, or waits for the process making it. A notebook that is not listed
# waits for every selected notebook before it, as in a one-at-a-time run.
NEEDS: dict[str, tuple[str, ...]] = {
    "00_setup_check": (),
    "01_preprocessing": (),  # the synthetic keyword set: made once under a file lock, by 01 or 03, whichever asks first
    "02_estimation": (),
    "03_training_kws": (),
    "04_training_forecasting": (),
    "05_conversion": ("03_training_kws", "04_training_forecasting"),
    "06_quantization": ("03_training_kws", "04_training_forecasting"),
    # 07 needs one model of 03's (the DS-CNN on MFCC): it starts beside 03 (the model is made once, under a lock,
    # by whichever asks first), so the longest notebook does not wait ~3 minutes for 03's other models
    "07_pruning": ("04_training_forecasting",),
    "08_tradeoffs": ("03_training_kws", "04_training_forecasting"),  # beside 07: 09 gathers 07's rows
    # 09 gathers the results of 03-07 and 08's search, not 00-02's: those can run beside it
    "09_claims": ("03_training_kws", "04_training_forecasting", "05_conversion", "06_quantization", "07_pruning",
                  "08_tradeoffs"),
}
# Seconds a notebook took in a quick report on 2 cores (fresh clone, 2026-12-02): before a notebook's first
# run (no manifest entry yet) they stand in for its last run time when ordering the work.
TYPICAL_SECONDS: dict[str, float] = {
    "00_setup_check": 19, "01_preprocessing": 43, "02_estimation": 31, "03_training_kws": 196,
    "04_training_forecasting": 34, "05_conversion": 54, "06_quantization": 149, "07_pruning": 352,
    "08_tradeoffs": 158, "09_claims": 63,
}


@dataclasses.dataclass
class NotebookRun:
    """Outcome of one notebook in a report run (run now, or cached from an earlier run)."""

    name: str
    status: str  # "ok" | "failed"
    seconds: float
    executed: Path
    html: Path | None
    error: str = ""
    tables: list[str] = dataclasses.field(default_factory=list)
    key: dict = dataclasses.field(default_factory=dict)
    cached: bool = False
    reason: str = ""       # why it ran ("notebook changed", "input changed: data/models/...", "--force" ...)
    figures: list[str] = dataclasses.field(default_factory=list)
    title: str = ""
    error_cell: str = ""   # id of the failing cell (anchor in its HTML page)
    ran_at: str = ""
    outdated: str = ""     # not selected this time (--only) although its inputs changed: why
    reads: dict = dataclasses.field(default_factory=dict, repr=False)


def notebooks_dir() -> Path:
    """The folder holding the numbered notebooks."""
    return config.repo_root() / "notebooks"


def discover(only: Iterable[str] | None = None, directory: Path | None = None) -> list[Path]:
    """Numbered notebooks ``NN_*.ipynb`` in order, optionally only those whose number or stem is listed."""
    directory = Path(directory or notebooks_dir())
    found = sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {directory}")
    if not only:
        return found
    wanted = {w.strip() for w in only if w.strip()}
    picked = [p for p in found if p.stem[:2] in wanted or p.stem in wanted]
    missing = wanted - {p.stem[:2] for p in picked} - {p.stem for p in picked}
    if missing:
        raise ValueError(
            f"no notebook matches {sorted(missing)}; available: {', '.join(p.stem for p in found)}"
        )
    return picked


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The literals of a notebook's ``parameters`` cell (``{"PROFILE": "quick", "SEED": 0, ...}``)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            out = {}
            for node in ast.parse("".join(cell.get("source", []))).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    with contextlib.suppress(ValueError, SyntaxError):
                        out[node.targets[0].id] = ast.literal_eval(node.value)
            return out
    return {}


# ----------------------------------------------------------------------------- running one notebook
def _kernel_manager_class(log_path: Path) -> type:
    """A kernel manager whose kernel listens on a local socket (ipc: no "running over TCP without
    encryption" warning, nothing reachable from the network) and writes its own stdout/stderr (absl's
    C++ start-up lines, ipykernel's messages) to the notebook's log instead of the terminal."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    class ReportKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc" if os.name == "posix" else "tcp",
                                    config=True)

        @default("ip")
        def _ip_default(self) -> str:  # ipc: a socket path of this process, not ./kernel-ipc shared by two kernels
            if self.transport != "ipc":
                return "127.0.0.1"
            return os.path.join(tempfile.gettempdir(), f"labkit-kernel-{os.getpid()}-{log_path.stem}")

        async def start_kernel(self, **kw: Any) -> None:
            with open(log_path, "ab") as fh:
                kw.setdefault("stdout", fh)
                kw.setdefault("stderr", fh)
                await super().start_kernel(**kw)

    return ReportKernelManager


@contextlib.contextmanager
def _logs_to(log_path: Path) -> Iterator[None]:
    """Send papermill's and nbclient's log records to ``log_path`` (not the terminal) for a while."""
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in ("papermill", "traitlets"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate, logger.level))
        logger.handlers, logger.propagate = [handler], False
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, handlers, propagate, level in saved:
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
        handler.close()


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    backup = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _mtimes(folder: Path, pattern: str) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob(pattern)}


def run_notebook(path: Path, output: Path, *, profile: str, seed: int | None = None,
                 parameters: dict | None = None, timeout: int | None = None, reason: str = "") -> NotebookRun:
    """Execute one notebook with papermill and render it. Never raises for a failing notebook.

    Its log (papermill, kernel stdout/stderr) goes to ``logs/<name>.log`` and the files its kernel read
    to ``logs/<name>.reads``. Used by :func:`run_report`."""
    import nbformat
    import papermill as pm

    output = Path(output).resolve()
    for sub in _SUBFOLDERS:
        (output / sub).mkdir(parents=True, exist_ok=True)
    executed = output / "executed" / path.name
    log_path, reads_path = output / "logs" / f"{path.stem}.log", output / "logs" / f"{path.stem}.reads"
    page = output / "html" / f"{path.stem}.html"
    for stale in (reads_path, executed, page, *_recorded_by(output, path.stem)):
        stale.unlink(missing_ok=True)  # nothing from an earlier run may pass for this one's (results too)
    params = {**_params(profile, seed), **(parameters or {})}
    log_path.write_text(f"labkit report: {path.name}, parameters {params}, started {time.strftime('%Y-%m-%d %H:%M:%S')}"
                        f" ({reason or 'requested'})\n", encoding="utf-8")
    before_results, before_figs = _mtimes(output / "results", "*.json"), _mtimes(output / "figures", "*.png")
    t0 = time.perf_counter()
    error = ""
    # the kernel spec runs "python": make it this interpreter (the venv's), not whatever is first on PATH
    path_var = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    threads = {k: os.environ.get(k, v) for k, v in KERNEL_ENV.items()}
    with _environ(LABKIT_REPORTS=str(output), LABKIT_NOTEBOOK=path.stem, LABKIT_PROFILE=profile, PATH=path_var,
                  **threads), _logs_to(log_path):
        try:
            pm.execute_notebook(
                str(path), str(executed), parameters=params, kernel_name=KERNEL_NAME, cwd=str(path.parent),
                progress_bar=False, log_output=False, execution_timeout=timeout,
                kernel_manager_class=_kernel_manager_class(log_path),
                extra_arguments=manifest.trace_arguments(reads_path, output, path.parent),
            )
            status = "ok"
        except Exception as exc:  # papermill.PapermillExecutionError and kernel deaths
            status = "failed"
            lines = str(exc).strip().splitlines()
            error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
    seconds = time.perf_counter() - t0
    aliases = report_pages.path_aliases(output)
    run = NotebookRun(path.stem, status, seconds, executed, None, reason=reason,
                      ran_at=time.strftime("%Y-%m-%d %H:%M"))
    if executed.exists():
        report_pages.sanitize_executed(executed, aliases)
        nb = nbformat.read(str(executed), as_version=4)
        run.title = report_pages.notebook_title(nb, path.stem)
        excerpt, run.error_cell = report_pages.first_error(nb, aliases)
        error = excerpt or error
        try:
            with _logs_to(log_path):
                run.html = render_html(executed, page, output=output)
        except Exception as exc:  # pragma: no cover - nbconvert failure is reported, not fatal
            error = (error + "\n" if error else "") + f"HTML rendering failed: {exc}"
    run.error = report_pages.redact(error, aliases)
    for p in sorted((output / "results").glob("*.json")):
        if before_results.get(p.name) == p.stat().st_mtime_ns:
            continue
        doc = json.loads(p.read_text())
        if doc.get("notebook") == path.stem:
            run.tables.append(doc["table"])
            run.key.update(doc.get("key", {}))
    run.figures = sorted(n for n, t in _mtimes(output / "figures", "*.png").items() if before_figs.get(n) != t)
    run.reads = manifest.fingerprint_reads(manifest.read_trace(reads_path))
    results.atomic_write_text(log_path, report_pages.redact(log_path.read_text(encoding="utf-8", errors="replace"),
                                                             aliases))
    return run


# ----------------------------------------------------------------------------- tables
def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _recorded_by(output: Path, notebook: str) -> list[Path]:
    """The result files an earlier run of ``notebook`` recorded under ``output/results``."""
    found = []
    for p in sorted((Path(output) / "results").glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(p.read_text()).get("notebook") == notebook:
                found.append(p)
    return found


def current_results(output: Path, runs: Sequence[NotebookRun], profile: str) -> list[dict[str, Any]]:
    """The recorded results a report may publish: recorded under ``profile`` by a notebook whose last
    run succeeded. A failed notebook's tables (and another profile's) never pass for current ones."""
    ok = {r.name for r in runs if r.status == "ok"}
    return [d for d in results.load_all(Path(output) / "results")
            if d.get("notebook") in ok and d.get("profile") == profile]


def write_tables(output: Path, docs: Sequence[Mapping[str, Any]] | None = None) -> list[Path]:
    """Turn recorded results (``docs``, by default every ``results/*.json``) into ``tables/<table>.csv``
    and ``.md``; tables of earlier runs that are not in ``docs`` are removed."""
    written = []
    tables_dir = Path(output) / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    docs = results.load_all(Path(output) / "results") if docs is None else docs
    for doc in docs:
        frame = results.to_frame(doc)
        name = doc["table"]
        written.append(results.atomic_write_text(tables_dir / f"{name}.csv", frame.to_csv(index=False)))
        md = _markdown(frame)
        title = f"{doc['headline']['title']}\n\n" if doc.get("headline") else ""
        header = f"### {name}\n\n{title}Notebook `{doc.get('notebook', '')}`, profile `{doc.get('profile', '')}`, " \
                 f"recorded {doc.get('recorded_at', '')}.\n\n"
        written.append(results.atomic_write_text(tables_dir / f"{name}.md", header + md + "\n"))
    for old in tables_dir.glob("*.*"):
        if old.suffix in (".csv", ".md") and old not in written:
            old.unlink()
    return written


def _markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no dependency on the optional ``tabulate``)."""
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the whole report
def _render_code() -> str:
    import nbconvert

    return manifest.labkit_digest(report_side=True) + "/nbconvert-" + nbconvert.__version__


def _entry(run: NotebookRun, inputs: dict, output: Path, render_code: str) -> dict:
    """What the manifest keeps of a run. A failed run is kept too (shown on the index) but its status
    makes :func:`manifest.stale_reason` run it again next time: a failure is never cached as good."""
    outputs = [f"executed/{run.executed.name}", *(f"results/{t}.json" for t in run.tables),
               *(f"figures/{f}" for f in run.figures)]
    entry = {"status": run.status, "inputs": inputs, "tables": run.tables, "key": run.key, "figures": run.figures,
             "title": run.title, "seconds": round(run.seconds, 2), "ran_at": run.ran_at}
    if run.executed.exists():
        entry["render"] = {"executed": manifest.file_sha256(run.executed), "code": render_code}
    if run.status != "ok":
        return {**entry, "error": run.error, "error_cell": run.error_cell}
    return {**entry, "reads": run.reads, "outputs": manifest.output_digests(output, outputs)}


def _recorded_run(path: Path, output: Path, entry: dict, render_code: str, *, outdated: str = "") -> NotebookRun:
    """The run recorded in ``entry`` (not run now), its page re-rendered only if the rendering code changed."""
    executed = output / "executed" / path.name
    run = NotebookRun(path.stem, entry.get("status", "ok"), float(entry.get("seconds", 0.0)), executed, None,
                      error=entry.get("error", ""), tables=list(entry.get("tables", [])), key=dict(entry.get("key", {})),
                      cached=True, figures=list(entry.get("figures", [])), title=entry.get("title", ""),
                      error_cell=entry.get("error_cell", ""), ran_at=entry.get("ran_at", ""), outdated=outdated)
    page = output / "html" / f"{path.stem}.html"
    if executed.exists():
        wanted = {"executed": manifest.file_sha256(executed), "code": render_code}
        if not page.exists() or entry.get("render") != wanted:
            log_path = output / "logs" / f"{path.stem}.log"
            with _logs_to(log_path) if log_path.exists() else contextlib.nullcontext():
                render_html(executed, page, output=output)
            entry["render"] = wanted
    run.html = page if page.exists() else None
    return run


@contextlib.contextmanager
def _progress(total: int, profile: str, enabled: bool) -> Iterator[Any]:
    """One progress bar for the whole report; in a terminal it ticks every second (elapsed time)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"report ({profile})", unit="notebook", disable=not enabled, dynamic_ncols=True)
    stop = threading.Event()
    if enabled and sys.stderr.isatty():
        threading.Thread(target=lambda: [bar.refresh() for _ in iter(lambda: stop.wait(1.0), True)],
                         daemon=True).start()
    try:
        yield bar
    finally:
        stop.set()
        bar.close()


def _params(profile: str, seed: int | None) -> dict[str, Any]:
    return {"PROFILE": profile, **({"SEED": seed} if seed is not None else {})}


def _with_earlier_runs(runs: list[NotebookRun], every: list[Path], entries: dict, output: Path, render_code: str,
                       *, params: dict, shared: dict) -> list[NotebookRun]:
    """The runs of this report plus, for the notebooks not selected (``--only``), their last recorded
    run, marked outdated (and why) when their inputs changed since: the index always shows the course."""
    done = {r.name for r in runs}
    shown = list(runs)
    for path in every:
        entry = entries.get(path.stem)
        if path.stem in done or entry is None:
            continue
        stale = manifest.stale_reason(entry, manifest.static_inputs(path, params, **shared), output)
        ok = entry.get("status") == "ok"
        shown.append(_recorded_run(path, output, entry, render_code, outdated=(stale or "") if ok else ""))
    return sorted(shown, key=lambda r: r.name)


def _seed_text(paths: list[Path], seed: int | None) -> str:
    if seed is not None:
        return f"{seed} (--seed)"
    seeds = sorted({str(notebook_parameters(p).get("SEED", "?")) for p in paths})
    return f"{', '.join(seeds)} (the notebooks' default)"


def _summary(runs: list[NotebookRun], profile: str, seconds: float, output: Path) -> str:
    ok = [r for r in runs if r.status == "ok"]
    failed = [r for r in runs if r.status != "ok"]
    cached = sum(r.cached for r in runs)
    text = (f"report ({profile}): {len(ok)}/{len(runs)} ok ({len(runs) - cached} run, {cached} cached) "
            f"in {report_index.duration(seconds)}")
    if failed:
        logs = ", ".join(f"{r.name} (log: {report_index.relative(output / 'logs' / f'{r.name}.log')})" for r in failed)
        text += f"; FAILED: {logs}"
    return text + f" -> {report_index.relative(output / 'index.html')}, {report_index.relative(output / 'report.html')}"


def default_jobs() -> int:
    """How many notebooks ``labkit report`` runs at once by default: 2 on a machine with two or more cores
    (a kernel keeps about one core busy: TensorFlow trains these small models on one thread about as fast
    as on two), else 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return 2 if cores >= 2 else 1


def prerequisites(paths: Sequence[Path], jobs: int = 2) -> dict[str, set[str]]:
    """For each selected notebook, the selected notebooks that must be done before it starts: :data:`NEEDS`
    (an unlisted notebook: every notebook before it); with ``jobs=1``, every notebook before it."""
    names = [p.stem for p in paths]
    out = {}
    for i, name in enumerate(names):
        wanted = NEEDS.get(name) if jobs > 1 else None
        out[name] = set(names[:i]) if wanted is None else {n for n in wanted if n in names}
    return out


def _chains(needs: Mapping[str, set[str]], entries: Mapping[str, Any]) -> dict[str, float]:
    """Each notebook's longest chain of work to the end of the report: its last recorded run time (else
    :data:`TYPICAL_SECONDS`, else 60 s) plus the longest chain among the notebooks that wait for it."""
    est = {n: float((entries.get(n) or {}).get("seconds") or TYPICAL_SECONDS.get(n, 60.0)) for n in needs}
    memo: dict[str, float] = {}

    def chain(n: str) -> float:
        if n not in memo:
            memo[n] = est[n] + max((chain(m) for m in needs if n in needs[m]), default=0.0)
        return memo[n]

    return {n: chain(n) for n in needs}


def _crashed(path: Path, output: Path, exc: BaseException, reason: str) -> NotebookRun:
    """The run of a notebook whose worker process died (the notebook's own errors come back as a failed run)."""
    return NotebookRun(path.stem, "failed", 0.0, output / "executed" / path.name, None, reason=reason,
                       error=f"report worker failed: {type(exc).__name__}: {exc}", ran_at=time.strftime("%Y-%m-%d %H:%M"))


def _run_all(paths: list[Path], output: Path, entries: dict, bar: Any, *, profile: str, seed: int | None,
             timeout: int | None, force: bool, jobs: int, shared: dict, render_code: str) -> list[NotebookRun]:
    """Run (or take from the manifest) every notebook of ``paths``, up to ``jobs`` at once in worker
    processes, each started when its :func:`prerequisites` are done; the manifest is saved after each."""
    needs = prerequisites(paths, jobs)
    by_name = {p.stem: p for p in paths}
    chains = _chains(needs, entries)
    # one at a time: notebook order; side by side: the longest chain first, so the slow path starts early
    pending = list(needs) if jobs <= 1 else sorted(needs, key=lambda n: (-chains[n], n))
    done: dict[str, NotebookRun] = {}
    running: dict[concurrent.futures.Future, tuple[str, dict, str]] = {}
    pool = None

    def finish(run: NotebookRun, inputs: dict | None) -> None:
        if inputs is not None:
            entries[run.name] = _entry(run, inputs, output, render_code)
        manifest.save(output, entries)
        done[run.name] = run
        bar.update()

    try:
        while pending or running:
            for name in [n for n in pending if needs[n] <= done.keys()]:
                if jobs > 1 and len(running) >= jobs:
                    break
                pending.remove(name)
                path, entry = by_name[name], entries.get(name)
                inputs = manifest.static_inputs(path, _params(profile, seed), **shared)
                reason = "--force" if force else manifest.stale_reason(entry, inputs, output)
                if reason is None:
                    bar.set_postfix_str(f"{name}: cached")
                    finish(_recorded_run(path, output, entry, render_code), None)
                elif jobs <= 1:
                    bar.set_postfix_str(f"{name}: running")
                    finish(run_notebook(path, output, profile=profile, seed=seed, timeout=timeout, reason=reason),
                           inputs)
                else:
                    if pool is None:
                        import multiprocessing

                        # a fresh worker process per notebook (spawned: no TensorFlow state inherited)
                        pool = concurrent.futures.ProcessPoolExecutor(
                            jobs, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1)
                    future = pool.submit(run_notebook, path, output, profile=profile, seed=seed, timeout=timeout,
                                         reason=reason)
                    running[future] = (name, inputs, reason)
            if running:
                bar.set_postfix_str(", ".join(sorted(n for n, _, _ in running.values())) + ": running")
                finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    name, inputs, reason = running.pop(future)
                    try:
                        run = future.result()
                    except Exception as exc:  # the worker process died (out of memory, killed)
                        run = _crashed(by_name[name], output, exc, reason)
                    finish(run, inputs)
            elif pending and not any(needs[n] <= done.keys() for n in pending):
                raise RuntimeError(f"report.NEEDS has a cycle among {pending}")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return [done[p.stem] for p in paths]


def run_report(
    profile: str = "quick",
    *,
    only: Iterable[str] | None = None,
    output: str | os.PathLike | None = None,
    seed: int | None = None,
    timeout: int | None = None,
    notebooks: Path | None = None,
    echo: Callable[[str], None] = print,
    force: bool = False,
    progress: bool = True,
    jobs: int | None = None,
) -> list[NotebookRun]:
    """Run the notebooks whose inputs changed (all with ``force``), up to ``jobs`` at once (default
    :func:`default_jobs`; see :data:`NEEDS`), render their pages, gather the tables, write index.html and
    report.html; ``echo`` gets the one summary line. Used by ``labkit report``."""
    config.profile(profile)  # validate the name early
    jobs = default_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    output = Path(output or config.reports_dir()).resolve()
    paths = discover(only, notebooks)
    for sub in _SUBFOLDERS:
        (output / sub).mkdir(parents=True, exist_ok=True)
    entries = manifest.load(output)
    shared = {"labkit": manifest.labkit_digest(), "packages": manifest.packages_digest()}
    render_code = _render_code()
    t0 = time.perf_counter()
    with _environ(LABKIT_REPORTS=str(output), LABKIT_REPORT_JOBS=str(jobs)), \
            _progress(len(paths), profile, progress) as bar:
        runs = _run_all(paths, output, entries, bar, profile=profile, seed=seed, timeout=timeout, force=force,
                        jobs=jobs, shared=shared, render_code=render_code)
        bar.set_postfix_str("writing index")
        shown = _with_earlier_runs(runs, discover(None, notebooks), entries, output, render_code,
                                   params=_params(profile, seed), shared=shared)
        manifest.save(output, entries)
        docs = current_results(output, shown, profile)
        write_tables(output, docs)
        facts = report_index.banner_facts(profile=profile, seed=_seed_text(paths, seed), runs=shown, docs=docs,
                                          wall_seconds=time.perf_counter() - t0, jobs=jobs)
        report_index.write_single(output, shown, facts, docs=docs)
        report_index.write_index(output, shown, facts, docs=docs)
    echo(_summary(runs, profile, time.perf_counter() - t0, output))
    return runs
