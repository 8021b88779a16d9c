"""Colab: install the kit beside Colab's own TensorFlow, and keep every Colab link in one place.

Every notebook's first code cell has one shape (:func:`setup_cell`): on Colab it installs this
package *without* its dependencies (a few seconds, straight from GitHub) and then calls
:func:`install`, which adds only the dependencies the runtime lacks, never touches Colab's
TensorFlow / tf_keras / Keras / numpy (:data:`CORE`), and prints one line with what it did. Nothing
the kernel has already imported changes, so no runtime restart is needed.

The GitHub repository the notebooks' badges and setup cells point at is :data:`GITHUB_REPO`. A fork
changes that one constant and runs ``python -m labkit.colab --sync`` to rewrite the README's links,
each notebook's badge and each setup cell; ``python -m labkit.colab --check`` (and
tests/test_colab.py) fails while anything disagrees with it.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Iterable, Sequence

from . import config, io

GITHUB_REPO = "tinyml-labkit/tinyml-labkit"
"""``owner/name`` of the GitHub repository the notebooks install from and the Colab badges open."""

BRANCH = "main"
"""The branch the Colab badges open."""

DIST = "tinyml-labkit"
"""This package's distribution name (what pip installs)."""

CORE = ("tensorflow", "tf-keras", "keras", "numpy")
""":func:`install` never installs, upgrades or downgrades these when the runtime already has them:
they are large, compiled, and what Colab's own TensorFlow is built against."""

_BADGE_IMG = "https://colab.research.google.com/assets/colab-badge.svg"
_COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[\w.\-]+/[\w.\-]+/blob/[\w.\-/]+?/notebooks/[\w.\-]+\.ipynb")
_INSTALL_URL = re.compile(r"git\+https://github\.com/[\w.\-]+/[\w.\-]+?(?=[\s\"'`)]|$)")
_SETUP_MARK = '"google.colab" in sys.modules'
_README_SETUP = re.compile(r'^import sys\nif "google\.colab" in sys\.modules:[^\n]*\n(?:    [^\n]*\n)+', re.M)
_IMPORT_LINE = re.compile(r"^(import labkit|from labkit import [\w, ]+)$")


# ------------------------------------------------------------------------------------------ links
def install_url(repo: str | None = None) -> str:
    """The pip URL of the kit on GitHub (``git+https://github.com/<repo>``, default :data:`GITHUB_REPO`)."""
    return f"git+https://github.com/{repo or GITHUB_REPO}"


def install_spec(repo: str | None = None) -> str:
    """The requirement the setup cell hands to pip: ``tinyml-labkit @ git+https://github.com/<repo>``."""
    return f"{DIST} @ {install_url(repo)}"


def colab_url(notebook: str, repo: str | None = None, branch: str | None = None) -> str:
    """The "Open in Colab" address of ``notebooks/<notebook>`` (a file name such as ``00_setup_check.ipynb``)."""
    return (f"https://colab.research.google.com/github/{repo or GITHUB_REPO}/blob/{branch or BRANCH}"
            f"/notebooks/{Path(notebook).name}")


def badge(notebook: str) -> str:
    """The markdown "Open in Colab" badge of a notebook (the first markdown cell of every notebook)."""
    return f"[![Open In Colab]({_BADGE_IMG})]({colab_url(notebook)})"


def setup_cell(imports: Sequence[str] = ("import labkit", "from labkit import config"),
               extras: Sequence[str] = ()) -> str:
    """The source of every notebook's setup cell: on Colab install the kit, then the labkit imports.

    ``imports`` are the cell's last lines (``import labkit`` / ``from labkit import ...``); ``extras``
    are optional dependency groups :func:`install` adds on Colab (e.g. a student edition's graders).
    """
    args = ", ".join(json.dumps(e) for e in extras)
    lines = [
        "import sys",
        f"if {_SETUP_MARK}:  # on Colab: add the kit beside Colab's own TensorFlow (~30 s, no restart)",
        f'    !{{sys.executable}} -m pip install -qq --no-deps "{install_spec()}"',
        f"    import labkit.colab; labkit.colab.install({args})",
        *imports,
    ]
    return "\n".join(lines)


def _extras_of(source: str) -> list[str]:
    m = re.search(r"labkit\.colab\.install\(([^)]*)\)", source)
    return json.loads(f"[{m.group(1)}]") if m else []


