"""Incremental regeneration for ``labkit report``: what a notebook's last run depended on, and whether
it still holds.

A notebook is run again only when something it depends on changed since its last *successful* run:

* its code and markdown (cell types, sources and tags; outputs and execution counts are ignored, so
  running or stripping it in JupyterLab changes nothing);
* the parameters papermill injects (profile, seed, overrides) and labkit's environment variables;
* labkit's source (every module a notebook can import; the report side, which only renders, is left
  out) and the versions of the installed packages;
* every file and folder its kernel read while it ran: datasets, cached models, results recorded by
  upstream notebooks, the search database. The kernel records them with a Python audit hook
  (:func:`install_read_trace`, started by the report through ``IPKernelApp.exec_lines``); each file
  is remembered by size, modification time and SHA-256, so a file touched but unchanged does not
  trigger a run, and a model retrained upstream does;
* its own outputs (executed notebook, recorded results, figures) must still be there, unchanged.

Reads done in C without going through Python's ``open`` (HDF5 inside ``h5py``, TensorFlow's file
system) are not seen; labkit's model cache is still covered because loading a model reads the
``meta.json`` beside it, and a new cache entry is a new folder.

State lives in ``reports/manifest.json`` (one entry per notebook, written atomically after each
notebook). A failed run removes the notebook's entry: a failure is never cached as good.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import config, results

MANIFEST = "manifest.json"
FORMAT = 1

REPORT_SIDE = frozenset({"report.py", "report_pages.py", "report_index.py", "manifest.py", "pagecheck.py", "cli.py"})
"""labkit modules that run the report but that no notebook imports: changing them re-renders, never re-runs."""

ENV_VARS = ("LABKIT_DATA", "LABKIT_SHARED_DATA", "TF_USE_LEGACY_KERAS", "TF_ENABLE_ONEDNN_OPTS", "CUDA_VISIBLE_DEVICES")
"""Environment variables that change what a notebook computes or reads."""

_HASH_LIMIT = 1 << 30  # files above 1 GiB are checked by size and mtime only
_TRACE_EVENTS = frozenset({"open", "os.listdir", "os.scandir", "sqlite3.connect"})


# ----------------------------------------------------------------------------- kernel side
def install_read_trace(log_path: str, exclude: Iterable[str] = (), keep: Iterable[str] = (),
                       unlisted: Iterable[str] = ()) -> None:
    """Record every file and folder this process reads into ``log_path`` (``file\t<path>`` or
    ``dir\t<path>`` lines, each once). Called in the notebook's kernel by ``labkit report`` before the
    first cell. Paths under ``exclude`` (the Python installation, /proc, temporary files ...) are not
    inputs, those under ``keep`` (the report and data folders) are: the longest matching prefix decides,
    so a report under /tmp is kept while its ``logs/`` can still be excluded. Listings of the folders in
    ``unlisted`` (the notebooks' folder, whose notebooks have their own digest) are ignored.
    """
    rules = sorted([(os.path.join(os.path.abspath(p), ""), True) for p in exclude if p]
                   + [(os.path.join(os.path.abspath(p), ""), False) for p in keep if p], key=lambda r: -len(r[0]))
    quiet_dirs = {os.path.abspath(p) for p in unlisted}
    import threading

    seen: set[tuple[str, str]] = set()
    out = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - open for the kernel's life
    lock, local = threading.Lock(), threading.local()  # reads in other threads are recorded too

    def hook(event: str, args: tuple) -> None:
        if event not in _TRACE_EVENTS or getattr(local, "busy", False):
            return
        local.busy = True
        try:
            path = args[0] if args else None
            if event == "open":
                mode, flags = args[1], args[2]
                if isinstance(path, int) or path is None:
                    return
                writing_only = ("r" not in mode and "+" not in mode) if isinstance(mode, str) else \
                    (flags & os.O_ACCMODE) == os.O_WRONLY
                if writing_only:
                    return
                kind = "file"
            elif event == "sqlite3.connect":
                if not isinstance(path, (str, bytes, os.PathLike)) or str(path).startswith((":", "file:")):
                    return
                kind = "file"
            else:
                kind, path = "dir", "." if path is None else path
                if isinstance(path, int):
                    return
            path = os.path.abspath(os.fsdecode(path))
            if (kind, path) in seen or (kind == "dir" and path in quiet_dirs):
                return
            if next((skipped for prefix, skipped in rules if (path + os.sep).startswith(prefix)), False):
                return
            with lock:
                seen.add((kind, path))
                out.write(f"{kind}\t{path}\n")
        except Exception:  # a tracer must never break the notebook
            pass
        finally:
            local.busy = False

    sys.addaudithook(hook)


def kernel_exclusions() -> list[str]:
    """Path prefixes the read trace ignores: the Python installation and labkit itself (covered by their
    digests), system folders, temporary files and the caches of matplotlib, IPython and Jupyter."""
    import site
    import sysconfig
    import tempfile

    home = Path.home()
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(),
             sysconfig.get_paths().get("stdlib", ""), str(Path(__file__).resolve().parent),
             "/proc", "/sys", "/dev", "/etc", "/usr", "/lib", "/opt", "/run", "/var", "/tmp", tempfile.gettempdir(),
             *(str(home / d) for d in (".cache", ".config", ".local", ".ipython", ".jupyter", ".matplotlib"))}
    if getattr(site, "ENABLE_USER_SITE", False):
        paths.add(site.getusersitepackages())
    return sorted(p for p in paths if p and p != "/")


def trace_arguments(log_path: Path, output: Path, notebooks: Path) -> list[str]:
    """Kernel command-line arguments that start :func:`install_read_trace` before the notebook's first cell."""
    output = Path(output).resolve()
    exclude = kernel_exclusions() + [str(output / sub) for sub in ("executed", "html", "logs", "screenshots")]
    keep = [str(output), str(config.data_dir().resolve())]
    call = (f"__import__('labkit.manifest').manifest.install_read_trace({str(log_path)!r}, {exclude!r}, "
            f"{keep!r}, {[str(Path(notebooks).resolve())]!r})")
    return [f"--IPKernelApp.exec_lines={call}"]


def read_trace(log_path: Path) -> list[tuple[str, str]]:
    """The ``(kind, path)`` entries a kernel recorded, in order, without duplicates."""
    if not Path(log_path).exists():
        return []
    seen, out = set(), []
    for line in Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines():
        kind, _, path = line.partition("\t")
        if kind in ("file", "dir") and path and (kind, path) not in seen:
            seen.add((kind, path))
            out.append((kind, path))
    return out


# ----------------------------------------------------------------------------- digests
def _sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _json_digest(value: Any) -> str:
    return _sha(json.dumps(value, sort_keys=True, default=str).encode())


_FILE_HASHES: dict[tuple[str, int, int], str | None] = {}


def file_sha256(path: Path, stat: os.stat_result | None = None) -> str | None:
    """SHA-256 of a file (memoised by path, size and mtime; ``None`` above 1 GiB)."""
    stat = stat or path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        if stat.st_size > _HASH_LIMIT:
            _FILE_HASHES[key] = None
        else:
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
            _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


def notebook_digest(path: Path) -> str:
    """Digest of a notebook's cells (type, source, tags): what a run depends on, not its outputs."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = [(c.get("cell_type"), "".join(c.get("source", [])), sorted(c.get("metadata", {}).get("tags", [])))
             for c in nb.get("cells", [])]
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    return _json_digest({"cells": cells, "kernel": kernel})


def labkit_digest(*, report_side: bool = False) -> str:
    """Digest of labkit's source: the modules notebooks import (default) or the report side only."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or "__pycache__" in rel or path.suffix == ".pyc":
            continue
        is_report = rel in REPORT_SIDE or rel.startswith("templates/")
        if is_report == report_side and (path.suffix == ".py" or is_report):
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def packages_digest() -> str:
    """Digest of the Python version and every installed distribution's name and version."""
    from importlib import metadata

    dists = sorted({(d.metadata["Name"] or "").lower() + "==" + (d.version or "") for d in metadata.distributions()})
    return _json_digest({"python": sys.version, "dists": dists})


def static_inputs(notebook: Path, parameters: Mapping[str, Any], *, labkit: str | None = None,
                  packages: str | None = None) -> dict[str, str]:
    """The digests of a notebook's inputs that do not depend on its run: notebook, parameters (with
    the environment variables in :data:`ENV_VARS`), labkit's source, installed packages."""
    env = {k: os.environ.get(k) for k in ENV_VARS}
    return {"notebook": notebook_digest(notebook), "parameters": _json_digest({"params": dict(parameters), "env": env}),
            "labkit": labkit or labkit_digest(), "packages": packages or packages_digest()}


def fingerprint_reads(entries: Iterable[tuple[str, str]]) -> dict[str, dict]:
    """Record what a run read: files by size, mtime and SHA-256, folders by their sorted listing.
    Paths that no longer exist (temporary files renamed away) are dropped."""
    files, dirs = {}, {}
    for kind, path in entries:
        p = Path(path)
        try:
            if kind == "dir" and p.is_dir():
                dirs[path] = _json_digest(sorted(os.listdir(p)))
            elif kind == "file" and p.is_file():
                st = p.stat()
                files[path] = [st.st_size, st.st_mtime_ns, file_sha256(p, st)]
        except OSError:
            continue
    return {"files": files, "dirs": dirs}


def changed_read(reads: Mapping[str, Mapping]) -> str | None:
    """The first recorded read that no longer matches (a path), or ``None`` when all still hold."""
    for path, listing in reads.get("dirs", {}).items():
        try:
            if _json_digest(sorted(os.listdir(path))) != listing:
                return path
        except OSError:
            return path
    for path, (size, mtime, sha) in reads.get("files", {}).items():
        p = Path(path)
        try:
            st = p.stat()
        except OSError:
            return path
        if st.st_size != size:
            return path
        if st.st_mtime_ns != mtime and (sha is None or file_sha256(p, st) != sha):
            return path
    return None


def output_digests(output: Path, relpaths: Iterable[str]) -> dict[str, str | None]:
    """SHA-256 of a run's outputs, by path relative to the report folder."""
    return {rel: file_sha256(output / rel) for rel in relpaths if (output / rel).is_file()}


# ----------------------------------------------------------------------------- the manifest
def load(output: Path) -> dict[str, dict]:
    """The manifest's notebook entries (empty when absent, unreadable or from another format)."""
    path = Path(output) / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc.get("notebooks", {}) if doc.get("format") == FORMAT else {}


def save(output: Path, entries: Mapping[str, dict]) -> Path:
    """Write the manifest atomically."""
    doc = {"format": FORMAT, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "notebooks": dict(entries)}
    return results.atomic_write_text(Path(output) / MANIFEST, json.dumps(doc, indent=1, default=str) + "\n")


def stale_reason(entry: Mapping[str, Any] | None, inputs: Mapping[str, str], output: Path) -> str | None:
    """Why a notebook must run again (``None``: its last successful run still holds).

    ``inputs`` are the current :func:`static_inputs`. Used by ``labkit report``."""
    if not entry:
        return "no earlier run"
    if entry.get("status") != "ok":
        return "last run failed"
    for name, digest in inputs.items():
        if entry.get("inputs", {}).get(name) != digest:
            return {"notebook": "notebook changed", "parameters": "parameters changed",
                    "labkit": "labkit source changed", "packages": "installed packages changed"}.get(name, f"{name} changed")
    for rel, sha in entry.get("outputs", {}).items():
        p = Path(output) / rel
        if not p.is_file():
            return f"output {rel} missing"
        if sha is not None and file_sha256(p) != sha:
            return f"output {rel} changed"
    path = changed_read(entry.get("reads", {}))
    if path is not None:
        return f"input changed: {display_path(path, output)}"
    return None


def display_path(path: str | os.PathLike, output: Path | None = None) -> str:
    """A path as shown to users: relative to the report, data or repository folder when inside one."""
    p = Path(path)
    for root, label in ((output, "reports"), (config.data_dir(), "data"), (config.repo_root(), ".")):
        if root is None:
            continue
        try:
            rel = p.resolve().relative_to(Path(root).resolve())
        except (ValueError, OSError):
            continue
        return f"{label}/{rel.as_posix()}" if label != "." else rel.as_posix()
    return p.name
