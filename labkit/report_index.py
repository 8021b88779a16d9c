"""The report's front pages: ``reports/index.html`` (a dashboard linking everything) and
``reports/report.html`` (one self-contained file for graders).

Both open from ``file://`` with no network. They start with a banner (profile, seed, git commit,
date, versions, CPU/GPU, what ran and what was cached) and the course summary tables: every table
a notebook recorded with ``results.record(..., headline="title")``, sorted by ``headline_order``.
The index then has one card per notebook (status, run time, cached or run and why, key numbers,
figure thumbnails with captions that open full size, links; a failed notebook shows its error and
links to the failing cell). report.html then holds every notebook page itself, one after another,
with one table of contents: it can be mailed, uploaded to a course platform or printed to PDF.
"""
from __future__ import annotations

import html
import math
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import __version__, config, report_pages, results

esc = html.escape

INDEX_CSS = """
body.labkit-front{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222;margin:0;background:#fafafa}
.labkit-doc{max-width:1280px;margin:0 auto;padding:1rem 1.5rem 3rem}
.labkit-doc h1{font-size:1.7rem;margin:.6rem 0}.labkit-doc h2{font-size:1.3rem;margin:2rem 0 .6rem;border-bottom:1px solid #ddd}
.banner{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:.35rem 1.2rem;background:#fff;
 border:1px solid #ddd;border-radius:6px;padding:.8rem 1rem;font-size:.9rem}
.banner div{overflow-wrap:anywhere}.banner b{display:block;color:#666;font-weight:500;font-size:.78rem;text-transform:uppercase}
.headline{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0;overflow-x:auto}
.headline h3{margin:.2rem 0}.src{color:#666;font-size:.82rem;margin:.2rem 0 .5rem}
table.lk{border-collapse:collapse;font-size:.86rem;margin:.3rem 0}
table.lk th,table.lk td{border:1px solid #e2e2e2;padding:.25rem .5rem;text-align:left;vertical-align:top}
table.lk th{background:#f3f3f3}table.lk td.num{text-align:right;font-variant-numeric:tabular-nums}
table.lk td.long{min-width:9em}table.lk td.mid{min-width:5.5em}
td.yes{color:#137333;font-weight:600}td.no{color:#b3261e;font-weight:600}td.na{color:#999}
.cards{display:grid;grid-template-columns:1fr;gap:1rem}
.card{background:#fff;border:1px solid #ddd;border-left:5px solid #137333;border-radius:6px;padding:.6rem 1rem}
.card.failed{border-left-color:#b3261e}.card h3{margin:.2rem 0;font-size:1.1rem;display:flex;gap:.6rem;align-items:center;flex-wrap:wrap}
.pill{font-size:.75rem;padding:.05rem .5rem;border-radius:999px;background:#e6f4ea;color:#137333;font-weight:600}
.pill.failed{background:#fce8e6;color:#b3261e}.pill.cached{background:#e8f0fe;color:#1a5fb4}.pill.ran{background:#fef7e0;color:#8a5a00}
.why{color:#555;font-size:.85rem;margin:.2rem 0}.links{font-size:.85rem;margin:.4rem 0}
dl.key{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:.1rem 1rem;font-size:.85rem;margin:.4rem 0}
dl.key div{display:flex;justify-content:space-between;gap:.5rem;border-bottom:1px dotted #ddd}dl.key dd{margin:0;font-weight:600}
.thumbs{display:flex;flex-wrap:wrap;gap:.6rem;margin:.5rem 0}.thumbs figure{margin:0;width:220px}
.thumbs img{width:220px;height:140px;object-fit:contain;background:#fff;border:1px solid #e5e5e5}
.thumbs figcaption{font-size:.78rem;color:#444}pre.error{background:#fff5f5;border:1px solid #f3c2c0;padding:.5rem;
 overflow-x:auto;font-size:.8rem;white-space:pre-wrap}
.labkit-notebook{border-top:4px solid #ddd;margin-top:2.5rem;padding-top:.5rem}
"""


# ----------------------------------------------------------------------------- facts for the banner
def git_commit(repo: Path | None = None) -> str:
    """The checkout's short commit, with a note when tracked files have uncommitted changes."""
    repo = Path(repo or config.repo_root())
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return sha + (" + uncommitted changes" if dirty else "")


def _gpus(docs: Sequence[Mapping[str, Any]]) -> str:
    seen = [d["machine"]["gpus"] for d in docs if isinstance(d.get("machine"), dict) and "gpus" in d["machine"]]
    if not seen:
        return "not recorded"
    return ", ".join(seen[-1]) or "none (CPU only)"