def _split_setup_cell(source: str) -> tuple[list[str], list[str]]:
    """(import lines, extras) of a setup cell; raises ValueError if its shape is not :func:`setup_cell`'s."""
    lines = source.rstrip("\n").split("\n")
    imports = []
    while lines and _IMPORT_LINE.match(lines[-1]):
        imports.insert(0, lines.pop())
    extras = _extras_of(source)
    if not imports or "\n".join(lines) != setup_cell((), extras).rstrip("\n"):
        raise ValueError("the setup cell does not have the shape of labkit.colab.setup_cell()")
    return imports, extras


def _cell_text(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _set_cell_text(cell: dict, text: str) -> None:
    cell["source"] = text.splitlines(keepends=True)


def _notebooks(root: Path) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def check_links(root: Path | None = None) -> list[str]:
    """Every place that names the GitHub repository, checked against :data:`GITHUB_REPO`: each
    notebook's badge (first markdown cell) and setup cell, and the README's Colab links. Returns the
    problems found (empty when all agree). Used by tests/test_colab.py and ``python -m labkit.colab``."""
    root = Path(root or config.repo_root())
    problems = []
    notebooks = _notebooks(root)
    if not notebooks:
        return [f"no numbered notebooks under {root / 'notebooks'}"]
    for path in notebooks:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        first_md = next((_cell_text(c) for c in cells if c["cell_type"] == "markdown"), "")
        if badge(path.name) not in first_md:
            problems.append(f"{path.name}: the first markdown cell lacks the badge {badge(path.name)}")
        elif _COLAB_LINK.findall(first_md) != [colab_url(path.name)]:
            problems.append(f"{path.name}: the first markdown cell has other Colab links: {_COLAB_LINK.findall(first_md)}")
        setups = [c for c in cells if c["cell_type"] == "code" and _SETUP_MARK in _cell_text(c)]
        first_code = next((c for c in cells if c["cell_type"] == "code"), None)
        if len(setups) != 1 or setups[0] is not first_code:
            problems.append(f"{path.name}: the first code cell must be the (only) setup cell")
            continue
        try:
            _split_setup_cell(_cell_text(setups[0]))
        except ValueError as exc:
            problems.append(f"{path.name}: {exc}; expected e.g.\n{setup_cell()}")
    readme = (root / "README.md").read_text(encoding="utf-8")
    links = _COLAB_LINK.findall(readme)
    wanted = [colab_url(p.name) for p in notebooks]
    if sorted(links) != sorted(wanted):
        problems.append(f"README.md: Colab links {sorted(set(links) - set(wanted))} should be "
                        f"{sorted(set(wanted) - set(links))}")
    blocks = _README_SETUP.findall(readme)
    if blocks != [setup_cell(()) + "\n"]:
        problems.append(f"README.md: its copy of the setup cell should read\n{setup_cell(())}")
    urls = set(_INSTALL_URL.findall(readme)) - {install_url()}
    if urls:
        problems.append(f"README.md: install URL(s) {sorted(urls)} should be {install_url()}")
    return problems


def _write_json(path: Path, nb: dict) -> None:
    io.atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


def sync_links(root: Path | None = None) -> list[Path]:
    """Rewrite every notebook's badge and setup cell and the README's Colab links to point at
    :data:`GITHUB_REPO` / :data:`BRANCH` (what a fork runs after changing them). Returns the files
    changed. Used by ``python -m labkit.colab --sync``."""
    root = Path(root or config.repo_root())
    changed = []
    for path in _notebooks(root):
        nb = json.loads(path.read_text(encoding="utf-8"))
        before = json.dumps(nb)
        for cell in nb["cells"]:
            text = _cell_text(cell)
            if cell["cell_type"] == "markdown" and _COLAB_LINK.search(text):
                _set_cell_text(cell, _COLAB_LINK.sub(colab_url(path.name), text))
            elif cell["cell_type"] == "code" and _SETUP_MARK in text:
                imports = [ln for ln in text.splitlines() if _IMPORT_LINE.match(ln)] or ["import labkit"]
                _set_cell_text(cell, setup_cell(imports, _extras_of(text)))
        if json.dumps(nb) != before:
            _write_json(path, nb)
            changed.append(path)
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = _COLAB_LINK.sub(lambda m: colab_url(m.group(0).rsplit("/", 1)[-1]), text)
    new = _INSTALL_URL.sub(install_url(), new)
    new = _README_SETUP.sub(lambda m: setup_cell(()) + "\n", new)
    if new != text:
        io.atomic_write_text(readme, new)
        changed.append(readme)
    return changed


# ---------------------------------------------------------------------------------------- install
@dataclasses.dataclass
class InstallReport:
    """What :func:`install` did: packages added / changed (``{name: (old, new)}``), the :data:`CORE`
    packages kept as the runtime had them, notes (one clause each), seconds, and pip's full log."""

    added: dict[str, str]
    changed: dict[str, tuple[str, str]]
    kept: dict[str, str]
    notes: list[str]
    seconds: float
    restart_needed: list[str]
    log: Path | None = None

    def line(self) -> str:
        """The one line the setup cell prints."""
        direct = {n: v for n, v in self.added.items() if n in _direct_names()}
        words = ", ".join(f"{n} {v}" for n, v in direct.items())
        extra = len(self.added) - len(direct)
        if words and extra:
            words += f" and {extra} of their dependencies"
        elif extra:
            words = f"{extra} dependencies"
        parts = [f"{DIST} {_version(DIST) or '?'} is ready: "
                 + (f"added {words} in {self.seconds:.0f} s" if words else "nothing to add")]
        if self.changed:
            parts.append("changed " + ", ".join(f"{n} {a} -> {b}" for n, (a, b) in self.changed.items()))
        if self.kept:
            parts.append("kept " + ", ".join(f"{n} {v}" for n, v in self.kept.items()))
        parts += self.notes
        if self.restart_needed:
            parts.append(f"RESTART NEEDED ({', '.join(self.restart_needed)} changed after being imported): "
                         "Runtime > Restart session, then run this cell again")
        return "; ".join(parts) + "."


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _installed() -> dict[str, str]:
    out = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(_canon(name), dist.version)
    return out


def _requirement_cls():
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - packaging ships with pip and with TensorFlow
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def requirements(extras: Iterable[str] = ()) -> list:
    """This package's requirements (``packaging`` Requirement objects) that apply to this interpreter
    and platform, with the given extras. Used by :func:`install`."""
    Requirement = _requirement_cls()
    try:
        raw = metadata.requires(DIST) or []
    except metadata.PackageNotFoundError:
        raise RuntimeError(f"{DIST} is not installed: the setup cell's pip step must run first") from None
    wanted = [""] + list(extras)
    out = []
    for text in raw:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted):
            out.append(req)
    return out


