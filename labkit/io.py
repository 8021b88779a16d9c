"""Writing files safely, and turning results into plain JSON values: the bottom of the package.

Every file labkit writes goes through :func:`atomic_write_bytes` / :func:`atomic_write_text` (a temp
file in the same folder, then a rename), so an interruption never leaves a half-written file behind.
:func:`file_lock` lets one process make a cached artefact while another one that needs it waits.
:func:`jsonable` makes NumPy scalars/arrays, paths and non-finite floats JSON-safe (the recorded
results and the model cache's metadata). No labkit imports.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

__all__ = ["atomic_write_bytes", "atomic_write_text", "file_lock", "jsonable"]


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` through a temp file in the same folder and a rename.

    An interruption never leaves a half-written file behind. Used across labkit.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing, never deleted) for the ``with`` block; another
    process asking for the same lock waits until it is released (also when the holder dies: the system
    drops the lock with the process). Where ``fcntl`` is missing (Windows) it does not lock, and two
    processes may then both make the same artefact. Used by ``labkit.data.synth.ensure_dataset`` (the
    synthetic keyword set that notebooks 01 and 03 may ask for at the same time in a report run) and
    ``labkit.model_cache.cache_lock`` (every model-cache entry)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars/arrays as Python numbers/lists, paths and other objects as strings
    and non-finite floats as ``None`` (JSON has no NaN). Used by ``results.record`` and the model cache."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
