"""A Colab-like Python environment for tests/test_colab.py (standard library only).

    python tests/colab_env.py build     # build (or reuse) the cached base venv, print its path and cost
    python tests/colab_env.py python    # print the Python 3.13 interpreter it would use

The *base* is a Python 3.13 venv holding Colab's own versions of the packages the kit meets there
(:data:`COLAB_PACKAGES`, from Colab's published package list of 2026-08). It is built once and cached
under ``<data cache>/colab-base/<key>/`` (key = interpreter version + package list), because a cold
build downloads ~1 GB; ``.ci/run`` builds it before the test suite and reports that cost separately.
Each test run then takes a private copy made of hard links (:func:`fresh_copy`, ~1 s), so the
base stays exactly what Colab ships while pip changes the copy.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

COLAB_PACKAGES = (
    "tensorflow==2.20.0", "tf-keras==2.20.1", "keras==3.13.2", "numpy==2.1.3", "pandas==2.2.3",
    "scipy==1.16.3", "matplotlib==3.10.0", "librosa==0.11.0", "ipykernel==6.17.1", "ipywidgets==7.7.1",
    "wrapt==2.3.0",
)
"""Colab's versions (googlecolab/backend-info pip-freeze.txt, 2026-08-19) of what labkit meets there."""

PYTHON_VERSION = "3.13"


def packages() -> tuple[str, ...]:
    """:data:`COLAB_PACKAGES` with ``$LABKIT_COLAB_OVERRIDES`` applied (space-separated ``name==version``,
    e.g. ``"tensorflow==2.21.0 tf-keras==2.21.0"``: how other TensorFlow versions were measured)."""
    overrides = {p.split("==")[0].lower(): p for p in os.environ.get("LABKIT_COLAB_OVERRIDES", "").split()}
    out = [overrides.pop(p.split("==")[0].lower(), p) for p in COLAB_PACKAGES]
    return tuple(out + sorted(overrides.values()))


def versions(pkgs: tuple[str, ...] | None = None) -> dict[str, str]:
    """``{name: version}`` of :func:`packages`."""
    return dict(p.lower().split("==") for p in (pkgs or packages()))
_DONE = ".colab-base-complete"


def pip_env() -> dict[str, str]:
    """The environment for pip in the Colab-like venvs: no pip config files from this machine (Colab has
    none), so pip talks to PyPI like Colab does and prints nothing about local indexes."""
    env = dict(os.environ)
    env["PIP_CONFIG_FILE"] = os.devnull
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_CONSTRAINT", "PYTHONPATH"):
        env.pop(var, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def find_python(version: str = PYTHON_VERSION) -> str | None:
    """A working Python ``version`` interpreter: ``$LABKIT_COLAB_PYTHON``, pyenv's (``$PYENV_ROOT`` or
    ~/.pyenv; its shims may point elsewhere) or ``python3.13`` on PATH. None when there is none (the
    Colab-like test then skips)."""
    env = os.environ.get("LABKIT_COLAB_PYTHON")
    if env:  # an explicit choice (another version too, e.g. 3.12 to measure TensorFlow 2.19)
        try:
            _python_version(env)
            return env
        except (OSError, subprocess.CalledProcessError):
            return None
    candidates = []
    for root in filter(None, [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]):
        candidates += sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")),
                             reverse=True)
    candidates.append(shutil.which(f"python{version}"))
    for python in filter(None, candidates):
        try:
            if _python_version(python).rsplit(".", 1)[0] == version:
                return python
        except (OSError, subprocess.CalledProcessError):
            continue
    return None


def _python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def data_root() -> Path:
    """The data cache the kit uses (``$LABKIT_DATA`` or ``<repo>/data``)."""
    return Path(os.environ.get("LABKIT_DATA") or REPO / "data")


def base_key(python: str, pkgs: tuple[str, ...]) -> str:
    text = json.dumps([_python_version(python), sorted(pkgs)])
    return f"py{_python_version(python)}-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def base_dir(python: str, pkgs: tuple[str, ...] | None = None) -> Path:
    """Where the cached base venv for this interpreter and package list lives."""
    return data_root() / "colab-base" / base_key(python, pkgs or packages())


def ensure_base(python: str, pkgs: tuple[str, ...] | None = None, *, log=print) -> tuple[Path, float]:
    """The base venv (built now if missing or unfinished) and the seconds its build took (0.0 if cached)."""
    pkgs = pkgs or packages()
    dest = base_dir(python, pkgs)
    if (dest / _DONE).exists():
        return dest, 0.0
    t0 = time.perf_counter()
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    log(f"building the Colab-like base venv in {dest} (Python {_python_version(python)}: "
        f"{' '.join(pkgs)}) ...")
    subprocess.run([python, "-m", "venv", str(dest)], check=True)
    py = str(dest / "bin" / "python")
    env = pip_env()
    subprocess.run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True, env=env)
    # setuptools: Colab has it (TensorFlow depends on it), and the setup cell builds the kit with it
    proc = subprocess.run([py, "-m", "pip", "install", "-q", "setuptools", *pkgs], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building the Colab-like base failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    (dest / _DONE).write_text(json.dumps({"packages": pkgs, "seconds": time.perf_counter() - t0}))
    return dest, time.perf_counter() - t0


def fresh_copy(base: Path, dest: Path) -> Path:
    """A private copy of the base venv made of hard links (a plain copy where links fail): pip replaces
    files instead of writing into them, so changes to the copy never reach the base."""
    try:
        subprocess.run(["cp", "-al", str(base), str(dest)], check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError):
        shutil.copytree(base, dest, symlinks=True)
    (dest / _DONE).unlink(missing_ok=True)
    return dest


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "build"
    python = find_python()
    if command == "python":
        print(python or "")
        return 0 if python else 1
    if command != "build":
        print(__doc__)
        return 2
    if python is None:
        print(f"no Python {PYTHON_VERSION} interpreter found: the Colab-like test will skip")
        return 0
    base, seconds = ensure_base(python)
    size = sum(f.stat().st_size for f in base.rglob("*") if f.is_file() and not f.is_symlink())
    state = f"built in {seconds:.0f} s (cold)" if seconds else "reused from the cache (warm)"
    print(f"Colab-like base venv {base}: {state}, {size / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
