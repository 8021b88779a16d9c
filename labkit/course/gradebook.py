"""The grade book of ``labkit grade``: ``grades.csv``, ``index.html`` and one page per submission.

``index.html`` has a row per student and a column per notebook (its total, linking to the student's
executed notebook), the course total, and below it the class mean of every question; it is one static
file with inline CSS, no scripts and no network, so it opens from ``file://``. A submission's page is
the executed notebook rendered by nbconvert (HTML sanitised: a student's outputs cannot run scripts in
the grader's browser) with a table of its results at the top.
"""
from __future__ import annotations

import csv
import html
import io
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

from .. import __version__, report_pages, results

__all__ = ["safe_name", "write_csv", "write_index", "submission_page", "totals"]

_FIELDS = ("student", "notebook", "question", "points", "max_points", "status", "reason")
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ddd;padding:.35rem .6rem;text-align:left;
font-size:.92rem;vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.passed{color:#137333}.partial{color:#8a5a00}.failed,.missing,.invalid,.timeout,.integrity,.error,.wrong{color:#b3261e}
a{color:#1a56a8}code{background:#f5f5f5;padding:0 .2rem}.muted{color:#666}
"""
_PAGE_CSS = _CSS.split("\n", 2)[2]  # the table and status rules, not the page layout


def safe_name(student: str) -> str:
    """A folder name for a student id (letters, digits, ``.-_``). Used by ``labkit grade``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """``grades.csv``: one row per student, notebook and question. Used by ``labkit grade``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{r[k]:g}" if isinstance(r[k], float) else r[k]) for k in _FIELDS})
    return results.atomic_write_text(path, buf.getvalue())


def totals(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], tuple[float, float, set[str]]]:
    """(student, notebook) -> (points, max points, statuses). Used by :func:`write_index` and the tests."""
    acc: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0.0, 0.0, set()])
    for r in rows:
        t = acc[(r["student"], r["notebook"])]
        t[0] += float(r["points"])
        t[1] += float(r["max_points"])
        t[2].add(r["status"])
    return {k: (v[0], v[1], v[2]) for k, v in acc.items()}


def _status_class(statuses: set[str]) -> str:
    for s in ("integrity", "timeout", "invalid", "wrong notebook", "missing", "error"):
        if s in statuses:
            return s.split()[0]
    return "passed" if statuses == {"passed"} else "partial" if statuses & {"passed", "partial"} else "failed"


def write_index(out: str | Path, rows: list[Mapping[str, Any]], course: Mapping[str, Mapping[str, float]], *,
                timings: Mapping[tuple[str, str], float] | None = None, pages: set[tuple[str, str]] | None = None
                ) -> Path:
    """``index.html``: students x notebooks totals with links, course totals, class mean per question.
    Used by ``labkit grade``."""
    out = Path(out)
    esc = html.escape
    per = totals(rows)
    students = list(dict.fromkeys(r["student"] for r in rows))
    notebooks = list(course)
    course_max = sum(sum(q.values()) for q in course.values())
    head = "".join(f"<th>{esc(nb)}<br><span class='muted'>/ {sum(course[nb].values()):g}</span></th>" for nb in notebooks)
    body = []
    for s in students:
        cells, total = [], 0.0
        for nb in notebooks:
            pts, mx, statuses = per.get((s, nb), (0.0, sum(course[nb].values()), {"missing"}))
            total += pts
            label = f"{pts:g}"
            cls = _status_class(statuses)
            note = "" if cls in ("passed", "partial", "failed") else f" <span class='{cls}'>{esc(cls)}</span>"
            if pages and (s, nb) in pages:
                label = f"<a href='{esc(safe_name(s))}/{esc(nb)}.html'>{label}</a>"
            cells.append(f"<td class='num {cls}'>{label}{note}</td>")
        body.append(f"<tr><td>{esc(s)}</td>{''.join(cells)}<td class='num'><b>{total:g}</b> / {course_max:g}</td></tr>")
    by_q: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        by_q[(r["notebook"], r["question"])].append(float(r["points"]))
    q_rows = []
    for nb in notebooks:
        for q, mx in course[nb].items():
            vals = by_q.get((nb, q), [])
            mean = sum(vals) / len(vals) if vals else 0.0
            full = sum(v >= mx for v in vals)
            q_rows.append(f"<tr><td>{esc(nb)}</td><td>{esc(q)}</td><td class='num'>{mean:.2f}</td>"
                          f"<td class='num'>{mx:g}</td><td class='num'>{full}/{len(vals)}</td></tr>")
    spent = ""
    if timings:
        vals = sorted(timings.values())
        spent = (f" · {len(vals)} notebooks executed, median {vals[len(vals) // 2]:.1f} s each "
                 f"(max {vals[-1]:.1f} s)")
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>Grade book</title><style>{_CSS}</style></head>
<body><h1>Grade book</h1>
<p class="muted">{len(students)} students · {len(notebooks)} notebooks · {course_max:g} points · labkit {esc(__version__)} ·
generated {esc(time.strftime('%Y-%m-%d %H:%M:%S'))}{esc(spent)} · <a href="grades.csv">grades.csv</a></p>
<table><tr><th>student</th>{head}<th>total</th></tr>{''.join(body)}</table>
<p class="muted">A number links to the student's executed notebook with its test results. Red labels: missing,
invalid, wrong notebook, timeout, integrity (the notebook broke the grading rules) or a grader error; the reason is
in grades.csv and on the student's page.</p>
<h2>Class mean per question</h2>
<table><tr><th>notebook</th><th>question</th><th>mean</th><th>max</th><th>full marks</th></tr>{''.join(q_rows)}</table>
</body></html>
"""
    return results.atomic_write_text(out / "index.html", doc)


_GRADING_CELLS = re.compile(r"^(from otter import Notebook as notebook_|import sys\nsys\.path\.append\(|from otter\.execute "
                            r"import Checker|import labkit\.course\.guard)")
_OTTER_LOG = re.compile(r"^\[(DEBUG|INFO) otter\.[^\n]*\n?", re.M)
_ACTIVE = re.compile(r"<\s*(script|iframe|object|embed)|javascript:|\bon[a-z]+\s*=", re.I)


def _for_graders(executed: Any) -> Any:
    """A copy without otter's grading cells and log lines, and without anything that could run in the
    grader's browser (scripts, event handlers, JavaScript outputs) from the student's cells."""
    import copy

    nb = copy.deepcopy(executed)
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and _GRADING_CELLS.match(c.source))]
    for cell in nb.cells:
        if cell.cell_type == "markdown" and _ACTIVE.search(cell.source):
            cell.source = html.escape(cell.source)
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                out["text"] = _OTTER_LOG.sub("", out.get("text", ""))
                if not out["text"]:
                    continue
            data = out.get("data")
            if data is not None:
                data.pop("application/javascript", None)
                for kind in [k for k in data if k.endswith("html") or k.endswith("svg+xml")]:
                    if _ACTIVE.search(str(data[kind])):
                        del data[kind]
                if not data:
                    continue
            outputs.append(out)
        if cell.cell_type == "code":
            cell.outputs = outputs
    return nb


