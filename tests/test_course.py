"""Course mode end to end: `labkit assign` builds the student edition and the autograder, `labkit grade`
grades real submissions with otter in sandboxed processes and writes the grade book.

Two grading batches run once per session (they execute notebooks, so they dominate this file's time):
* ``course_grades``: every real lab graded for the instructor edition (solutions: full marks), the
  unmodified student edition (runs end to end, 0 points) and a partial submission (exact partial score);
* ``bad_grades``: a tiny two-lab assignment built here (seconds per run) graded for one student per kind
  of bad submission, next to a good one, in one batch.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest

from labkit.course import assign, grade, gradebook

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
PARTIAL_LAB = "05_conversion"


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [dict(r, points=float(r["points"]), max_points=float(r["max_points"])) for r in csv.DictReader(f)]


def _by(rows, student, notebook=None):
    return [r for r in rows if r["student"] == student and (notebook is None or r["notebook"] == notebook)]


# ------------------------------------------------------------------------------------------- assign
@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    assign.assign(out=out)
    return out


def test_assign_builds_both_editions(dist):
    manifest = json.loads((dist / "autograder" / assign.MANIFEST).read_text())
    course = manifest["notebooks"]
    assert list(course) == [p.stem for p in sorted((REPO / "notebooks").glob("0[1-8]_*.ipynb"))]
    assert all(len(qs) >= 2 for qs in course.values()) and sum(len(qs) for qs in course.values()) >= 20
    assert manifest["total_points"] == 100 == sum(sum(qs.values()) for qs in course.values())
    for name in course:
        assert (dist / "autograder" / f"{name}.zip").stat().st_size > 1000
        student = json.loads((dist / "student" / f"{name}.ipynb").read_text())
        cells = student["cells"]
        setup = next(i for i, c in enumerate(cells) if "google.colab" in "".join(c["source"]))
        original = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
        original_setup = next(c for c in original["cells"] if "google.colab" in "".join(c["source"]))
        assert cells[setup]["source"] == original_setup["source"], "the Colab setup cell must stay intact"
        assert cells[setup + 1]["id"] == assign.INIT_CELL_ID and "selfcheck.init" in "".join(cells[setup + 1]["source"])
        assert not [c for c in cells if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
        checks = re.findall(r'grader\.check\("(\w+)"\)', "\n".join("".join(c["source"]) for c in cells))
        assert checks == list(course[name]), "one check cell per exercise, in order"
        assert not [c for c in cells if c["cell_type"] == "raw"], "otter's markers are gone"


def test_no_solution_or_hidden_test_text_in_the_student_edition(dist):
    text = "\n".join((dist / "student" / p.name).read_text() for p in sorted((dist / "student").glob("*.ipynb")))
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "# HIDDEN", "_ref.check", '"hidden": true'):
        assert marker not in text, marker
    for path in sorted((REPO / "notebooks").glob("0[1-8]_*.ipynb")):
        instructor = json.loads(path.read_text())
        secret = assign._solution_lines(instructor) + assign._hidden_lines(instructor)
        assert len(secret) >= 4, path.name
        public = "\n".join("".join(c["source"]) for c in instructor["cells"] if c["cell_type"] == "markdown")
        assert not [ln for ln in secret if ln in text and ln not in public], path.name
    import zipfile

    for z in sorted((dist / "autograder").glob("*.zip")):  # the autograder keeps the hidden tests
        with zipfile.ZipFile(z) as f:
            tests = "".join(f.read(n).decode() for n in f.namelist() if n.startswith("tests/"))
        assert "'hidden': True" in tests and "_ref.check(" in tests, z.name


# ------------------------------------------------------------------------------------- real labs
def _answer_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if "otter_answer_cell" in c.get("metadata", {}).get("tags", [])]


def _solution(instructor: dict, func: str) -> str:
    cell = next(c for c in instructor["cells"] if c["cell_type"] == "code" and f"def {func}(" in "".join(c["source"]))
    src = "".join(cell["source"])
    return re.sub(r"\s*# (BEGIN|END) SOLUTION", "", src)


@pytest.fixture(scope="session")
def course_grades(dist, smoke_report, tmp_path_factory) -> Path:
    """instructor (solutions), unsolved (student edition as handed out) and partial (one lab: first
    answer right, second merely calls labkit, third left alone). Depends on the smoke report so the
    model caches the lessons use are warm."""
    subs = tmp_path_factory.mktemp("submissions")
    course = json.loads((dist / "autograder" / assign.MANIFEST).read_text())["notebooks"]
    for name in course:
        for student, source in (("instructor", dist / "autograder"), ("unsolved", dist / "student")):
            (subs / student).mkdir(exist_ok=True)
            shutil.copyfile(source / f"{name}.ipynb", subs / student / f"{name}.ipynb")
    nb = json.loads((dist / "student" / f"{PARTIAL_LAB}.ipynb").read_text())
    instructor = json.loads((REPO / "notebooks" / f"{PARTIAL_LAB}.ipynb").read_text())
    answers = _answer_cells(nb)
    answers[0]["source"] = _solution(instructor, "int8_params")
    answers[1]["source"] = textwrap.dedent("""\
        import numpy as np
        from labkit import quantize


        def quantize_input(x, scale, zero_point):
            return quantize.quantize_int(x, 8, scale, zero_point).astype(np.int8)  # labkit's, not mine""")
    (subs / "partial").mkdir()
    (subs / "partial" / f"{PARTIAL_LAB}.ipynb").write_text(json.dumps(nb))
    out = tmp_path_factory.mktemp("grades")
    grade.grade(subs, autograder=dist / "autograder", out=out, jobs=2, timeout=900, echo=lambda msg: None)
    return out


