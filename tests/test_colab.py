"""Colab: links and setup cells agree with labkit.colab, Colab paths, and a Colab-like run.

The Colab-like run (``test_colab_like_install_and_notebooks``) takes a fresh copy of a Python 3.13
venv holding Colab's own TensorFlow 2.20 / tf_keras / numpy / pandas / ipywidgets 7.7 ...
(tests/colab_env.py; the base is cached, ``.ci/run`` builds it first), starts a kernel in it that
looks like Colab's (``google.colab`` imported at start), runs the notebooks' setup cell against this
checkout (a ``git+file://`` snapshot standing in for the GitHub URL) and then notebooks 00, 01 and 03
under the smoke profile. It skips where no Python 3.13 interpreter exists.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit import colab, config

REPO = Path(__file__).resolve().parent.parent
import colab_env  # tests/colab_env.py (standard library only; .ci/run uses it too)

COLAB_NOTEBOOKS = ("00_setup_check", "01_preprocessing", "03_training_kws")
"""The notebooks the Colab-like run executes (``$LABKIT_COLAB_NOTEBOOKS=all`` runs every one: how the
TensorFlow range was measured)."""
ONE_LINE = re.compile(r"^tinyml-labkit \S+ is ready: (added .+ in \d+ s|nothing to add)(; [^\n]+)?\.$")


# ------------------------------------------------------------------------------ links, cells, paths
def test_every_badge_setup_cell_and_readme_link_matches_the_constant():
    assert colab.check_links(REPO) == []
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        text = path.read_text()
        assert text.count(colab.install_spec()) == 1 and text.count(colab.colab_url(path.name)) == 1


def test_a_fork_changes_one_constant_and_syncs(tmp_path, monkeypatch):
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    monkeypatch.setattr(colab, "GITHUB_REPO", "someone/kit-fork")
    problems = colab.check_links(tmp_path)
    n = len(list((tmp_path / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    assert len(problems) == 2 * n + 3  # every badge and setup cell; the README's links, setup cell and URL
    changed = colab.sync_links(tmp_path)
    assert len(changed) == n + 1 and colab.check_links(tmp_path) == []
    nb = (tmp_path / "notebooks" / "03_training_kws.ipynb").read_text()
    assert "git+https://github.com/someone/kit-fork" in nb and "tinyml-labkit/tinyml-labkit" not in nb
    readme = (tmp_path / "README.md").read_text()
    assert "github/someone/kit-fork/blob/main/notebooks/03_training_kws.ipynb" in readme
    assert "git+https://github.com/someone/kit-fork" in readme and "tinyml-labkit/tinyml-labkit" not in readme
    # the labkit imports (the architecture's business) survive a sync untouched
    before = json.loads((REPO / "notebooks" / "03_training_kws.ipynb").read_text())["cells"][1]["source"][-2:]
    assert json.loads(nb)["cells"][1]["source"][-2:] == before
    assert colab.sync_links(tmp_path) == []  # idempotent


def test_setup_cell_shape():
    cell = colab.setup_cell(["import labkit", "from labkit import config, data"], extras=["course"])
    assert colab._split_setup_cell(cell) == (["import labkit", "from labkit import config, data"], ["course"])
    assert 'labkit.colab.install("course")' in cell and "--no-deps" in cell
    assert len(colab.setup_cell().splitlines()) == 6
    with pytest.raises(ValueError, match="shape"):
        colab._split_setup_cell(cell.replace("--no-deps ", ""))


def test_colab_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("LABKIT_DATA", raising=False)
    monkeypatch.delenv("LABKIT_REPORTS", raising=False)
    monkeypatch.setattr(config, "COLAB_HOME", tmp_path / "content" / "tinyml-labkit")
    monkeypatch.setattr(config, "repo_root", lambda: tmp_path / "site-packages")  # installed, not a checkout
    assert not config.on_colab()
    assert config.data_dir() == tmp_path / "site-packages" / "data"
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    assert config.on_colab()
    assert config.data_dir() == tmp_path / "content" / "tinyml-labkit" / "data"
    assert config.reports_dir() == tmp_path / "content" / "tinyml-labkit" / "reports"
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "drive"))
    assert config.data_dir() == tmp_path / "drive"


def test_install_plan_keeps_core_packages(monkeypatch):
    # the pinned dev set satisfies every range: nothing to install, TensorFlow and numpy kept
    todo, kept, notes = colab.plan()
    assert todo == [] and notes == []
    assert kept["tensorflow"].startswith("2.21") and "numpy" in kept
    # a runtime with an older TensorFlow and no tf_keras: TF kept (with a note), tf-keras left to pip to match it
    installed = dict(colab._installed(), tensorflow="2.18.0")
    installed.pop("tf-keras")
    monkeypatch.setattr(colab, "_installed", lambda: installed)
    todo, kept, notes = colab.plan()
    assert todo == ["tf-keras"] and kept["tensorflow"] == "2.18.0"
    assert len(notes) == 1 and "tensorflow 2.18.0 is outside the tested range" in notes[0]


def test_widgets_on_colab_with_ipywidgets_8_switch_on_the_custom_manager(monkeypatch):
    calls = []
    fake = type(sys)("google.colab")
    fake.output = type(sys)("google.colab.output")
    fake.output.enable_custom_widget_manager = lambda: calls.append(1)
    assert not colab.enable_widgets()  # not on Colab: nothing to do
    monkeypatch.setitem(sys.modules, "google.colab", fake)
    monkeypatch.setattr(colab, "_version", lambda name: "7.7.1")
    assert not colab.enable_widgets() and calls == []  # Colab renders its own ipywidgets 7 natively
    monkeypatch.setattr(colab, "_version", lambda name: "8.1.9")
    assert colab.enable_widgets() and calls == [1]


def test_install_with_nothing_missing_runs_no_pip(monkeypatch, capsys):
    def no_pip(*args, **kwargs):
        raise AssertionError(f"pip should not run: {args}")

    monkeypatch.setattr(colab.subprocess, "run", no_pip)
    report = colab.install()
    line = capsys.readouterr().out.strip()
    assert ONE_LINE.match(line) and "nothing to add" in line, line
    assert report.added == {} and report.changed == {} and report.restart_needed == []
    assert f"kept tensorflow {report.kept['tensorflow']}" in line


# ---------------------------------------------------------------------------------- Colab-like run
def _snapshot(dest: Path) -> str:
    """This checkout's files (tracked + new, not ignored; as they are on disk) as a one-commit git repo:
    the ``git+file://`` URL that stands in for GitHub."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "snapshot"], cwd=dest, check=True)
    return f"git+file://{dest}"


