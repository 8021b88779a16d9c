"""Check HTML pages in a real browser: headless Chromium driven by Playwright (``labkit check-pages``).

:func:`check_pages` opens every ``.html`` file under a folder (a report, a grade book) from
``file://`` with the network blocked, and lists what a reader would find broken:

* ``console``/``pageerror``: an error in the browser console or an uncaught exception;
* ``network``: the page asked for anything that is not a local file or inline data (a CDN script,
  a remote image): it would break offline, so it is blocked and reported;
* ``load``: a local resource (stylesheet, image, script) that failed to load;
* ``image``: an ``<img>`` that did not load (``naturalWidth == 0``);
* ``link``: a local link whose file does not exist, or whose ``#anchor`` is not in the target page.

Links to other sites are not followed (there is no network here). The browser is the system's
Chromium (Debian's ``chromium`` package): Playwright's own browser downloads are not needed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import html
import os
import re
import shutil
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urldefrag, urljoin, urlparse

CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run")
"""Flags that make the system Chromium start headless in containers and CI without reaching the network."""

_LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.\-]*:)", re.I)  # any scheme (http:, mailto:, javascript: ...)
_COLLECT_JS = """async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = "eager"; });
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.getAttribute("src") || "").slice(0, 120));
  const refs = [];
  document.querySelectorAll("a[href]").forEach(a => refs.push(a.getAttribute("href")));
  document.querySelectorAll("img[src],source[src],audio[src],video[src],script[src],iframe[src]")
    .forEach(e => refs.push(e.getAttribute("src")));
  document.querySelectorAll("link[href]").forEach(e => refs.push(e.getAttribute("href")));
  const ids = Array.from(document.querySelectorAll("[id]")).map(e => e.id)
    .concat(Array.from(document.querySelectorAll("a[name]")).map(e => e.getAttribute("name")));
  return {broken, refs, ids, images: imgs.length};
}"""


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing broken on one page."""

    page: str    # path relative to the checked folder
    kind: str    # console | pageerror | network | load | image | link
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


def chromium_path() -> str | None:
    """The system Chromium (``$LABKIT_CHROMIUM``, else ``chromium`` / ``chromium-browser`` on PATH), or ``None``."""
    env = os.environ.get("LABKIT_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def pages(folder: str | os.PathLike) -> list[Path]:
    """Every ``.html`` file under ``folder``, sorted."""
    return sorted(p for p in Path(folder).rglob("*.html") if p.is_file())


@contextlib.contextmanager
def browser(executable: str | None = None) -> Iterator[object]:
    """A headless Chromium (Playwright ``Browser``) started from the system's binary."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise ImportError("the browser checks need Playwright: pip install -r requirements.txt "
                          "(or pip install 'tinyml-labkit[test]')") from exc
    executable = executable or chromium_path()
    if executable is None:
        raise FileNotFoundError("no Chromium found: install it (Debian/Ubuntu: apt-get install chromium) "
                                "or set LABKIT_CHROMIUM=/path/to/chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS), headless=True)
        try:
            yield b
        finally:
            b.close()


_ID_CACHE: dict[Path, set[str]] = {}


def _ids_in_file(path: Path) -> set[str]:
    if path not in _ID_CACHE:
        text = path.read_text(encoding="utf-8", errors="replace")
        _ID_CACHE[path] = {html.unescape(m) for m in re.findall(r'\s(?:id|name)="([^"]*)"', text)}
    return _ID_CACHE[path]


def _check_refs(page: Path, refs: list[str], ids: set[str], rel: str) -> list[Problem]:
    problems, seen = [], set()
    base = page.resolve().as_uri()
    for ref in refs:
        ref = (ref or "").strip()
        if not ref or ref in seen or (_EXTERNAL.match(ref) and not ref.lower().startswith("file:")):
            continue
        seen.add(ref)
        url, frag = urldefrag(urljoin(base, ref))
        target = Path(unquote(urlparse(url).path))
        if not target.exists():
            problems.append(Problem(rel, "link", f"{ref} -> missing file"))
            continue
        if frag:
            known = ids if target == page.resolve() else (_ids_in_file(target) if target.suffix == ".html" else None)
            if known is not None and frag not in known and unquote(frag) not in known:
                problems.append(Problem(rel, "link", f"{ref} -> no element with id {frag!r}"))
    return problems


def check_page(b: object, page: Path, folder: Path, *, screenshot: Path | None = None,
               full_page: bool = False, timeout_ms: int = 120_000) -> list[Problem]:
    """Open one page in browser ``b`` and return its problems (see the module doc)."""
    rel = page.relative_to(folder).as_posix()
    problems: list[Problem] = []
    context = b.new_context(viewport={"width": 1366, "height": 900})
    try:
        def route(r):
            if r.request.url.startswith(_LOCAL_SCHEMES):
                return r.continue_()
            problems.append(Problem(rel, "network", f"requests {r.request.url[:160]} (blocked: pages must work offline)"))
            return r.abort()

        context.route("**/*", route)
        tab = context.new_page()
        tab.on("console", lambda m: problems.append(Problem(rel, "console", m.text[:300])) if m.type == "error" else None)
        tab.on("pageerror", lambda e: problems.append(Problem(rel, "pageerror", str(e)[:300])))
        tab.on("requestfailed", lambda r: problems.append(Problem(rel, "load", f"{r.url[:160]}: {r.failure}"))
               if r.url.startswith("file:") else None)
        tab.goto(page.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
        found = tab.evaluate(_COLLECT_JS)
        problems += [Problem(rel, "image", f"<img src={src!r}> did not load") for src in found["broken"]]
        problems += _check_refs(page, found["refs"], set(found["ids"]), rel)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(screenshot), full_page=full_page)
    finally:
        context.close()
    return problems


def check_pages(folder: str | os.PathLike, *, screenshots: str | os.PathLike | None = None,
                executable: str | None = None, full_page: tuple[str, ...] = ("index.html",)) -> list[Problem]:
    """Open every ``.html`` page under ``folder`` in headless Chromium and return what is broken
    (empty list: every page loads offline, without errors, with all images and local links working).

    With ``screenshots``, a PNG of each page's first screen (the whole page for ``full_page`` names)
    is saved there as ``<page path with / -> __>.png``. Used by ``labkit check-pages`` and the tests
    (report and grade book)."""
    folder = Path(folder)
    found = pages(folder)
    if not found:
        return [Problem(".", "load", f"no .html pages under {folder}")]
    problems: list[Problem] = []
    _ID_CACHE.clear()
    with browser(executable) as b:
        for page in found:
            rel = page.relative_to(folder).as_posix()
            shot = Path(screenshots) / (rel.replace("/", "__").removesuffix(".html") + ".png") if screenshots else None
            problems += check_page(b, page, folder, screenshot=shot, full_page=rel in full_page)
    return problems
