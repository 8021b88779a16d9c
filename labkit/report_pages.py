"""The report's notebook pages (``reports/html/NN_name.html``), readable offline by a grader.

:func:`render_html` turns an executed notebook into one self-contained page with JupyterLab's look
(nbconvert, template ``labkit/templates/labkit``) and:

* no network at all: no require.js, MathJax, mermaid or widget-manager scripts from a CDN, and
  remote badge images (the "Open in Colab" badge) become text links;
* a top bar (back to the index, a button that hides the code for readers who only want results)
  and a table of contents built from the notebook's headings;
* widgets shown statically: a tqdm bar becomes its final line of text, an interactive explorer a
  note saying where it runs, followed by what its output area showed;
* no TensorFlow C++ start-up noise, and no absolute path of the machine that ran the report
  (:func:`redact` replaces the report, data, repository, environment and home folders by names).
"""
from __future__ import annotations

import html
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from . import config, results

TEMPLATES = Path(__file__).resolve().parent / "templates"

# TensorFlow / absl C++ start-up lines that TF_CPP_MIN_LOG_LEVEL cannot silence.
_TF_NOISE = re.compile(
    r"^(?:[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\].*"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions:.*in other operations, rebuild TensorFlow.*"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.)$"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_PASSIVE_WIDGETS = {"LayoutModel", "HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel", "HTMLModel", "HTMLMathModel",
                    "LabelModel", "OutputModel", "FloatProgressModel", "IntProgressModel", "ImageModel", "AudioModel"}

PAGE_CSS = """
.labkit-bar{position:sticky;top:0;z-index:20;display:flex;gap:1rem;align-items:center;padding:.45rem 1rem;
 background:#fff;border-bottom:1px solid #ddd;font:14px system-ui,-apple-system,Segoe UI,Roboto,sans-serif}
.labkit-bar a{color:#1a5fb4;text-decoration:none}.labkit-title{font-weight:600;flex:1}
.labkit-bar button{font:inherit;padding:.2rem .7rem;border:1px solid #999;border-radius:4px;background:#f6f6f6;cursor:pointer}
.labkit-toc{font:14px system-ui,-apple-system,Segoe UI,Roboto,sans-serif;padding:.5rem 1rem}
.labkit-toc ul{margin:.3rem 0;padding-left:0;list-style:none}.labkit-toc li{margin:.25rem 0}
.labkit-toc ul ul{padding-left:1rem}.labkit-params{color:#555;font:12px ui-monospace,monospace}
.labkit-toc a{color:#1a5fb4;text-decoration:none}.labkit-toc-title{font-weight:600}
@media (min-width:1300px){.labkit-toc{position:fixed;top:3.3rem;left:0;bottom:0;width:250px;overflow:auto;
 border-right:1px solid #eee}body.labkit-page>main,body.labkit-page>.labkit-doc{margin-left:270px}}
body.labkit-page [id]{scroll-margin-top:3.5rem}
body.labkit-hide-code .jp-CodeCell .jp-Cell-inputWrapper{display:none}
body.labkit-hide-code .jp-OutputPrompt{visibility:hidden}
a.labkit-badge{display:inline-block;padding:.1rem .55rem;border-radius:4px;background:#f9ab00;color:#222;
 font:600 12px system-ui,sans-serif;text-decoration:none}
.labkit-widget-note{border-left:3px solid #f9ab00;padding:.3rem .7rem;background:#fff8e1;font-size:13px}
@media print{.labkit-bar,.labkit-toc{display:none}body.labkit-page>main,body.labkit-page>.labkit-doc{margin-left:0}
 .labkit-notebook{break-before:page}}
"""

TOGGLE_JS = """(function () {
  var button = document.getElementById("labkit-code-toggle");
  if (!button) { return; }
  button.addEventListener("click", function () {
    var hidden = document.body.classList.toggle("labkit-hide-code");
    button.setAttribute("aria-pressed", hidden ? "true" : "false");
    button.textContent = hidden ? "Show code" : "Hide code";
  });
})();"""


# ----------------------------------------------------------------------------- paths
def path_aliases(output: str | Path | None = None) -> list[tuple[str, str]]:
    """``(absolute prefix, shown as)`` pairs, longest first: the report folder, the data cache, the
    developers' shared data, the Python environment, the repository and the home folder."""
    pairs = [(output, "<reports>"), (config.data_dir(), "<data>"), (config.shared_data_dir(), "<shared>"),
             (sys.prefix, "<venv>"), (config.repo_root(), "<repo>"), (Path.home(), "~")]
    seen: dict[str, str] = {}
    for path, label in pairs:
        if path is None:
            continue
        for variant in {str(Path(path)), str(Path(path).resolve())}:
            if len(variant.rstrip("/")) > 1 and variant not in seen:
                seen[variant.rstrip("/")] = label
    return sorted(seen.items(), key=lambda kv: -len(kv[0]))


def redact(text: str, aliases: Sequence[tuple[str, str]]) -> str:
    """``text`` with every absolute prefix in ``aliases`` replaced by its name (whole path components only)."""
    for prefix, label in aliases:
        if prefix in text:
            text = re.sub(re.escape(prefix) + r"(?![\w.\-])", label.replace("\\", r"\\"), text)
    return text


def _redact_value(value: Any, aliases: Sequence[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        return redact(value, aliases)
    if isinstance(value, list):
        return [_redact_value(v, aliases) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(v, aliases) for k, v in value.items()}
    return value


def redact_notebook(nb: Any, aliases: Sequence[tuple[str, str]]) -> None:
    """Redact absolute paths in a notebook's text outputs, errors and papermill metadata (in place)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = _redact_value(out["text"], aliases)
            if out.get("output_type") == "error":
                out["evalue"] = _redact_value(out.get("evalue", ""), aliases)
                out["traceback"] = _redact_value(out.get("traceback", []), aliases)
            for mime in _TEXT_MIMES:
                if mime in out.get("data", {}):
                    out["data"][mime] = _redact_value(out["data"][mime], aliases)
    if "papermill" in nb.metadata:
        nb.metadata["papermill"] = _redact_value(nb.metadata["papermill"], aliases)


def sanitize_executed(executed: Path, aliases: Sequence[tuple[str, str]]) -> None:
    """Rewrite an executed notebook without the machine's absolute paths and without TensorFlow's C++
    start-up lines (:func:`strip_tf_noise`; ``logs/<name>.log`` keeps them), atomically."""
    import nbformat

    nb = nbformat.read(str(executed), as_version=4)
    redact_notebook(nb, aliases)
    strip_tf_noise(nb)
    results.atomic_write_text(executed, nbformat.writes(nb) + "\n")


# ----------------------------------------------------------------------------- notebook clean-up
def strip_tf_noise(nb: Any) -> None:
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


def offline_badges(nb: Any) -> None:
    """Markdown images served from the internet (the Colab badge) become text links: offline, an
    image would be broken, a link still says where it goes."""
    linked = re.compile(r"\[!\[([^\]]*)\]\((https?://[^)\s]+)\)\]\((https?://[^)\s]+)\)")
    bare = re.compile(r"!\[([^\]]*)\]\((https?://[^)\s]+)\)")
    for cell in nb.cells:
        if cell.get("cell_type") == "markdown":
            src = linked.sub(lambda m: f'<a class="labkit-badge" href="{html.escape(m[3])}">{html.escape(m[1])}</a>',
                             cell.source)
            cell.source = bare.sub(lambda m: f'<a class="labkit-badge" href="{html.escape(m[2])}">'
                                             f'{html.escape(m[1] or m[2])}</a>', src)


def _walk_widget(model_id: str, state: dict, texts: list[str], outputs: list, seen: set) -> bool:
    """Collect the text, progress and output-area content of a widget tree; True if it has controls."""
    if model_id in seen or model_id not in state:
        return False
    seen.add(model_id)
    name, st = state[model_id].get("model_name", ""), state[model_id].get("state", {})
    interactive = name not in _PASSIVE_WIDGETS and not name.endswith("StyleModel")
    if name == "OutputModel":
        outputs.extend(st.get("outputs", []))
    elif name in ("HTMLModel", "HTMLMathModel", "LabelModel"):
        texts.append(html.unescape(re.sub(r"<[^>]+>", "", str(st.get("value", "")))))
    elif name in ("FloatProgressModel", "IntProgressModel"):
        frac = min(max(float(st.get("value", 0)) / (float(st.get("max", 1)) or 1.0), 0.0), 1.0)
        texts.append("|" + "█" * round(10 * frac) + " " * (10 - round(10 * frac)) + "|")
    for child in st.get("children", []):
        if isinstance(child, str):
            interactive |= _walk_widget(child.removeprefix("IPY_MODEL_"), state, texts, outputs, seen)
    return interactive


def static_widgets(nb: Any) -> None:
    """Replace widget views (live only in a kernel) by static outputs from the saved widget state:
    a progress bar becomes its last line of text; an interactive widget a note saying where it runs,
    followed by what its output area showed. Drops the widget state (no widget scripts needed)."""
    import nbformat

    state = nb.metadata.get("widgets", {}).get(_WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        new = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(_WIDGET_VIEW)
            if view is None:
                new.append(out)
                continue
            texts, inner = [], []
            interactive = _walk_widget(view.get("model_id", ""), state, texts, inner, set())
            if interactive or view.get("model_id") not in state:
                note = ("<div class='labkit-widget-note'>Interactive widget: it runs live in JupyterLab "
                        "(<code>make lab</code>) or Colab." + (" Its first view:" if inner else "") + "</div>")
                new.append(nbformat.v4.new_output("display_data", data={"text/html": note}))
            elif "".join(texts).strip():
                new.append(nbformat.v4.new_output("stream", name="stdout", text=" ".join(t.strip() for t in texts) + "\n"))
            new.extend(nbformat.from_dict(o) for o in inner)
        cell["outputs"] = new
    nb.metadata.pop("widgets", None)


def notebook_title(nb: Any, default: str = "") -> str:
    """The first Markdown heading of a notebook (e.g. ``00 · Setup check``)."""
    for cell in nb.cells:
        if cell.get("cell_type") == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return default


def first_error(nb: Any, aliases: Sequence[tuple[str, str]] = (), *, lines: int = 12) -> tuple[str, str]:
    """``(excerpt, anchor)`` of a notebook's first error: the last lines of its traceback, without
    colour codes or machine paths, and the failing cell's anchor in the rendered page (``cell-id=...``);
    ``("", "")`` when it has none."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                tb = _ANSI.sub("", "\n".join(out.get("traceback", [])))
                tail = "\n".join(ln for ln in tb.splitlines() if ln.strip())
                excerpt = "\n".join(tail.splitlines()[-lines:]) or f"{out.get('ename')}: {out.get('evalue')}"
                return redact(excerpt, aliases), f"cell-id={cell['id']}" if cell.get("id") else ""
    return "", ""


# ----------------------------------------------------------------------------- rendering
def _toc(body: str) -> str:
    entries = []
    for level, anchor, inner in re.findall(r'<h([12])\s+id="([^"]+)"[^>]*>(.*?)</h\1>', body, re.S):
        label = html.unescape(re.sub(r"<[^>]+>", "", inner)).replace("¶", "").strip()
        if level == "2" and label:
            entries.append(f'<li><a href="#{anchor}">{html.escape(label)}</a></li>')
    if not entries:
        return ""
    return ('<nav class="labkit-toc" aria-label="Contents"><div class="labkit-toc-title">Contents</div>'
            f'<ul>{"".join(entries)}</ul></nav>')


def notebook_page(nb: Any, *, output: Path | None = None, index_href: str = "../index.html",
                  back_label: str = "report index", default_title: str = "notebook") -> str:
    """An executed notebook (changed in place) as one self-contained, offline HTML page (see the module doc).

    Cells tagged ``injected-parameters`` or ``remove-cell`` are hidden; ``remove-input`` shows only
    the output. Used by ``labkit report`` (:func:`render_html`) and the grade book of ``labkit grade``."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    strip_tf_noise(nb)
    static_widgets(nb)
    offline_badges(nb)
    redact_notebook(nb, path_aliases(output))
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_cell_tags = {"injected-parameters", "remove-cell"}
    c.TagRemovePreprocessor.remove_input_tags = {"remove-input"}
    exporter = HTMLExporter(config=c, template_name="labkit", extra_template_basedirs=[str(TEMPLATES)])
    exporter.register_preprocessor(TagRemovePreprocessor(config=c), enabled=True)
    title = notebook_title(nb, default_title)
    nb.metadata["title"] = title
    injected = nb.metadata.get("papermill", {}).get("parameters", {}) or {}
    params = ", ".join(f"{k} = {v!r}" for k, v in injected.items())
    resources = {"labkit": {"css": PAGE_CSS, "js": TOGGLE_JS, "title": title, "index_href": index_href,
                            "back_label": back_label, "params": params}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body.replace("<!--labkit-toc-->", _toc(body), 1)


def render_html(executed: Path, out_html: Path, *, output: Path | None = None,
                index_href: str = "../index.html") -> Path:
    """Render an executed notebook file to ``out_html`` with :func:`notebook_page`. Used by ``labkit report``."""
    import nbformat

    nb = nbformat.read(str(executed), as_version=4)
    page = notebook_page(nb, output=output, index_href=index_href, default_title=Path(executed).stem)
    return results.atomic_write_text(out_html, page)


def page_parts(page: str) -> dict[str, str]:
    """The ``styles``, table of contents (``toc``), injected ``params`` and ``cells`` of a page made by
    :func:`render_html`, for report.html."""
    head = page.split("</head>", 1)[0]
    toc = re.search(r'<nav class="labkit-toc".*?</nav>', page, re.S)
    params = re.search(r'<span class="labkit-params"[^>]*>(.*?)</span>', page, re.S)
    return {"styles": "\n".join(re.findall(r"<style[^>]*>.*?</style>", head, re.S)),
            "toc": toc.group(0) if toc else "", "params": params.group(1).strip() if params else "",
            "cells": page.split("<!--labkit-cells-start-->", 1)[-1].split("<!--labkit-cells-end-->", 1)[0]}


def anchor_ids(fragment: str) -> set[str]:
    """The heading and cell anchors of a page's cells (the ids that links point to)."""
    return set(re.findall(r'<h[1-6]\s+id="([^"]+)"', fragment)) | set(re.findall(r'\sid="(cell-id=[^"]+)"', fragment))


def prefix_anchors(fragment: str, prefix: str, ids: set[str]) -> str:
    """Make the anchors ``ids`` of one notebook unique inside report.html: ``id="x"`` and ``href="#x"``
    become ``id="<prefix>x"`` and ``href="#<prefix>x"`` (other ids, e.g. pandas styles, are kept)."""
    if not ids:
        return fragment

    def fix_id(m: re.Match) -> str:
        return f'{m[1]}id="{prefix}{m[2]}"' if m[2] in ids else m[0]

    def fix_href(m: re.Match) -> str:
        return f'href="#{prefix}{m[1]}"' if m[1] in ids else m[0]

    fragment = re.sub(r'(\s)id="([^"]+)"', fix_id, fragment)
    return re.sub(r'href="#([^"]+)"', fix_href, fragment)