def _kernel(tmp: Path, venv: Path, env: dict[str, str]) -> str:
    """A kernelspec running the venv's Python with a Colab-like start-up (google.colab imported)."""
    startup = tmp / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text(
        "import sys, types\n"
        "sys.modules['google.colab'] = types.ModuleType('google.colab')  # what Colab's kernel has at start\n")
    spec = tmp / "jupyter" / "kernels" / "colab-like"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like Python 3.13", "language": "python",
        "env": {**env, "IPYTHONDIR": str(tmp / "ipython")},
    }))
    return "colab-like"


def _run(path: Path, out: Path, kernel: str, url: str, cwd: Path) -> dict:
    """Execute one notebook (setup cell pointed at ``url``, PROFILE="smoke" injected after the
    parameters cell, as papermill does) and return its executed cells and timings."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(str(path), as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert setup.source.count(colab.install_spec()) == 1, "the setup cell must install labkit.colab.install_spec()"
    setup.source = setup.source.replace(colab.install_url(), url)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell('PROFILE = "smoke"\nSEED = 0'))
    t0 = time.perf_counter()
    error = ""
    try:
        NotebookClient(nb, timeout=900, kernel_name=kernel, resources={"metadata": {"path": str(cwd)}}).execute()
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
    nbformat.write(nb, str(out / path.name))
    timing = setup.metadata.get("execution", {})
    setup_s = None
    if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
        from datetime import datetime

        parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
        setup_s = (parse(timing["shell.execute_reply"]) - parse(timing["iopub.execute_input"])).total_seconds()
    return {"nb": nb, "setup": setup, "setup_seconds": setup_s, "seconds": time.perf_counter() - t0, "error": error}


def _streams(cell, name: str) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"
                   and o.get("name") == name)


def _outputs(nb) -> list[dict]:
    return [o for c in nb.cells for o in c.get("outputs", [])]


def _dist_file(venv: Path, package: str) -> Path:
    return next((venv / "lib").glob(f"python3.*/site-packages/{package}/__init__.py"))


def _venv_version(venv: Path, dist: str) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
                          capture_output=True, text=True, check=True).stdout.strip()


_EXPLORER_CHECK = r"""
import sys
import labkit, numpy as np, ipywidgets
from labkit import features, widgets
clips = {"a": (0.1 * np.random.default_rng(0).standard_normal((2, 16000))).astype("float32")}
box = widgets.explorer(clips, cfg="logmel")
out = box.children[-1]
kinds = [sorted(o.get("data", {"text/plain": 0})) for o in out.outputs]
assert any("text/html" in k for k in kinds), kinds          # the audio player
assert any("image/png" in k for k in kinds), kinds          # the figure
assert "49x40x1" in out.outputs[-1]["text"], out.outputs
box.children[1].children[2].value = 16                       # mel-bins slider: re-rendered
assert "16 HTK mel bands" in out.outputs[-1]["text"], out.outputs
box.children[0].children[1].value = 1                        # second clip
print("explorer ok with ipywidgets", ipywidgets.__version__)
"""


@pytest.mark.slow
def test_colab_like_install_and_notebooks(tmp_path, monkeypatch, capsys):
    python = colab_env.find_python()
    if python is None:
        pytest.skip(f"no Python {colab_env.PYTHON_VERSION} interpreter (set LABKIT_COLAB_PYTHON or install it with pyenv)")

    def say(text: str) -> None:  # shown in the test run's output (not captured): the measured costs
        with capsys.disabled():
            print(text, flush=True)

    t0 = time.perf_counter()
    want = colab_env.versions()  # Colab's versions (or $LABKIT_COLAB_OVERRIDES, to measure others)
    base, build_s = colab_env.ensure_base(python, log=say)
    venv = colab_env.fresh_copy(base, tmp_path / "venv")
    copy_s = time.perf_counter() - t0 - build_s
    url = _snapshot(tmp_path / "src")

    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_CONSTRAINT", "LABKIT_SHARED_DATA"):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "content"  # the notebooks' working folder, like Colab's /content
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PIP_CONFIG_FILE": os.devnull,
        "LABKIT_DATA": str(work / "tinyml-labkit" / "data"),
        "LABKIT_REPORTS": str(work / "tinyml-labkit" / "reports"),
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    kernel = _kernel(tmp_path, venv, env)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    out = tmp_path / "executed"
    out.mkdir()
    work.mkdir()
    tf_file, np_file = _dist_file(venv, "tensorflow"), _dist_file(venv, "numpy")
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tf_file, np_file)}

    names = COLAB_NOTEBOOKS
    if os.environ.get("LABKIT_COLAB_NOTEBOOKS") == "all":
        names = tuple(p.stem for p in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    runs = {}
    for name in names:
        runs[name] = _run(tmp_path / "src" / "notebooks" / f"{name}.ipynb", out, kernel, url, work)
        assert not runs[name]["error"], f"{name} failed in the Colab-like kernel: {runs[name]['error']}"

    # the first setup cell installed the kit quietly: exactly one line, nothing on stderr, no restart
    first = runs[names[0]]["setup"]
    line = _streams(first, "stdout").strip()
    assert ONE_LINE.match(line), line
    assert f"kept tensorflow {want['tensorflow']}, tf-keras {want['tf-keras']}, numpy {want['numpy']}" in line, line
    assert "RESTART" not in line, line
    assert "tensorflow-model-optimization 0.8.1" in line and "tflite-micro" in line, line
    assert _streams(first, "stderr").strip() == "", _streams(first, "stderr")
    # ... and neither TensorFlow nor numpy was reinstalled: same versions, same files (same inodes)
    for dist in ("tensorflow", "tf-keras", "keras", "numpy", "pandas", "ipywidgets", "ipykernel"):
        assert _venv_version(venv, dist) == want[dist], dist
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tf_file, np_file)} == before
    log = (work / "tinyml-labkit" / "data" / "colab-install.log").read_text()
    installed = re.search(r"^Successfully installed (.+)$", log, re.M).group(1).split()
    assert not [p for p in installed if re.match(r"(tensorflow|numpy|tf-keras|keras)-\d", p)], installed
    # running the setup cell again (the next notebooks) adds nothing
    for name in names[1:]:
        again = _streams(runs[name]["setup"], "stdout").strip()
        assert ONE_LINE.match(again) and "nothing to add" in again, again

    # what the notebooks did in the Colab-like runtime
    nb00, nb01, nb03 = (runs[n]["nb"] for n in COLAB_NOTEBOOKS)  # (always among the notebooks run)
    results = json.loads((work / "tinyml-labkit" / "reports" / "results" / "00_setup_check.json").read_text())
    assert results["versions"]["python"] == colab_env._python_version(python)
    assert results["versions"]["tensorflow"] == want["tensorflow"]
    assert all(row["ok"] for row in results["rows"]), results["rows"]
    notes = next(c for c in nb00.cells if "runtime_notes()" in c.source)
    assert _streams(notes, "stdout").startswith(f"Colab: data cache {work / 'tinyml-labkit' / 'data'}, reports ")
    outs01 = _outputs(nb01)
    assert any("<audio" in o.get("data", {}).get("text/html", "") for o in outs01), "no audio player"
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outs01), "no widget"
    assert sum("image/png" in o.get("data", {}) for o in outs01) >= 3, "too few figures"
    # the synthetic keyword set was generated on first use under the data cache, with a progress bar
    assert list((work / "tinyml-labkit" / "data" / "synthetic").glob("*/manifest.json"))
    progress = [o for o in outs01 + _outputs(nb03) if "synthesising keywords" in json.dumps(o)]
    assert progress, "no progress bar for the synthetic set"
    assert (work / "tinyml-labkit" / "reports" / "results" / "03_kws_training.json").exists()

    # the ipywidgets explorer reacts to its controls with Colab's ipywidgets 7.7
    check = subprocess.run([str(venv / "bin" / "python"), "-c", _EXPLORER_CHECK], capture_output=True, text=True,
                           env={**os.environ, **env}, timeout=300)
    assert check.returncode == 0, check.stderr[-3000:]
    assert f"explorer ok with ipywidgets {want['ipywidgets']}" in check.stdout

    install_s = runs[names[0]]["setup_seconds"]
    say("")
    say(f"Colab-like run (Python {results['versions']['python']}, TensorFlow {want['tensorflow']}, "
        f"numpy {want['numpy']}, ipywidgets {want['ipywidgets']}): base venv {'built in %.0f s (cold)' % build_s if build_s else 'cached (warm)'}, "
        f"copied in {copy_s:.1f} s")
    say(f"  setup cell (first install) {install_s:.1f} s: {line}")
    for name in names:
        r = runs[name]
        say(f"  {name}: ran in {r['seconds']:.0f} s (setup cell {r['setup_seconds']:.1f} s)")
    assert install_s < 120, f"the setup cell took {install_s:.0f} s"  # ~25-55 s measured under load