FULL_LAB = "02_estimation"


@pytest.fixture(scope="session")
def full_run(dist, smoke_report, tmp_path_factory) -> Path:
    """The unmodified student edition of one lab graded in full mode: every lesson cell runs."""
    subs = tmp_path_factory.mktemp("full_submissions")
    (subs / "unsolved").mkdir()
    shutil.copyfile(dist / "student" / f"{FULL_LAB}.ipynb", subs / "unsolved" / f"{FULL_LAB}.ipynb")
    out = tmp_path_factory.mktemp("full_grades")
    grade.grade(subs, autograder=dist / "autograder", out=out, timeout=900, mode="full", echo=lambda msg: None)
    return out


def test_instructor_edition_scores_full_marks(course_grades):
    rows = _by(_read_csv(course_grades / "grades.csv"), "instructor")
    assert len(rows) >= 20
    bad = [r for r in rows if r["status"] != "passed"]
    assert not bad, bad
    assert sum(r["points"] for r in rows) == 100


def test_unmodified_student_edition_runs_end_to_end_and_scores_zero(course_grades):
    rows = _by(_read_csv(course_grades / "grades.csv"), "unsolved")
    assert len(rows) >= 20 and all(r["points"] == 0 and r["status"] == "failed" for r in rows), rows
    assert all("not answered yet" in r["reason"] for r in rows), {r["reason"] for r in rows}
    for path in sorted((course_grades / "unsolved").glob("*.ipynb")):  # check cells report, never raise
        nb = json.loads(path.read_text())
        assert not [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"], path.name


def test_unmodified_student_edition_runs_end_to_end_in_full(full_run):
    rows = _by(_read_csv(full_run / "grades.csv"), "unsolved", FULL_LAB)
    assert rows and all(r["points"] == 0 and r["status"] == "failed" for r in rows)
    nb = json.loads((full_run / "unsolved" / f"{FULL_LAB}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "every cell ran"
    assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert any("results.record(" in "".join(c["source"]) for c in code)  # the lesson's last step ran too


def _blocks(nb: dict) -> tuple[list[str], list[str]]:
    """(lesson code cells, answer code cells) of an instructor notebook."""
    lesson, answers, inside, solution = [], [], False, False
    for c in nb["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "raw":
            inside = {"# BEGIN QUESTION": True, "# END QUESTION": False}.get(src.split("\n")[0].strip(), inside)
            solution = {"# BEGIN SOLUTION": True, "# END SOLUTION": False}.get(src.strip(), solution)
        elif c["cell_type"] == "code":
            (answers if solution else lesson if not inside else []).append(src)
    return lesson, answers


def test_lesson_cells_are_unchanged_and_never_use_the_answers(dist):
    """With the instructor edition running in the smoke report, this is why every student edition runs end to
    end: its lesson cells are the instructor's, byte for byte, and none reads a name an answer defines."""
    import ast

    for path in sorted((REPO / "notebooks").glob("0[1-8]_*.ipynb")):
        lesson, answers = _blocks(json.loads(path.read_text()))
        defined = {n.name for src in answers for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef)}
        assert defined, path.name
        for src in lesson:
            tree = ast.parse("\n".join(re.sub(r"^(\s*)[%!].*$", r"\1pass", ln) for ln in src.splitlines()))
            used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            assert not used & defined, (path.name, used & defined, src[:80])
        student = json.loads((dist / "student" / path.name).read_text())
        kept = ["".join(c["source"]) for c in student["cells"] if c["cell_type"] == "code" and (
            not grade._is_exercise_cell(c) or "google.colab" in "".join(c["source"])
            or "parameters" in c.get("metadata", {}).get("tags", []))]
        assert kept == lesson, path.name


def test_partial_submission_gets_exactly_the_expected_score(course_grades):
    rows = {r["question"]: r for r in _by(_read_csv(course_grades / "grades.csv"), "partial", PARTIAL_LAB)}
    q1, q2, q3 = list(rows)
    assert (rows[q1]["points"], rows[q1]["status"]) == (rows[q1]["max_points"], "passed")
    # calling labkit passes the public test but fails the hidden one: half of the points
    assert (rows[q2]["points"], rows[q2]["status"]) == (rows[q2]["max_points"] / 2, "partial")
    assert "hidden test failed" in rows[q2]["reason"] and "write it yourself" in rows[q2]["reason"]
    assert (rows[q3]["points"], rows[q3]["status"]) == (0, "failed")
    others = [r for r in _by(_read_csv(course_grades / "grades.csv"), "partial") if r["notebook"] != PARTIAL_LAB]
    assert others and all(r["status"] == "missing" for r in others)


def test_grade_book_pages(course_grades):
    index = (course_grades / "index.html").read_text()
    assert "<script" not in index and "http" not in index.replace("http-equiv", "")
    for student in ("instructor", "unsolved", "partial"):
        assert f">{student}<" in index
    links = re.findall(r"href='([^']+)'", index)
    assert links and all((course_grades / link).is_file() for link in links)
    page = (course_grades / "partial" / f"{PARTIAL_LAB}.html").read_text()
    top = page[page.find("<body"):][:20_000]  # the results table comes first in the body
    assert "partial · 05_conversion" in top and "write it yourself" in top and "<script" not in top
    assert "Class mean per question" in index


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH (apt-get install chromium)")
def test_grade_book_works_in_chromium(course_grades, tmp_path):
    """What a grader opens: every page of the grade book loads offline in Chromium, without console
    errors, broken images or dead links (the same checker as the report's pages)."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from labkit import pagecheck

    assert len(pagecheck.pages(course_grades)) >= 4  # the index and one page per graded submission
    problems = pagecheck.check_pages(course_grades, screenshots=tmp_path / "shots")
    assert problems == [], "\n".join(map(str, problems))
    assert (tmp_path / "shots" / "index.png").stat().st_size > 10_000


# ------------------------------------------------------------------------------- bad submissions
TINY = {
    "01_tiny": [("q1_double", 2, "double", "def double(x):\n    # YOUR CODE HERE\n    # BEGIN SOLUTION\n    return 2 * x\n"
                 "    # END SOLUTION", "assert double(2) == 4", "assert [double(v) for v in range(-3, 9)] == "
                 "[2 * v for v in range(-3, 9)]"),
                ("q2_last", 2, "last", "def last(xs):\n    # YOUR CODE HERE\n    # BEGIN SOLUTION\n    return xs[-1]\n"
                 "    # END SOLUTION", "assert last([1, 2, 3]) == 3", "assert last('abc') == 'c' and last([[0]]) == [0]")],
    "02_tiny": [("q1_square", 3, "square", "def square(x):\n    # YOUR CODE HERE\n    # BEGIN SOLUTION\n    return x * x\n"
                 "    # END SOLUTION", "assert square(3) == 9", "assert square(-4) == 16")],
}


def _tiny_notebook(name: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    cells = [nbformat.v4.new_markdown_cell(f"# {name}"),
             nbformat.v4.new_code_cell('import sys\nif "google.colab" in sys.modules:\n    pass\nimport labkit'),
             nbformat.v4.new_code_cell('PROFILE = "quick"\nSEED = 0')]
    cells[2].metadata["tags"] = ["parameters"]
    for q, points, _, answer, public, hidden in TINY[name]:
        cells += [nbformat.v4.new_markdown_cell(f"Exercise {q}"), nbformat.v4.new_raw_cell(f"# BEGIN QUESTION\nname: {q}\npoints: {points}"),
                  nbformat.v4.new_raw_cell("# BEGIN SOLUTION"), nbformat.v4.new_code_cell(answer),
                  nbformat.v4.new_raw_cell("# END SOLUTION"), nbformat.v4.new_raw_cell("# BEGIN TESTS"),
                  nbformat.v4.new_code_cell(public), nbformat.v4.new_code_cell("# HIDDEN\n" + hidden),
                  nbformat.v4.new_raw_cell("# END TESTS"), nbformat.v4.new_raw_cell("# END QUESTION")]
    cells.append(nbformat.v4.new_code_cell("lesson_done = True  # the lesson goes on without the answers"))
    nb.cells = cells
    return nb


def _with_answers(student_nb: dict, answers: dict[str, str]) -> dict:
    nb = json.loads(json.dumps(student_nb))
    for cell in _answer_cells(nb):
        func = re.search(r"def (\w+)\(", "".join(cell["source"])).group(1)
        if func in answers:
            cell["source"] = answers[func]
    return nb


@pytest.fixture(scope="session")
def bad_grades(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("tiny")
    (root / "notebooks").mkdir()
    for name in TINY:
        nbformat.write(_tiny_notebook(name), root / "notebooks" / f"{name}.ipynb")
    assign.assign(root / "notebooks", root / "dist")
    s1 = json.loads((root / "dist" / "student" / "01_tiny.ipynb").read_text())
    s2 = json.loads((root / "dist" / "student" / "02_tiny.ipynb").read_text())
    good = {"double": "def double(x):\n    return x + x", "last": "def last(xs):\n    return xs[-1]"}
    outside = root / "outside.txt"
    subs = root / "submissions"
    cases = {
        "good": _with_answers(s1, good),
        "notjson": "{ this is not a notebook",
        "syntax": _with_answers(s1, {**good, "double": "def double(x)\n    return 2 * x"}),
        "exception": _with_answers(s1, {**good, "double": "def double(x):\n    return x / 0"}),
        "loop": _with_answers(s1, {**good, "double": "while True:\n    pass"}),
        "wronglab": s2,
        "overwrite": _with_answers(s1, {**good, "last": "def last(xs):\n    return xs[-1]\n"
                                        "open('tests/q1_double.py', 'w').write('test = {}')"}),
        "readtests": _with_answers(s1, {**good, "last": "def last(xs):\n    return xs[-1]\n"
                                        "secret = open('tests/q1_double.py').read()"}),
        "outside": _with_answers(s1, {**good, "last": f"def last(xs):\n    return xs[-1]\nopen({str(outside)!r}, 'w')"
                                      ".write('x')"}),
        "process": _with_answers(s1, {**good, "last": "import os\ndef last(xs):\n    return xs[-1]\n"
                                      f"os.system('touch {outside}.sh')"}),
    }
    deleted = _with_answers(s1, good)  # q2: answer and check cells deleted; q1: check cell moved above its answer
    deleted["cells"] = [c for c in deleted["cells"] if "def last" not in "".join(c["source"])
                        and 'grader.check("q2_last")' not in "".join(c["source"])]
    i_answer = next(i for i, c in enumerate(deleted["cells"]) if "def double" in "".join(c["source"]))
    check = deleted["cells"].pop(i_answer + 1)
    deleted["cells"].insert(i_answer, check)
    cases["reordered"] = deleted
    for student, content in cases.items():
        (subs / student).mkdir(parents=True)
        text = content if isinstance(content, str) else json.dumps(content)
        (subs / student / "01_tiny.ipynb").write_text(text)
    (subs / "good" / "02_tiny.ipynb").write_text(json.dumps(_with_answers(s2, {"square": "def square(x):\n    return x*x"})))
    (subs / "lms_7731_02_tiny-1.ipynb").write_text(json.dumps(_with_answers(s2, {"square": "def square(x):\n    return x*x"})))
    out = root / "grades"
    result = grade.grade(subs, autograder=root / "dist" / "autograder", out=out, jobs=3, timeout=45,
                         echo=lambda msg: None)
    return {"rows": _read_csv(out / "grades.csv"), "outside": outside, "out": out, "result": result, "root": root}


def _row(bad, student, question, notebook="01_tiny"):
    (r,) = [r for r in _by(bad["rows"], student, notebook) if r["question"] == question]
    return r


def test_good_submission_next_to_bad_ones(bad_grades):
    assert [(r["question"], r["points"], r["status"]) for r in _by(bad_grades["rows"], "good")] == [
        ("q1_double", 2, "passed"), ("q2_last", 2, "passed"), ("q1_square", 3, "passed")]
    assert all(r["status"] == "passed" for r in _by(bad_grades["rows"], "lms", "02_tiny"))  # the flat LMS file


def test_bad_submission_reasons(bad_grades):
    for student in ("notjson",):
        for q in ("q1_double", "q2_last"):
            r = _row(bad_grades, student, q)
            assert (r["points"], r["status"]) == (0, "invalid") and "not a valid notebook" in r["reason"]
    r = _row(bad_grades, "syntax", "q1_double")
    assert r["points"] == 0 and "SyntaxError" in r["reason"]
    assert _row(bad_grades, "syntax", "q2_last")["status"] == "passed"  # the rest still counts
    r = _row(bad_grades, "exception", "q1_double")
    assert r["points"] == 0 and "ZeroDivisionError" in r["reason"]
    for q in ("q1_double", "q2_last"):
        r = _row(bad_grades, "loop", q)
        assert (r["points"], r["status"]) == (0, "timeout") and "did not finish within 45 s" in r["reason"]
        r = _row(bad_grades, "wronglab", q)
        assert (r["points"], r["status"]) == (0, "wrong notebook") and "02_tiny, not 01_tiny" in r["reason"]
    r = _row(bad_grades, "reordered", "q1_double")  # checked before its answer existed
    assert r["points"] == 0 and "NameError" in r["reason"]
    r = _row(bad_grades, "reordered", "q2_last")  # deleted: otter still runs its tests at the end
    assert r["points"] == 0 and "NameError" in r["reason"]
    r = _row(bad_grades, "notjson", "q1_square", "02_tiny")
    assert (r["points"], r["status"]) == (0, "missing") and "no 02_tiny.ipynb" in r["reason"]


def test_submissions_cannot_touch_the_tests_or_anything_outside(bad_grades):
    expect = {"overwrite": "changing the tests", "readtests": "reading the tests",
              "outside": "writing outside the submission's folder", "process": "starting a process"}
    for student, what in expect.items():
        for q in ("q1_double", "q2_last"):
            r = _row(bad_grades, student, q)
            assert (r["points"], r["status"]) == (0, "integrity") and what in r["reason"], (student, r)
    assert not bad_grades["outside"].exists() and not Path(f"{bad_grades['outside']}.sh").exists()


def test_grade_book_of_the_bad_batch(bad_grades):
    out = bad_grades["out"]
    index = (out / "index.html").read_text()
    assert "timeout" in index and "integrity" in index and "missing" in index
    totals = gradebook.totals(bad_grades["rows"])
    assert totals[("good", "01_tiny")][:2] == (4.0, 4.0) and totals[("good", "02_tiny")][:2] == (3.0, 3.0)
    assert (out / "good" / "01_tiny.html").is_file() and not (out / "notjson" / "01_tiny.html").exists()
    assert max(bad_grades["result"].timings.values()) < 120


@pytest.mark.parametrize("with_otter", [True, False], ids=["otter", "no-otter"])
def test_student_self_checks_with_and_without_otter(bad_grades, tmp_path, with_otter):
    """The student edition's check cells work with otter installed and without it (Colab: labkit's
    checker reads the public tests from the notebook), report failures and never raise."""
    import os
    import sys

    from nbclient import NotebookClient

    student = json.loads((bad_grades["root"] / "dist" / "student" / "01_tiny.ipynb").read_text())
    nb = nbformat.reads(json.dumps(_with_answers(student, {"double": "def double(x):\n    return 2 * x",
                                                           "last": "def last(xs):\n    return xs[0]"})),  # q2 wrong
                        as_version=4)
    (tmp_path / "01_tiny.ipynb").write_text(nbformat.writes(nb))
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if not with_otter:  # a stand-in package that fails to import, as on Colab without otter-grader
        (tmp_path / "blocked" / "otter").mkdir(parents=True)
        (tmp_path / "blocked" / "otter" / "__init__.py").write_text("raise ImportError('otter-grader is not installed')")
        env["PYTHONPATH"] = str(tmp_path / "blocked")
    client = NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}, timeout=120)
    client.execute(env=env)
    outputs = {}
    for cell in nb.cells:
        m = re.search(r'grader\.check\("(\w+)"\)', cell.source) if cell.cell_type == "code" else None
        if m:
            text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)
            outputs[m.group(1)] = text
        assert not [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if with_otter:
        assert "passed" in outputs["q1_double"] and "failed" in outputs["q2_last"].lower()
    else:
        assert "q1_double: all 1 public test(s) passed" in outputs["q1_double"]
        assert "q2_last: 1 of 1 public test(s) failed" in outputs["q2_last"] and "AssertionError" in outputs["q2_last"]
