"""The install files agree with each other, and notebooks are committed clean and well-formed."""
from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    return pins


def _environment_pins() -> dict[str, str]:
    text = (REPO / "environment.yml").read_text()
    pins = {}
    for m in re.finditer(r"^\s+-\s+([A-Za-z0-9_.\-]+)==(\S+)\s*$", text, re.M):
        pins[m.group(1).lower()] = m.group(2)
    assert re.search(r"^\s+-\s+python=3\.11\s*$", text, re.M), "environment.yml must pin python=3.11"
    return pins


def test_requirements_are_exact_pins():
    pins = _requirements()
    assert pins["tensorflow"].startswith("2.21.") and pins["tf-keras"].startswith("2.21.")
    assert pins["tensorflow-model-optimization"] == "0.8.1"
    assert pins["pvlib"] == "0.11.2"
    assert all(v for v in pins.values()), f"every requirement needs ==version: {pins}"


def test_environment_yml_mirrors_requirements():
    assert _environment_pins() == _requirements()


def test_pyproject_ranges_admit_the_pins():
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _requirements()
    for dep in project["dependencies"]:
        req = Requirement(dep)
        name = req.name.lower()
        assert name in pins, f"{req.name} is in pyproject.toml but not pinned in requirements.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{dep} rejects the pin {pins[name]}"
    assert project["scripts"]["labkit"] == "labkit.cli:main"
    python = SpecifierSet(project["requires-python"])
    assert {"3.11", "3.12", "3.13"} <= {v for v in ("3.10", "3.11", "3.12", "3.13", "3.14") if v in python}


def test_pyproject_ranges_admit_colabs_packages():
    """Colab's preinstalled versions (tests/colab_env.py) satisfy the ranges, so pip keeps them there."""
    from packaging.requirements import Requirement

    from colab_env import COLAB_PACKAGES

    colab = dict(p.lower().split("==") for p in COLAB_PACKAGES)
    deps = {Requirement(d).name.lower(): Requirement(d) for d in
            tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    shared = set(colab) & set(deps)
    assert {"tensorflow", "tf-keras", "numpy", "pandas", "ipywidgets", "librosa"} <= shared
    for name in shared:
        assert deps[name].specifier.contains(colab[name]), f"{deps[name]} would replace Colab's {name} {colab[name]}"


def test_postgres_extra_pins_the_tested_driver():
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["postgres"]
    pins = _requirements()
    assert extra == [f"psycopg[binary]=={pins['psycopg']}"] and pins["psycopg-binary"] == pins["psycopg"]


def test_ci_runs_make_test():
    assert "make test" in (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test: \$\(STAMP\)", makefile, re.M) and re.search(r"^report: \$\(STAMP\)", makefile, re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_committed_clean_with_parameters(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not [c for c in code if c.get("outputs") or c.get("execution_count")], "strip outputs: make strip"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    src = "".join(tagged[0]["source"])
    assert re.search(r"^PROFILE = \"quick\"", src, re.M) and re.search(r"^SEED = \d+", src, re.M)
    for line in src.splitlines():  # literals only: papermill does not recompute derived values
        line = line.split("#")[0].strip()
        if line:
            name, _, value = line.partition("=")
            compile(value.strip(), "<param>", "eval")
            assert not re.search(r"[A-Za-z_]\w*\s*\(", value), f"parameter cell must hold literals: {line}"
    assert nb["cells"][0]["cell_type"] == "markdown" and "colab.research.google.com" in "".join(nb["cells"][0]["source"])
    assert "results.record(" in "".join("".join(c["source"]) for c in code), "the notebook must record its results"


def test_no_duplicate_code_cells_across_notebooks():
    seen: dict[str, str] = {}
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            src = "".join(cell["source"]).strip()
            if cell["cell_type"] != "code" or src.count("\n") < 3 or "google.colab" in src:
                continue
            assert src not in seen, f"cell copied between {seen[src]} and {path.name}: move it into labkit"
            seen[src] = path.name


def test_generated_files_are_not_tracked():
    tracked = subprocess.run(["git", "ls-files", "reports", "data"], cwd=REPO, capture_output=True, text=True).stdout
    assert set(tracked.split()) <= {"reports/README.md", "data/README.md"}, tracked
