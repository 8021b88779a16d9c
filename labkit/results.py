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
) -> Path:
    """Record one result table; the report turns it into ``tables/<table>.csv`` and ``.md``.

    ``key`` holds the few headline numbers shown on the report's index page. Used by every notebook.
    """
    if not table.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"table name {table!r} must be letters, digits, '_' or '-'")
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
        "versions": versions(),
        "rows": rows,
    }
    text = json.dumps(jsonable(doc), indent=1, allow_nan=False)
    return atomic_write_text(results_dir() / f"{table}.json", text + "\n")


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