def banner_facts(*, profile: str, seed: str, runs: Sequence[Any], docs: Sequence[Mapping[str, Any]],
                 wall_seconds: float, jobs: int = 1) -> dict[str, str]:
    """The banner's label -> text pairs."""
    machine = results.machine()
    vers = results.versions()
    ok = sum(r.status == "ok" for r in runs)
    cached = sum(r.cached for r in runs)
    failed = len(runs) - ok
    nb_time = sum(r.seconds for r in runs)
    return {
        "profile": profile,
        "seed": seed,
        "git commit": git_commit(),
        "generated": time.strftime("%Y-%m-%d %H:%M %Z"),
        "notebooks": f"{ok}/{len(runs)} ok" + (f", {failed} failed" if failed else "")
                     + f" · {len(runs) - cached} run, {cached} cached",
        "time": f"this run {duration(wall_seconds)} · notebooks' own run time {duration(nb_time)} · "
                f"{jobs} notebook{'s' if jobs > 1 else ''} at a time, one TensorFlow thread each",
        "CPU": f"{machine['cpu']} · {machine['cores']} logical cores",
        "GPU": _gpus(docs),
        "labkit · Python": f"{__version__} · {vers.pop('python')}",
        "versions": " · ".join(f"{k} {v}" for k, v in vers.items()),
    }


def duration(seconds: float) -> str:
    """``12.3 s`` or ``4.5 min``."""
    return f"{seconds:.1f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _banner(facts: Mapping[str, str]) -> str:
    return '<div class="banner">' + "".join(f"<div><b>{esc(k)}</b>{esc(v)}</div>" for k, v in facts.items()) + "</div>"


# ----------------------------------------------------------------------------- tables
def fmt(value: Any) -> tuple[str, str]:
    """``(text, css class)`` of one table cell: numbers compact and right-aligned, yes/no coloured."""
    if isinstance(value, bool):
        return ("yes", "yes") if value else ("no", "no")
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–", "na"
    if isinstance(value, int):
        return f"{value:,}", "num"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1e4:
            return f"{value:,.0f}", "num"
        return f"{value:.4g}", "num"
    if isinstance(value, (list, tuple, dict)):
        return esc(", ".join(map(str, value)) if not isinstance(value, dict) else str(value)), ""
    return esc(str(value)), ""


_LONG_TEXT, _MID_TEXT = 80, 30  # characters: a column holding longer text gets a minimum width (CSS td.long / td.mid)


def table_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """A recorded table as an HTML table (columns in first-seen order; a column of long texts, such as the
    claims table's reasons, gets a minimum width so that its cells do not wrap into narrow towers)."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    head = "".join(f"<th>{esc(str(c))}</th>" for c in columns)
    cells = [[fmt(row.get(c)) for c in columns] for row in rows]
    longest = [max((len(row[i][0]) for row in cells), default=0) for i in range(len(columns))]
    width = ["long" if n > _LONG_TEXT else "mid" if n > _MID_TEXT else "" for n in longest]  # no 20-line cells
    body = []
    for row in cells:
        classes = [" ".join(c for c in (cls, w) if c) for (_, cls), w in zip(row, width)]
        body.append("<tr>" + "".join(f'<td class="{cl}">{text}</td>' if cl else f"<td>{text}</td>"
                                     for (text, _), cl in zip(row, classes)) + "</tr>")
    return f'<table class="lk"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def headline_docs(docs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The recorded tables marked as headline tables, in ``headline_order`` then table order."""
    marked = [d for d in docs if isinstance(d.get("headline"), dict) and d["headline"].get("title")]
    return sorted(marked, key=lambda d: (d["headline"].get("order", 50), d.get("table", "")))


def _headlines(docs: Sequence[Mapping[str, Any]], titles: Mapping[str, str], *, links: bool) -> str:
    parts = []
    for d in headline_docs(docs):
        nb = d.get("notebook", "")
        where = (f'<a href="html/{esc(nb)}.html">{esc(titles.get(nb, nb))}</a>' if links
                 else f'<a href="#nb-{esc(nb)}">{esc(titles.get(nb, nb))}</a>')
        csv = f' · <a href="tables/{esc(d["table"])}.csv">CSV</a>' if links else ""
        parts.append(f'<section class="headline" id="table-{esc(d["table"])}"><h3>{esc(d["headline"]["title"])}</h3>'
                     f'<p class="src">table <code>{esc(d["table"])}</code> from {where} · profile '
                     f'{esc(d.get("profile") or "?")} · recorded {esc(d.get("recorded_at", ""))}{csv}</p>'
                     f'{table_html(d.get("rows", []))}</section>')
    if not parts:
        return ("<p>No course summary tables yet: notebooks mark them with "
                "<code>results.record(..., headline=\"title\")</code>.</p>")
    return "".join(parts)


