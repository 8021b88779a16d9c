"""Run the numbered notebooks headless and build the report (``labkit report``).

For each ``notebooks/NN_*.ipynb``: papermill executes it with the profile's parameters into
``reports/executed/``, nbconvert renders ``reports/html/`` (images embedded, injected-parameter
cells hidden), and the JSON rows each notebook recorded become ``reports/tables/*.csv`` and ``*.md``.
``reports/index.html`` links everything with each notebook's status, run time and key results.
A failing notebook is still rendered, with its error visible, and marked failed; the others run.
"""
from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from . import __version__, config, results

KERNEL_NAME = "python3"

# TensorFlow / absl C++ start-up lines that TF_CPP_MIN_LOG_LEVEL cannot silence.
_TF_NOISE = re.compile(
    r"^(?:[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\].*"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions:.*in other operations, rebuild TensorFlow.*"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.)$"
)


@dataclasses.dataclass
class NotebookRun:
    """Outcome of one notebook in a report run."""

    name: str
    status: str  # "ok" | "failed"
    seconds: float
    executed: Path
    html: Path | None
    error: str = ""
    tables: list[str] = dataclasses.field(default_factory=list)
    key: dict = dataclasses.field(default_factory=dict)


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


def _strip_tf_noise(nb) -> None:
    """Remove TensorFlow's C++ start-up log lines from stderr outputs (they say nothing to a student)."""
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                lines = [ln for ln in out.get("text", "").splitlines(keepends=True)
                         if not _TF_NOISE.match(ln.rstrip("\n"))]
                if not "".join(lines).strip():
                    continue
                out["text"] = "".join(lines)
            kept.append(out)
        cell["outputs"] = kept


