"""Shared fixtures. Tests run against the repo's data cache (generated data is reused between runs)
and write reports into temporary folders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import labkit  # noqa: F401  (sets TF_USE_LEGACY_KERAS before any test imports TensorFlow)
from labkit import config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def tmp_reports(tmp_path, monkeypatch) -> Path:
    """A private reports folder ($LABKIT_REPORTS) for one test."""
    out = tmp_path / "reports"
    monkeypatch.setenv("LABKIT_REPORTS", str(out))
    return out


@pytest.fixture
def shared_data() -> Path:
    """The developers' real-data folder (../shared/data); skips the test where it is absent."""
    path = config.shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is not present (only developers and CI have it)")
    return path


@pytest.fixture(scope="session")
def smoke_report(tmp_path_factory) -> Path:
    """Every numbered notebook run once under the smoke profile (as `labkit report --profile smoke`).

    Returns the report folder; tests/test_notebooks.py, tests/test_report.py and tests/test_browser.py
    (the browser checks, and later the grade book's) read from it.
    """
    from labkit import report

    out = tmp_path_factory.mktemp("smoke_report")
    runs = report.run_report("smoke", output=out, echo=lambda msg: None, progress=False)
    (out / "runs.json").write_text(__import__("json").dumps(
        {r.name: {"status": r.status, "error": r.error, "seconds": r.seconds} for r in runs}))
    return out