# ----------------------------------------------------------------------------- the index
def _figure_caption(path: Path) -> str:
    try:
        from PIL import Image

        with Image.open(path) as im:
            caption = (getattr(im, "text", {}) or {}).get("Title", "")
    except Exception:  # an unreadable PNG is shown without caption (the link check reports it)
        caption = ""
    return caption or path.stem.split("_", 1)[-1].replace("_", " ")


def _key_html(key: Mapping[str, Any]) -> str:
    if not key:
        return ""
    items = "".join(f"<div><dt>{esc(str(k))}</dt><dd>{fmt(v)[0]}</dd></div>" for k, v in key.items())
    return f'<dl class="key">{items}</dl>'


def _status(run: Any) -> str:
    pills = f'<span class="pill {"failed" if run.status != "ok" else ""}">{esc(run.status)}</span>'
    pills += '<span class="pill cached">cached</span>' if run.cached else '<span class="pill ran">run</span>'
    pills += '<span class="pill failed">outdated</span>' if run.outdated else ""
    return pills + f'<span class="why">{duration(run.seconds)}</span>'


def _why(run: Any) -> str:
    if run.cached and run.status != "ok":
        return f"not run this time: its last run ({esc(run.ran_at or '?')}) failed; the next report runs it again"
    if run.cached and run.outdated:
        return (f"not run this time; last run {esc(run.ran_at or '?')} is outdated ({esc(run.outdated)}): "
                f"run <code>labkit report</code> to update it")
    if run.cached:
        return f"cached: inputs unchanged since its run of {esc(run.ran_at or '?')}"
    return f"run: {esc(run.reason or 'requested')}"


def _card(run: Any, output: Path) -> str:
    name = esc(run.name)
    title = esc(run.title or run.name)
    head = f'<a href="html/{name}.html">{title}</a>' if run.html else title
    parts = [f'<article class="card {"failed" if run.status != "ok" else ""}" id="nb-{name}">',
             f"<h3>{head} {_status(run)}</h3>", f'<p class="why">{_why(run)}</p>']
    if run.error:
        cell = f' · <a href="html/{name}.html#{esc(run.error_cell)}">the failing cell</a>' if run.html and run.error_cell else ""
        log = f' · <a href="logs/{name}.log">full log</a>' if (output / "logs" / f"{run.name}.log").exists() else ""
        parts.append(f'<pre class="error">{esc(run.error)}</pre><p class="links">{cell.lstrip(" ·")}{log}</p>')
    parts.append(_key_html(run.key))
    figs = [output / "figures" / f for f in run.figures if (output / "figures" / f).is_file()]
    if figs:
        captions = {f: esc(_figure_caption(f)) for f in figs}
        parts.append('<div class="thumbs">' + "".join(
            f'<figure><a href="figures/{esc(f.name)}"><img src="figures/{esc(f.name)}" alt="{captions[f]}">'
            f"</a><figcaption>{captions[f]}</figcaption></figure>" for f in figs) + "</div>")
    links = []
    if run.html:
        links.append(f'<a href="html/{name}.html">page</a>')
    if run.executed.exists():
        links.append(f'<a href="executed/{name}.ipynb">executed notebook</a>')
    links += [f'<a href="tables/{esc(t)}.csv">{esc(t)}</a>' for t in run.tables if (output / "tables" / f"{t}.csv").exists()]
    if (output / "logs" / f"{run.name}.log").exists() and not run.error:
        links.append(f'<a href="logs/{name}.log">log</a>')
    parts.append(f'<p class="links">{" · ".join(links)}</p></article>')
    return "".join(parts)


def _page(title: str, head_extra: str, body: str, *, body_class: str = "labkit-front") -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{esc(title)}</title>{head_extra}</head>'
            f'<body class="{body_class}">{body}</body></html>\n')


