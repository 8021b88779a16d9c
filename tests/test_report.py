"""The headless report pipeline: papermill -> HTML -> tables -> index, failures rendered and counted."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from labkit import cli, report

pytestmark = pytest.mark.slow


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# test"),
        nbformat.v4.new_code_cell('PROFILE = "quick"\nSEED = 0', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def test_setup_check_notebook_smoke(smoke_report):
    out = smoke_report
    runs = json.loads((out / "runs.json").read_text())
    assert runs["00_setup_check"]["status"] == "ok", runs["00_setup_check"]["error"]
    html = (out / "html" / "00_setup_check.html").read_text()
    assert "Setup check" in html and "data:image/png;base64" in html  # figure embedded
    assert "injected-parameters" not in html and "I0000" not in html  # hidden cell, no TF log noise
    doc = json.loads((out / "results" / "00_setup_check.json").read_text())
    assert doc["notebook"] == "00_setup_check" and doc["profile"] == "smoke"
    assert all(row["ok"] for row in doc["rows"]) and len(doc["rows"]) >= 6
    csv = (out / "tables" / "00_setup_check.csv").read_text().splitlines()
    assert csv[0].startswith("check,ok,seconds,detail") and len(csv) == len(doc["rows"]) + 1
    assert (out / "figures" / "00_weather_two_days.png").stat().st_size > 5_000
    index = (out / "index.html").read_text()
    assert "00_setup_check" in index and "class='ok'" in index and "html/00_setup_check.html" in index
    assert "checks passed" in index and "class='failed'" not in index
    assert len(list((out / "html").glob("*.html"))) == len(report.discover())  # every notebook rendered


def test_failing_notebook_is_rendered_and_others_still_run(tmp_path, monkeypatch):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    _notebook(nbdir / "01_fails.ipynb", "raise ValueError('deliberate failure for the test')")
    _notebook(nbdir / "02_works.ipynb",
              "from labkit import results\nresults.record('02_works', [{'profile': PROFILE, 'x': 1}], key={'x': 1})")
    out = tmp_path / "rep"
    runs = report.run_report("smoke", output=out, notebooks=nbdir)
    assert [(r.name, r.status) for r in runs] == [("01_fails", "failed"), ("02_works", "ok")]
    assert "ValueError: deliberate failure" in runs[0].error
    assert "deliberate failure for the test" in (out / "html" / "01_fails.html").read_text()
    assert (out / "tables" / "02_works.md").read_text().count("| smoke | 1 |") == 1
    assert "class='failed'" in (out / "index.html").read_text()

    monkeypatch.setattr(report, "notebooks_dir", lambda: nbdir)
    assert cli.main(["report", "--profile", "smoke", "--only", "02", "--output", str(out)]) == 0
    assert cli.main(["report", "--profile", "smoke", "--only", "01", "--output", str(out)]) == 1


def test_discover_rejects_unknown_selection():
    with pytest.raises(ValueError, match="no notebook matches"):
        report.discover(["42"])
