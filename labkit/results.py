"""Result rows recorded by notebooks, gathered by the report into CSV/Markdown tables.

Every notebook ends with ``results.record(...)``: one JSON file per table under
``reports/results/``, written atomically (``labkit.io``: temp file + rename).
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from . import config
from .io import atomic_write_bytes, atomic_write_text, jsonable

__all__ = ["versions", "results_dir", "record", "load", "load_all", "to_frame",
           "atomic_write_bytes", "atomic_write_text"]  # the last two: labkit.io's, for the report


def versions() -> dict[str, str]:
    """Versions of the main packages (recorded with every result). Used by notebook 00 and `record`."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
                "tflite-micro", "numpy", "librosa"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def machine() -> dict[str, Any]:
    """The CPU, its logical cores and the GPUs TensorFlow sees (only if TensorFlow is already loaded:
    recording never imports it). Recorded with every result; shown in the report's banner."""
    import sys

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count()}
    if "tensorflow" in sys.modules:
        try:
            gpus = sys.modules["tensorflow"].config.list_physical_devices("GPU")
            info["gpus"] = [g.name for g in gpus]
        except Exception:  # pragma: no cover - a broken CUDA set-up must not stop a recording
            pass
    return info


def results_dir() -> Path:
    """``reports/results`` (or under ``$LABKIT_REPORTS``)."""
    path = config.reports_dir() / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(
    table: str,
    rows: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    key: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    notebook: str | None = None,
    headline: str | None = None,
    headline_order: int = 50,
) -> None:
    """Record one result table; the report turns it into ``tables/<table>.csv`` and ``.md``.

    ``key`` holds the few numbers shown on the notebook's card in the report's index. ``headline``
    (a title) makes the table one of the course summary tables shown first on the index and in
    report.html, sorted by ``headline_order`` (by convention: 0 the course's claims, 10-19 keyword
    spotting, 20-29 forecasting, 30-39 constraint presets). Returns nothing, so that a call ending a
    cell leaves no stray ``Out[n]:`` (the file is ``results_dir() / f"{table}.json"``). Used by every notebook.
    """
    if not table.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"table name {table!r} must be letters, digits, '_' or '-'")
    if headline is not None and not (isinstance(headline, str) and headline.strip()):
        raise ValueError(f"headline must be a non-empty title, got {headline!r}")
    if isinstance(rows, pd.DataFrame):
        rows = rows.reset_index(drop=rows.index.name is None).to_dict(orient="records")
    rows = [dict(r) for r in rows]
    doc = {
        "table": table,
        "notebook": notebook or os.environ.get("LABKIT_NOTEBOOK", ""),
        "profile": os.environ.get("LABKIT_PROFILE", ""),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "params": params or {},
        "key": key or {},
        "headline": {"title": headline.strip(), "order": int(headline_order)} if headline else None,
        "versions": versions(),
        "machine": machine(),
        "rows": rows,
    }
    text = json.dumps(jsonable(doc), indent=1, allow_nan=False)
    atomic_write_text(results_dir() / f"{table}.json", text + "\n")


def load(table: str, directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """The recorded document of one table (rows, key, params ...). Used by notebook 08 and the report."""
    path = Path(directory or results_dir()) / f"{table}.json"
    if not path.exists():
        raise FileNotFoundError(f"no recorded results {path}; run the notebook that records {table!r} first")
    return json.loads(path.read_text())


def load_all(directory: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every recorded table document, sorted by table name. Used by the report."""
    directory = Path(directory or results_dir())
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def to_frame(doc: Mapping[str, Any]) -> pd.DataFrame:
    """A recorded table as a DataFrame. Used by the report and notebook 08."""
    return pd.DataFrame(list(doc.get("rows", [])))
