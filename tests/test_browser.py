"""The report and JupyterLab in a real browser: Debian's Chromium driven by Playwright.

Skipped where no Chromium is installed (``.ci/run`` installs it with apt-get). Screenshots go to the
test's report folder and to ``reports/screenshots/`` of the checkout, where a developer finds them
(CI keeps nothing).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from labkit import pagecheck

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "reports" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH (apt-get install chromium)"),
]
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -r requirements.txt)")


def _keep(shots: Path, prefix: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for png in shots.glob("*.png"):
        shutil.copy2(png, SHOTS / f"{prefix}{png.name}")


def test_checker_reports_what_is_broken(tmp_path):
    """The checker itself fails on each kind of breakage (a check that cannot fail is worthless)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "ok.png").write_bytes(_png_bytes())
    (tmp_path / "good.html").write_text('<h1 id="top">fine</h1><img src="ok.png"><a href="#top">up</a>'
                                        '<a href="sub/other.html#here">other</a><a href="https://example.org/">web</a>')
    (tmp_path / "sub" / "other.html").write_text('<p id="here">here</p><a href="../good.html">back</a>')
    (tmp_path / "bad.html").write_text(
        '<img src="missing.png"><a href="nowhere.html">x</a><a href="good.html#absent">y</a>'
        '<script>console.error("boom")</script><script>undefinedFunction()</script>'
        '<img src="https://example.org/remote.png">')
    problems = pagecheck.check_pages(tmp_path, screenshots=tmp_path / "shots")
    assert all(p.page == "bad.html" for p in problems), problems
    kinds = sorted({p.kind for p in problems})
    assert kinds == ["console", "image", "link", "load", "network", "pageerror"], problems
    details = " | ".join(str(p) for p in problems)
    assert "nowhere.html -> missing file" in details and "no element with id 'absent'" in details
    assert "example.org/remote.png" in details and "boom" in details
    assert sorted(p.name for p in (tmp_path / "shots").glob("*.png")) == ["bad.png", "good.png", "sub__other.png"]


def _png_bytes() -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def test_smoke_report_pages_work_offline_in_chromium(smoke_report):
    """Every page of the smoke report (index, report.html, each notebook): no console or page errors,
    no network request, every <img> loaded, every local link and anchor resolves; the code toggle
    hides the code and the table of contents jumps to its section."""
    shots = smoke_report / "screenshots"
    problems = pagecheck.check_pages(smoke_report, screenshots=shots)
    assert problems == [], "\n".join(map(str, problems))
    assert (shots / "index.png").stat().st_size > 20_000 and (shots / "html__01_preprocessing.png").exists()
    with pagecheck.browser() as b:
        tab = b.new_page(viewport={"width": 1366, "height": 900})
        tab.goto((smoke_report / "html" / "03_training_kws.html").as_uri())
        code = tab.locator(".jp-CodeCell .jp-Cell-inputWrapper").first
        assert code.is_visible()
        tab.click("#labkit-code-toggle")
        assert not code.is_visible() and tab.locator("#labkit-code-toggle").inner_text() == "Show code"
        assert tab.locator(".jp-OutputArea-output img").first.is_visible()  # results stay
        tab.screenshot(path=str(shots / "html__03_training_kws-code-hidden.png"))
        tab.click("#labkit-code-toggle")
        assert code.is_visible()
        link = tab.locator(".labkit-toc a").nth(1)
        target = link.get_attribute("href")
        link.click()
        assert tab.evaluate(f"location.hash") == target
        assert -5 < tab.evaluate(f"document.getElementById({target[1:]!r}).getBoundingClientRect().top") < 200
        tab.goto((smoke_report / "report.html").as_uri())
        assert tab.locator("section.labkit-notebook").count() == len(list((smoke_report / "html").glob("*.html")))
        tab.screenshot(path=str(shots / "report-single-file.png"))
    _keep(shots, "smoke-")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer at {url}")