def submission_page(executed: Any, rows: list[Mapping[str, Any]], *, seconds: float, mode: str = "full") -> str:
    """One student's executed notebook as HTML with their results on top (sanitised; grading cells
    hidden). Used by ``labkit grade`` (in the worker)."""
    body = report_pages.notebook_page(_for_graders(executed), index_href="../index.html", back_label="grade book",
                                      default_title=str(rows[0]["notebook"]) if rows else "submission")
    esc = html.escape
    total, best = sum(float(r["points"]) for r in rows), sum(float(r["max_points"]) for r in rows)
    trs = "".join(f"<tr><td>{esc(r['question'])}</td><td class='num'>{float(r['points']):g} / {float(r['max_points']):g}"
                  f"</td><td class='{esc(r['status'].split()[0])}'>{esc(r['status'])}</td><td>{esc(r['reason'])}</td></tr>"
                  for r in rows)
    first = rows[0] if rows else {"student": "", "notebook": ""}
    header = (f"<div style='font-family:system-ui,sans-serif;max-width:1100px;margin:1.5rem auto;padding:1rem;"
              f"border:2px solid #ccc;border-radius:6px'><style>{_PAGE_CSS}</style>"
              f"<h2>{esc(first['student'])} · {esc(first['notebook'])}: {total:g} / {best:g} points</h2>"
              f"<p class='muted'>graded by labkit {esc(__version__)} (otter-grader) in {seconds:.1f} s; "
              f"{'the notebook below ran headless under the smoke profile' if mode == 'full' else 'exercises mode: the setup, answer and check cells below ran headless; the lesson cells were skipped (no exercise uses them)'}</p>"
              f"<table><tr><th>question</th><th>points</th><th>status</th><th>reason</th></tr>{trs}</table></div>")
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + header, body, count=1)
