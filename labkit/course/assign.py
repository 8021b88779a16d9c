"""``labkit assign``: the student edition and the autograder, built from the instructor notebooks.

``notebooks/`` is the instructor edition: every exercise is written in otter-grader's format (raw cells
``# BEGIN QUESTION`` / ``# BEGIN SOLUTION`` / ``# BEGIN TESTS`` ..., a test cell starting with ``# HIDDEN``
is hidden), and ``labkit report`` runs it with its solutions and tests as plain cells. For each notebook
with exercises, :func:`assign` adds the assignment configuration, runs ``otter assign`` and writes::

    dist/student/NN_name.ipynb      no solution code, no hidden tests, no outputs; Colab setup cell intact,
                                    then an init cell: grader = selfcheck.init(...) (works without otter)
    dist/autograder/NN_name.zip     otter's autograder (all tests), what `labkit grade` runs
    dist/autograder/NN_name.ipynb   the solutions with their tests (a reference submission)
    dist/autograder/course.json     questions and points of every notebook (the grade book's columns)

and refuses to finish if any solution line or hidden test text reached ``dist/student``.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import yaml

from .. import __version__, config, results

__all__ = ["Question", "questions", "assign", "AssignResult", "INIT_CELL_ID", "MANIFEST"]

INIT_CELL_ID = "labkit-grader-init"
MANIFEST = "course.json"
_OTTER_CONFIG = {
    "init_cell": False,  # labkit's own init cell goes after the Colab setup cell (see _student_edition)
    "check_all_cell": False,
    "export_cell": False,
    "run_tests": False,  # `labkit report` runs the instructor edition; the tests check the autograder
    "solutions_pdf": False,
    "template_pdf": False,
    "tests": {"files": False, "ok_format": True},
    "generate": True,
}


@dataclasses.dataclass(frozen=True)
class Question:
    """One auto-graded exercise of a notebook."""

    notebook: str
    name: str
    points: float


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _raw_config(cell: dict, marker: str) -> dict | None:
    text = _source(cell)
    if cell.get("cell_type") != "raw" or not text.strip().startswith(marker):
        return None
    return yaml.safe_load(text.strip()[len(marker):]) or {}


def questions(notebook: str | Path) -> list[Question]:
    """The questions (name, points) of an instructor notebook, in order. Used by ``labkit assign``."""
    path = Path(notebook)
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for cell in nb["cells"]:
        cfg = _raw_config(cell, "# BEGIN QUESTION")
        if cfg is not None:
            if "name" not in cfg or "points" not in cfg:
                raise ValueError(f"{path.name}: a '# BEGIN QUESTION' cell needs 'name' and 'points': {cfg}")
            found.append(Question(path.stem, str(cfg["name"]), float(cfg["points"])))
    names = [q.name for q in found]
    if len(set(names)) != len(names):
        raise ValueError(f"{path.name}: question names must be unique, got {names}")
    return found


def _solution_lines(nb: dict) -> list[str]:
    """Lines between '# BEGIN SOLUTION' and '# END SOLUTION' comments of the answer cells."""
    lines, inside = [], False
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for line in _source(cell).splitlines():
            token = line.strip()
            if token.startswith("# BEGIN SOLUTION"):
                inside = True
            elif token.startswith("# END SOLUTION"):
                inside = False
            elif inside and len(token) >= 12:
                lines.append(token)
    return lines


def _hidden_lines(nb: dict) -> list[str]:
    lines = []
    for cell in nb["cells"]:
        src = _source(cell)
        if cell["cell_type"] == "code" and src.lstrip().startswith("# HIDDEN"):
            lines += [ln.strip() for ln in src.splitlines()[1:] if len(ln.strip()) >= 12]
    return lines


def _leaks(student_text: str, instructor: dict) -> list[str]:
    """Solution / hidden-test lines found in the student edition (lines the task text itself states, e.g.
    a formula in the markdown, are public anyway)."""
    public = "\n".join(_source(c) for c in instructor["cells"] if c["cell_type"] == "markdown")
    return [ln for ln in _solution_lines(instructor) + _hidden_lines(instructor)
            if ln in student_text and ln not in public]


def _init_cell(name: str) -> dict:
    import nbformat

    cell = nbformat.v4.new_code_cell(
        "# Self-checks: after each exercise, grader.check(\"q...\") runs its public tests (hidden tests run when\n"
        "# your notebook is graded). Works without otter-grader, e.g. on Colab.\n"
        "from labkit.course import selfcheck\n"
        f"grader = selfcheck.init(\"{name}.ipynb\")")
    cell["id"] = INIT_CELL_ID
    cell["metadata"] = {"editable": False, "deletable": False}
    return cell


def _with_init_cell(nb: dict, name: str) -> dict:
    """``nb`` (otter's output) with labkit's grader init cell after the Colab setup cell."""
    nb = copy.deepcopy(nb)
    setup = next((i for i, c in enumerate(nb["cells"]) if "google.colab" in _source(c)), None)
    if setup is None:
        raise ValueError(f"{name}: no Colab setup cell (a code cell mentioning google.colab) to put the grader after")
    nb["cells"].insert(setup + 1, _init_cell(name))
    return nb


def _student_edition(nb: dict, name: str, qs: list[Question]) -> dict:
    """otter's student notebook with outputs cleared, labkit's init cell after the setup cell, a note
    under the title and labkit's metadata."""
    import nbformat

    nb = _with_init_cell(nb, name)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    total = sum(q.points for q in qs)
    note = nbformat.v4.new_markdown_cell(
        f"**Student edition.** This notebook has {len(qs)} graded exercises ({total:g} points): write your code "
        "where it says `# YOUR CODE HERE`, then run the check cell below it. The lesson runs without your "
        "answers; when you are done, run the whole notebook once and hand in this `.ipynb` file.")
    note["id"] = "labkit-student-note"
    nb["cells"].insert(1, note)
    nb["metadata"]["labkit"] = {"assignment": name, "questions": {q.name: q.points for q in qs},
                                "labkit_version": __version__}
    return nb


@dataclasses.dataclass
class AssignResult:
    """What ``labkit assign`` wrote."""

    student: list[Path]
    autograders: list[Path]
    manifest: Path
    questions: list[Question]
    seconds: float


def _otter_assign(master: Path, out: Path) -> None:
    from otter.assign import main as otter_assign

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            otter_assign(str(master), str(out), no_pdfs=True, no_run_tests=True)
        except Exception as exc:
            raise RuntimeError(f"otter assign failed on {master.name}: {exc}\n{buf.getvalue()[-2000:]}") from exc


def assign(notebooks: str | Path | None = None, out: str | Path = "dist", *, only: Iterable[str] | None = None
           ) -> AssignResult:
    """Build ``out/student`` and ``out/autograder`` from the instructor notebooks that have exercises.
    Raises if a solution or hidden test would reach the student edition. Used by ``labkit assign``."""
    import nbformat

    t0 = time.perf_counter()
    src_dir = Path(notebooks or config.repo_root() / "notebooks")
    out = Path(out)
    paths = sorted(src_dir.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {w.strip() for w in only}
        paths = [p for p in paths if p.stem in wanted or p.stem[:2] in wanted]
    graded = [(p, questions(p)) for p in paths]
    graded = [(p, qs) for p, qs in graded if qs]
    if not graded:
        raise ValueError(f"no notebook with exercises ('# BEGIN QUESTION' cells) in {src_dir}")
    student_dir, ag_dir = out / "student", out / "autograder"
    for d in (student_dir, ag_dir):
        d.mkdir(parents=True, exist_ok=True)
    students, zips, all_q = [], [], []
    with tempfile.TemporaryDirectory(prefix="labkit-assign-") as tmp:
        for path, qs in graded:
            instructor = json.loads(path.read_text(encoding="utf-8"))
            master_nb = copy.deepcopy(instructor)
            cfg = dict(_OTTER_CONFIG, name=path.stem)
            master_nb["cells"].insert(0, nbformat.v4.new_raw_cell("# ASSIGNMENT CONFIG\n" + yaml.safe_dump(cfg)))
            master = Path(tmp) / path.stem / path.name
            master.parent.mkdir(parents=True)
            master.write_text(json.dumps(master_nb), encoding="utf-8")
            result = Path(tmp) / path.stem / "out"
            _otter_assign(master, result)
            student = json.loads((result / "student" / path.name).read_text(encoding="utf-8"))
            student = _student_edition(student, path.stem, qs)
            text = json.dumps(student)
            leaked = _leaks(text, instructor)
            if leaked or re.search(r"BEGIN SOLUTION|# HIDDEN|\"hidden\": true", text):
                raise RuntimeError(f"{path.name}: solution or hidden-test text would reach the student edition: "
                                   f"{leaked[:3]}")
            nbformat.validate(nbformat.from_dict(student))
            students.append(results.atomic_write_text(student_dir / path.name, json.dumps(student, indent=1) + "\n"))
            (zip_path,) = (result / "autograder").glob("*.zip")
            shutil.copyfile(zip_path, ag_dir / f"{path.stem}.zip")
            zips.append(ag_dir / f"{path.stem}.zip")
            solutions = json.loads((result / "autograder" / path.name).read_text(encoding="utf-8"))
            solutions = _with_init_cell(solutions, path.stem)  # grader.check works in the solutions too
            results.atomic_write_text(ag_dir / path.name, json.dumps(solutions, indent=1) + "\n")
            all_q += qs
    manifest = {"labkit_version": __version__, "built": time.strftime("%Y-%m-%d %H:%M:%S"),
                "total_points": sum(q.points for q in all_q),
                "notebooks": {p.stem: {q.name: q.points for q in qs} for p, qs in graded}}
    man = results.atomic_write_text(ag_dir / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return AssignResult(students, zips, man, all_q, time.perf_counter() - t0)