def write_index(output: Path, runs: Sequence[Any], facts: Mapping[str, str], *,
                docs: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """``reports/index.html``: banner, course summary tables, one card per notebook."""
    output = Path(output)
    docs = results.load_all(output / "results") if docs is None else docs
    titles = {r.name: r.title or r.name for r in runs}
    single = output / "report.html"
    one_file = (f' · one file for graders: <a href="report.html">report.html</a> '
                f"({single.stat().st_size / 1e6:.1f} MB)" if single.exists() else "")
    jump = " · ".join(f'<a href="#nb-{esc(r.name)}">{esc(r.name[:2])}</a>' for r in runs)
    body = (f'<div class="labkit-doc"><h1>tinyml-labkit report</h1>{_banner(facts)}'
            f'<p class="links">Notebooks: {jump}{one_file}</p>'
            f"<h2>Course summary</h2>{_headlines(docs, titles, links=True)}"
            f'<h2>Notebooks</h2><div class="cards">{"".join(_card(r, output) for r in runs)}</div></div>')
    page = _page("tinyml-labkit report", f"<style>{INDEX_CSS}</style>", body)
    return results.atomic_write_text(output / "index.html", report_pages.redact(page, report_pages.path_aliases(output)))


# ----------------------------------------------------------------------------- one file for graders
def write_single(output: Path, runs: Sequence[Any], facts: Mapping[str, str], *,
                 docs: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """``reports/report.html``: the banner, the course tables, an overview, then every notebook page,
    in one file with no link to anything outside it (images, audio and styles are embedded)."""
    output = Path(output)
    docs = results.load_all(output / "results") if docs is None else docs
    titles = {r.name: r.title or r.name for r in runs}
    styles, toc, sections = "", [], []
    overview = ["<tr><th>notebook</th><th>status</th><th>time</th><th>key numbers</th></tr>"]
    for r in runs:
        key = "; ".join(f"{esc(str(k))} {fmt(v)[0]}" for k, v in r.key.items())
        overview.append(f'<tr><td><a href="#nb-{esc(r.name)}">{esc(titles[r.name])}</a></td>'
                        f'<td class="{"yes" if r.status == "ok" else "no"}">{esc(r.status)}'
                        f'{" (cached)" if r.cached else ""}</td><td class="num">{duration(r.seconds)}</td><td>{key}</td></tr>')
        page = r.html.read_text(encoding="utf-8") if r.html and Path(r.html).exists() else ""
        parts = report_pages.page_parts(page) if page else {"styles": "", "toc": "", "params": "", "cells": ""}
        styles = styles or parts["styles"]
        prefix = f"nb{r.name[:2]}-"
        ids = report_pages.anchor_ids(parts["cells"])
        sub = report_pages.prefix_anchors(parts["toc"], prefix, ids)
        sub = re.sub(r'^<nav[^>]*>(?:<div class="labkit-toc-title">[^<]*</div>)?|</nav>$', "", sub)
        toc.append(f'<li><a href="#nb-{esc(r.name)}">{esc(titles[r.name])}</a>{sub}</li>')
        bits = [esc(r.status) + (" (cached)" if r.cached else ""), duration(r.seconds)] + \
            ([parts["params"]] if parts["params"] else [])
        error = f'<pre class="error">{esc(r.error)}</pre>' if r.error else ""
        body = report_pages.prefix_anchors(parts["cells"], prefix, ids) if parts["cells"] else "<p>No page was rendered.</p>"
        sections.append(f'<section class="labkit-notebook" id="nb-{esc(r.name)}"><p class="src">'
                        f'{esc(r.name)} · {" · ".join(bits)}</p>{error}{body}</section>')
    nav = ('<nav class="labkit-toc" aria-label="Contents"><div class="labkit-toc-title">Contents</div><ul>'
           '<li><a href="#course-summary">Course summary</a></li>' + "".join(toc) + "</ul></nav>")
    bar = ('<header class="labkit-bar"><span class="labkit-title">tinyml-labkit report · one file</span>'
           '<button type="button" id="labkit-code-toggle" aria-pressed="false">Hide code</button></header>')
    doc = (f'{bar}{nav}<div class="labkit-doc"><h1>tinyml-labkit report</h1>{_banner(facts)}'
           f'<h2 id="course-summary">Course summary</h2>{_headlines(docs, titles, links=False)}'
           f'<h2>Notebooks</h2><table class="lk">{"".join(overview)}</table>'
           f'{"".join(sections)}</div><script>{report_pages.TOGGLE_JS}</script>')
    head = f"{styles}<style>{report_pages.PAGE_CSS}{INDEX_CSS}</style>"
    page = _page("tinyml-labkit report (one file)", head, doc, body_class="jp-Notebook labkit-page labkit-front")
    return results.atomic_write_text(output / "report.html",
                                     report_pages.redact(page, report_pages.path_aliases(output)))


def relative(path: Path) -> str:
    """``path`` relative to the working directory when inside it (for the terminal summary)."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return str(path)