def _direct_names() -> set[str]:
    try:
        return {_canon(r.name) for r in requirements(_all_extras())}
    except RuntimeError:
        return set()


def _all_extras() -> list[str]:
    try:
        return metadata.metadata(DIST).get_all("Provides-Extra") or []
    except metadata.PackageNotFoundError:
        return []


def _loaded_distributions() -> set[str]:
    """Distributions whose modules this interpreter has already imported (changing them needs a restart)."""
    top = {name.split(".")[0] for name in list(sys.modules)}
    mapping = metadata.packages_distributions()
    return {_canon(d) for mod in top for d in mapping.get(mod, ())}


def _pip_arg(req, bare: bool = False) -> str:
    name = req.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else "")
    if req.url:
        return f"{name} @ {req.url}"
    return name if bare else f"{name}{req.specifier}"


def plan(extras: Iterable[str] = ()) -> tuple[list[str], dict[str, str], list[str]]:
    """What :func:`install` would hand to pip: (requirements to install, :data:`CORE` packages kept as
    they are, notes on CORE packages outside the tested range). Reads installed metadata only."""
    installed = _installed()
    core = {_canon(n) for n in CORE}
    todo, kept, notes = [], {}, []
    for req in requirements(extras):
        name = _canon(req.name)
        have = installed.get(name)
        if name in core and have is not None:
            kept[req.name] = have
            if not req.specifier.contains(have, prereleases=True):
                notes.append(f"{req.name} {have} is outside the tested range {req.specifier}: kept it "
                             "(results may differ from the course's)")
            continue
        if have is None or not req.specifier.contains(have, prereleases=True):
            todo.append(req)
    # with a CORE package outside the range, let pip match the others (e.g. tf-keras) to what the runtime has
    return [_pip_arg(r, bare=bool(notes) and _canon(r.name) in core) for r in todo], kept, notes