def render_html(executed: Path, out_html: Path) -> Path:
    """Render an executed notebook to standalone HTML (images embedded; injected-parameter and
    ``remove-cell`` cells hidden, ``remove-input`` cells show only their output)."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    nb = nbformat.read(str(executed), as_version=4)
    _strip_tf_noise(nb)
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_cell_tags = {"injected-parameters", "remove-cell"}
    c.TagRemovePreprocessor.remove_input_tags = {"remove-input"}
    exporter = HTMLExporter(config=c)
    exporter.register_preprocessor(TagRemovePreprocessor(config=c), enabled=True)
    body, _ = exporter.from_notebook_node(nb)
    return results.atomic_write_text(out_html, body)


def _first_error(executed: Path) -> str:
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
    except Exception as exc:  # pragma: no cover - unreadable output
        return f"could not read executed notebook: {exc}"
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename')}: {out.get('evalue')}"
    return ""


def run_notebook(path: Path, output: Path, *, profile: str, seed: int | None = None,
                 parameters: dict | None = None, timeout: int | None = None) -> NotebookRun:
    """Execute one notebook with papermill and render it. Never raises for a failing notebook."""
    import papermill as pm

    output = Path(output)
    executed = output / "executed" / path.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    params = {"PROFILE": profile}
    if seed is not None:
        params["SEED"] = seed
    params.update(parameters or {})
    env_backup = {k: os.environ.get(k) for k in ("LABKIT_REPORTS", "LABKIT_NOTEBOOK", "LABKIT_PROFILE", "PATH")}
    os.environ["LABKIT_REPORTS"] = str(output.resolve())
    os.environ["LABKIT_NOTEBOOK"] = path.stem
    os.environ["LABKIT_PROFILE"] = profile
    # the kernel spec runs "python": make it this interpreter (the venv's), not whatever is first on PATH
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    results_dir = output / "results"
    before = {p.name: p.stat().st_mtime_ns for p in results_dir.glob("*.json")}
    t0 = time.perf_counter()
    error = ""
    try:
        pm.execute_notebook(
            str(path), str(executed), parameters=params, kernel_name=KERNEL_NAME,
            cwd=str(path.parent), progress_bar=False, log_output=False, execution_timeout=timeout,
        )
        status = "ok"
    except Exception as exc:  # papermill.PapermillExecutionError and kernel deaths
        status = "failed"
        error = _first_error(executed) if executed.exists() else f"{type(exc).__name__}: {exc}"
        error = error or f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    finally:
        for k, v in env_backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - t0
    html_path = None
    if executed.exists():
        try:
            html_path = render_html(executed, output / "html" / f"{path.stem}.html")
        except Exception as exc:  # pragma: no cover - nbconvert failure is reported, not fatal
            error = (error + "; " if error else "") + f"HTML rendering failed: {exc}"
    tables, key = [], {}
    for p in sorted(results_dir.glob("*.json")):
        if before.get(p.name) == p.stat().st_mtime_ns:
            continue
        doc = json.loads(p.read_text())
        if doc.get("notebook") == path.stem:
            tables.append(doc["table"])
            key.update(doc.get("key", {}))
    return NotebookRun(path.stem, status, seconds, executed, html_path, error, tables, key)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_tables(output: Path) -> list[Path]:
    """Turn every recorded result (``results/*.json``) into ``tables/<table>.csv`` and ``.md``."""
    written = []
    tables_dir = Path(output) / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    for doc in results.load_all(Path(output) / "results"):
        frame = results.to_frame(doc)
        name = doc["table"]
        written.append(results.atomic_write_text(tables_dir / f"{name}.csv", frame.to_csv(index=False)))
        md = _markdown(frame)
        header = f"### {name}\n\nNotebook `{doc.get('notebook', '')}`, profile `{doc.get('profile', '')}`, " \
                 f"recorded {doc.get('recorded_at', '')}.\n\n"
        written.append(results.atomic_write_text(tables_dir / f"{name}.md", header + md + "\n"))
    return written


def _markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no dependency on the optional ``tabulate``)."""
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


_INDEX_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #ddd;padding:.4rem .6rem;
text-align:left;vertical-align:top;font-size:.92rem}th{background:#f5f5f5}.ok{color:#137333;font-weight:600}
.failed{color:#b3261e;font-weight:600}code{background:#f5f5f5;padding:0 .2rem}.figs img{max-width:260px;margin:.3rem;
border:1px solid #eee}
"""


def write_index(output: Path, runs: Sequence[NotebookRun], *, profile: str, total_seconds: float) -> Path:
    """``reports/index.html``: each notebook's status, run time, key results and links."""
    output = Path(output)
    esc = html.escape
    rows = []
    for r in runs:
        links = []
        if r.html:
            links.append(f'<a href="html/{esc(r.html.name)}">HTML</a>')
        if r.executed.exists():
            links.append(f'<a href="executed/{esc(r.executed.name)}">ipynb</a>')
        tables = " ".join(f'<a href="tables/{esc(t)}.csv">{esc(t)}</a>' for t in r.tables)
        key = "<br>".join(f"{esc(str(k))}: <b>{esc(_fmt(v))}</b>" for k, v in r.key.items())
        err = f"<br><code>{esc(r.error[:300])}</code>" if r.error else ""
        rows.append(
            f"<tr><td>{esc(r.name)}</td><td class='{r.status}'>{r.status}{err}</td>"
            f"<td>{r.seconds:.1f} s</td><td>{key}</td><td>{tables}</td><td>{' · '.join(links)}</td></tr>"
        )
    figures = sorted((output / "figures").glob("*.png")) if (output / "figures").is_dir() else []
    figs = "".join(f'<a href="figures/{esc(f.name)}"><img src="figures/{esc(f.name)}" alt="{esc(f.stem)}"></a>'
                   for f in figures)
    n_ok = sum(r.status == "ok" for r in runs)

    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>tinyml-labkit report</title>
<style>{_INDEX_CSS}</style></head><body>
<h1>tinyml-labkit report</h1>
<p>Profile <code>{esc(profile)}</code> · {n_ok}/{len(runs)} notebooks ok · total {total_seconds / 60:.1f} min ·
labkit {esc(__version__)} · generated {esc(time.strftime('%Y-%m-%d %H:%M:%S'))}</p>
<table><tr><th>notebook</th><th>status</th><th>run time</th><th>key results</th><th>tables</th><th>open</th></tr>
{''.join(rows)}</table>
<h2>Figures</h2><div class="figs">{figs or '<p>none</p>'}</div>
</body></html>
"""
    return results.atomic_write_text(output / "index.html", doc)


def run_report(
    profile: str = "quick",
    *,
    only: Iterable[str] | None = None,
    output: str | os.PathLike | None = None,
    seed: int | None = None,
    timeout: int | None = None,
    notebooks: Path | None = None,
    echo: Callable[[str], None] = print,
) -> list[NotebookRun]:
    """Run the notebooks, render HTML, gather tables, write the index. Used by ``labkit report``."""
    config.profile(profile)  # validate the name early
    output = Path(output or config.reports_dir()).resolve()
    paths = discover(only, notebooks)
    for sub in ("executed", "html", "figures", "tables", "results"):
        (output / sub).mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("LABKIT_REPORTS")
    os.environ["LABKIT_REPORTS"] = str(output)
    runs: list[NotebookRun] = []
    t0 = time.perf_counter()
    try:
        from tqdm.auto import tqdm

        bar = tqdm(paths, desc=f"report ({profile})", unit="notebook")
        for path in bar:
            bar.set_postfix_str(path.stem)
            run = run_notebook(path, output, profile=profile, seed=seed, timeout=timeout)
            runs.append(run)
            msg = f"{run.status:>6}  {run.name}  {run.seconds:6.1f} s"
            echo(msg + (f"  -> {run.error}" if run.error else ""))
        write_tables(output)
        write_index(output, runs, profile=profile, total_seconds=time.perf_counter() - t0)
    finally:
        if previous is None:
            os.environ.pop("LABKIT_REPORTS", None)
        else:
            os.environ["LABKIT_REPORTS"] = previous
    echo(f"report: {sum(r.status == 'ok' for r in runs)}/{len(runs)} ok in "
         f"{(time.perf_counter() - t0) / 60:.1f} min -> {output / 'index.html'}")
    return runs