def test_jupyterlab_runs_notebook_01_and_its_widget_explorer(tmp_path):
    """A real JupyterLab server (loopback, random port, token, kernels on ipc sockets) opens notebook
    01 in Chromium, runs it under the smoke profile, and the feature explorer renders and answers:
    choosing another word redraws its image through the kernel."""
    import papermill as pm

    root = tmp_path / "lab"
    root.mkdir()
    # the smoke profile through papermill's injected-parameters cell, as `labkit report` does: the
    # notebook's own parameters cell keeps PROFILE = "quick"
    pm.execute_notebook(str(REPO / "notebooks" / "01_preprocessing.ipynb"), str(root / "01_preprocessing.ipynb"),
                        parameters={"PROFILE": "smoke"}, prepare_only=True, progress_bar=False)
    runtime = Path(tempfile.mkdtemp(prefix="lk-rt-"))  # short: ipc socket paths are limited to ~100 bytes
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "LABKIT_REPORTS": str(tmp_path / "reports"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True",
           "--KernelManager.transport=ipc", "--LabApp.expose_app_in_browser=True",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None"]
    log = open(tmp_path / "jupyterlab.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    shots = tmp_path / "shots"
    shots.mkdir()
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", proc, timeout=120)
        with pagecheck.browser() as b:
            tab = b.new_page(viewport={"width": 1400, "height": 1000})
            tab.goto(f"http://127.0.0.1:{port}/lab/tree/01_preprocessing.ipynb?token={token}", timeout=120_000)
            tab.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                  "&& window.jupyterapp.shell.currentWidget.sessionContext "
                                  "&& window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=120_000)
            tab.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            select = tab.locator(".jp-OutputArea-output .widget-dropdown select").first
            select.wait_for(state="visible", timeout=300_000)
            # the kernel answers widget events between cells: let the notebook finish first
            tab.wait_for_function("() => { const w = window.jupyterapp.shell.currentWidget;"
                                  " const k = w.sessionContext.session && w.sessionContext.session.kernel;"
                                  " const prompts = Array.from(document.querySelectorAll('.jp-InputPrompt'));"
                                  " return k && k.status === 'idle' && !prompts.some(p => p.textContent.includes('*')); }",
                                  timeout=600_000)
            errors = tab.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
            assert errors.count() == 0, errors.first.inner_text()
            image = tab.locator(".jp-OutputArea-output .widget-output img").first
            select.scroll_into_view_if_needed()
            assert image.evaluate("i => i.complete && i.naturalWidth > 0")
            before = image.get_attribute("src")
            options = select.evaluate("s => Array.from(s.options).map(o => o.value)")
            assert len(options) >= 2 and select.input_value() == options[0]
            select.select_option(options[1])  # the kernel redraws the views for the new word
            tab.wait_for_function("([old]) => { const i = document.querySelector("
                                  "'.jp-OutputArea-output .widget-output img'); return i && i.src !== old "
                                  "&& i.complete && i.naturalWidth > 0; }", arg=[before], timeout=120_000)
            # the feature description under the views: the kernel sends it after the image, so wait for it
            # (textContent: JupyterLab does not render cells scrolled out of view, so their innerText is empty)
            tab.wait_for_function("() => { const o = document.querySelector('.jp-OutputArea-output .widget-output');"
                                  " return o && o.textContent.includes('mfcc_a'); }", timeout=60_000)
            select.scroll_into_view_if_needed()
            tab.screenshot(path=str(shots / "jupyterlab-01-explorer.png"))
            nb = (root / "01_preprocessing.ipynb").read_text()
            assert 'PROFILE = \\"quick\\"' in nb  # the notebook's own parameters cell is untouched
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server we started, and the kernel it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(runtime, ignore_errors=True)
        if shots.exists():
            _keep(shots, "")
    assert "Kernel is running over TCP" not in (tmp_path / "jupyterlab.log").read_text()