def install(*extras: str, quiet: bool = False) -> InstallReport:
    """Add the dependencies this runtime lacks (all of them on Colab but TensorFlow, tf_keras, numpy,
    pandas ...), with pip, keeping the :data:`CORE` packages exactly as they are (a pip constraint), and
    print one line: what was added, what was kept, whether a restart is needed (never on Colab's own set,
    as tests/test_colab.py checks). ``extras`` names optional dependency groups of the kit to add too.
    Raises RuntimeError with pip's last lines if pip fails. Used by every notebook's setup cell on Colab.
    """
    t0 = time.perf_counter()
    todo, kept, notes = plan(extras)
    before = _installed()
    loaded = _loaded_distributions()
    log_path = None
    if todo:
        pins = [f"{n}=={v}" for n, v in before.items() if n in {_canon(c) for c in CORE}]
        with tempfile.TemporaryDirectory() as tmp:
            constraints = Path(tmp) / "constraints.txt"
            constraints.write_text("\n".join(pins) + "\n")
            cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                   "--progress-bar", "off", "-c", str(constraints), *todo]
            proc = subprocess.run(cmd, capture_output=True, text=True)
        log_path = config.data_dir() / "colab-install.log"
        log_path.write_text("$ " + " ".join(cmd) + "\n" + proc.stdout + proc.stderr)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"pip could not install the kit's dependencies (full log: {log_path}):\n{tail}")
        if "dependency conflicts" in proc.stderr:
            notes.append(f"pip reports conflicts with other preinstalled packages (see {log_path})")
        importlib.invalidate_caches()
    after = _installed()
    if enable_widgets():
        notes.append(f"ipywidgets {after.get('ipywidgets')}: switched on Colab's custom widget manager")
    added = {n: v for n, v in after.items() if n not in before}
    changed = {n: (before[n], v) for n, v in after.items() if n in before and before[n] != v}
    report = InstallReport(added=added, changed=changed, kept=kept, notes=notes,
                           seconds=time.perf_counter() - t0,
                           restart_needed=sorted(n for n in changed if n in loaded), log=log_path)
    if not quiet:
        print(report.line())
    return report


# -------------------------------------------------------------------------------- runtime notes
def enable_widgets() -> bool:
    """On Colab with ipywidgets 8, switch on Colab's custom widget manager (without it ipywidgets 8 widgets,
    progress bars included, do not render there; Colab's own ipywidgets 7.7 renders natively). Returns
    whether it did; does nothing elsewhere. Used by :func:`install` and the feature explorer (notebook 01)."""
    version = _version("ipywidgets")
    if not config.on_colab() or version is None or int(version.split(".")[0]) < 8:
        return False
    try:
        from google.colab import output

        output.enable_custom_widget_manager()
    except Exception:  # only a real Colab runtime has it
        return False
    return True


def runtime_notes() -> list[str]:
    """One line for each way this runtime differs from the course's reference (the pinned set on a
    Linux x86-64 CPU): Colab's folders, a TensorFlow outside the tested range, a GPU, no TFLite Micro
    runtime. Empty when nothing differs. Used by notebook 00."""
    import platform

    notes = []
    if config.on_colab():
        notes.append(f"Colab: data cache {config.data_dir()}, reports {config.reports_dir()}; what is under /content "
                     "vanishes with the runtime (set LABKIT_DATA to a Drive folder to keep downloads).")
    tf_version = _version("tensorflow")
    try:
        spec = next((r.specifier for r in requirements() if _canon(r.name) == "tensorflow"), None)
    except RuntimeError:  # labkit used from a checkout that was never pip-installed
        spec = None
    if tf_version and spec is not None and not spec.contains(tf_version, prereleases=True):
        notes.append(f"TensorFlow {tf_version} is outside the range the kit is tested with ({spec}): "
                     "numbers may differ from the course's, and some cells may fail.")
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    except Exception:  # pragma: no cover - reported by the stack check instead
        gpus = []
    if gpus:
        notes.append(f"{len(gpus)} GPU(s): Keras training and timing use it, TFLite / TFLite Micro latency stays "
                     "on the CPU, so Keras-vs-TFLite timings are not comparable with the course's CPU numbers.")
    if importlib.util.find_spec("tflite_micro") is None:
        notes.append(f"No TFLite Micro runtime for {platform.system()} {platform.machine()} (its wheels exist for "
                     "Linux x86-64 only, Colab included): the TFLM check below and the TFLM sections of "
                     "notebooks 02 and 05 cannot run here.")
    return notes


# ------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m labkit.colab --check | --sync``: check or rewrite every Colab link and setup cell."""
    parser = argparse.ArgumentParser(prog="python -m labkit.colab", description=main.__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="list every badge, setup cell or README link "
                       f"that disagrees with GITHUB_REPO={GITHUB_REPO!r} (exit 1 if any)")
    group.add_argument("--sync", action="store_true", help="rewrite them to GITHUB_REPO / BRANCH")
    parser.add_argument("--root", type=Path, default=None, help="the checkout (default: this one)")
    args = parser.parse_args(argv)
    if args.sync:
        for path in sync_links(args.root):
            print(f"rewrote {path}")
    problems = check_links(args.root)
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"every badge, setup cell and README link points at {GITHUB_REPO} ({BRANCH})")
    return 1 if problems else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
