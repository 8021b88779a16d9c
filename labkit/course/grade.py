"""``labkit grade``: run every submission headless, each in its own process and folder, with otter.

SUBMISSIONS is a folder of per-student folders (``SUBMISSIONS/<student>/<NN_name>.ipynb``) and/or an
LMS-style flat export (``SUBMISSIONS/<student>_<NN_name>.ipynb``, ids and ``late`` tokens dropped). For
every student and every notebook of ``dist/autograder/course.json``, a worker process (under a
timeout, killed with its kernel when it runs over) checks the file is a notebook of the right lab,
adds two cells in front (the guard of :mod:`labkit.course.guard`, and the smoke profile after the
``parameters`` cell, like papermill), and grades it with ``otter run``'s API against a fresh copy of
that notebook's autograder zip, in a fresh temporary folder. The worker writes its rows and the
student's page; the parent only reads them back, checked against the manifest.

Every (student, notebook, question) gets a row: ``points``, ``max_points``, ``status`` (passed,
partial, failed, missing, invalid, wrong notebook, timeout, integrity, error) and a ``reason``.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .. import config, results
from . import gradebook, guard
from .assign import MANIFEST

__all__ = ["Submission", "discover", "grade", "GradeResult", "grade_one", "ROW_FIELDS"]

ROW_FIELDS = ("student", "notebook", "question", "points", "max_points", "status", "reason")
GUARD_CELL_ID = "labkit-grade-guard"
_LMS_NOISE = re.compile(r"^(late|\d+|LATE)$")


@dataclasses.dataclass(frozen=True)
class Submission:
    """One expected (student, notebook) pair and the file handed in for it (None if missing)."""

    student: str
    notebook: str
    path: Path | None


def _lab_of(filename: str, notebooks: list[str]) -> tuple[str, str] | None:
    """(notebook stem, text before it) when ``filename`` names one of the course's notebooks."""
    stem = Path(filename).stem
    for name in sorted(notebooks, key=len, reverse=True):
        i = stem.find(name)
        if i >= 0:
            return name, stem[:i]
    for name in notebooks:  # "01.ipynb", "01_my_copy.ipynb": the number decides
        if re.match(rf"^{name[:2]}(\D|$)", stem):
            return name, ""
    return None


def discover(submissions: str | Path, notebooks: list[str]) -> list[Submission]:
    """Every (student, notebook) pair of a submissions folder, missing ones with ``path=None``.
    Used by ``labkit grade``."""
    root = Path(submissions)
    if not root.is_dir():
        raise FileNotFoundError(f"submissions folder {root} does not exist; expected SUBMISSIONS/<student>/NN_name.ipynb")
    found: dict[str, dict[str, Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        slots = found.setdefault(folder.name, {})
        for f in sorted(folder.rglob("*.ipynb")):
            if ".ipynb_checkpoints" in f.parts:
                continue
            lab = _lab_of(f.name, notebooks)
            if lab and lab[0] not in slots:
                slots[lab[0]] = f
    for f in sorted(root.glob("*.ipynb")):  # an LMS export: <student>_<ids>_NN_name[-1].ipynb
        lab = _lab_of(f.name, notebooks)
        if not lab:
            continue
        tokens = [t for t in re.split(r"[_\-\s]+", lab[1]) if t and not _LMS_NOISE.match(t)]
        if tokens:
            found.setdefault("_".join(tokens), {}).setdefault(lab[0], f)
    if not found:
        raise FileNotFoundError(f"no student submissions in {root}: expected SUBMISSIONS/<student>/NN_name.ipynb "
                                "or an LMS export of <student>_NN_name.ipynb files")
    return [Submission(s, nb, found[s].get(nb)) for s in sorted(found) for nb in notebooks]


# ---------------------------------------------------------------------------------------------- worker
def _rows(sub: Submission, questions: dict[str, float], status: str, reason: str) -> list[dict[str, Any]]:
    return [dict(student=sub.student, notebook=sub.notebook, question=q, points=0.0, max_points=float(p),
                 status=status, reason=reason) for q, p in questions.items()]


def _answer_errors(nb: dict) -> dict[str, str]:
    """question -> the error an answer cell of that question raised (answer cells precede the check cell)."""
    errors, pending = {}, []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell.get("source", ""))
        m = re.search(r"grader\.check\(\s*[\"']([\w\-]+)[\"']", src)
        err = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        if "otter_answer_cell" in cell.get("metadata", {}).get("tags", []):
            if re.search(r"# YOUR CODE HERE\s*\n\s*\.\.\.\s*$", src):
                pending.append("nothing: it is not answered yet (the answer cell still holds `...`)")
            else:
                pending.append(f"{err['ename']}: {err['evalue']}" if err else "")
        if m:
            first = next((e for e in pending if e), "")
            if first.startswith("nothing"):
                errors[m.group(1)] = "not answered yet (the answer cell still holds `...`)"
            elif first:
                errors[m.group(1)] = f"your answer cell raised {first}"[:300]
            pending = []
    return errors


def _first_exception(message: Any) -> str | None:
    """The first exception line of a doctest failure report (later examples often fail only because the
    first one did)."""
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    return next((ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(: .*)?$", ln)),
                lines[-1] if lines else None)


def _case_reason(test_file: Any) -> str:
    for result in test_file.test_case_results:
        if not result.passed:
            kind = "hidden" if result.test_case.hidden else "public"
            return f"{kind} test failed: {_first_exception(result.message) or 'no output'}"[:300]
    return ""


def _identify(nb: dict, expected: str, questions: dict[str, float]) -> str | None:
    """None if ``nb`` is the lab ``expected``, else why not."""
    meta = nb.get("metadata", {})
    name = meta.get("labkit", {}).get("assignment") or meta.get("otter", {}).get("assignment_name")
    if name and name != expected:
        return f"this file is notebook {name}, not {expected}"
    if not name:
        text = json.dumps(nb.get("cells", []))
        if not any(q in text for q in questions):
            return f"this notebook has none of the questions of {expected} ({', '.join(questions)})"
    return None


MODES = ("exercises", "full")


def _is_exercise_cell(cell: dict) -> bool:
    """Cells an ``exercises``-mode run keeps: setup (imports), grader init, parameters, answers, checks."""
    src = "".join(cell.get("source", ""))
    tags = cell.get("metadata", {}).get("tags", [])
    return cell.get("cell_type") != "code" or bool(
        "google.colab" in src or "grader.check(" in src or cell.get("id") == "labkit-grader-init"
        or "selfcheck.init(" in src or {"parameters", "otter_answer_cell", "otter_assign_solution_cell"} & set(tags))


def _prepare(nb: dict, expected: str, profile: str, mode: str = "full") -> dict:
    """The notebook otter runs: the guard first, the profile injected after the parameters cell, and in
    ``exercises`` mode the lesson's code cells left out (no exercise depends on them)."""
    import nbformat

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    nb = json.loads(json.dumps(nb))
    if mode == "exercises":
        nb["cells"] = [c for c in nb["cells"] if _is_exercise_cell(c)]
    cells = nb["cells"]
    params = next((i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if params is not None:
        injected = nbformat.v4.new_code_cell(f'PROFILE = "{profile}"  # injected by labkit grade')
        injected["metadata"]["tags"] = ["injected-parameters"]
        cells.insert(params + 1, injected)
    guard_cell = nbformat.v4.new_code_cell("import labkit.course.guard as _labkit_guard\n_labkit_guard.install_from_env()\n"
                                           "del _labkit_guard")
    guard_cell["id"] = GUARD_CELL_ID
    guard_cell["metadata"]["tags"] = ["remove-cell"]
    cells.insert(0, guard_cell)
    nb.setdefault("metadata", {}).setdefault("otter", {})["assignment_name"] = expected
    nb["metadata"].setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    return nb


def _environment(run: Path) -> dict[str, str]:
    env = dict(os.environ)
    home = run / "home"
    env.update(TMPDIR=str(run / "tmp"), HOME=str(home), IPYTHONDIR=str(home / ".ipython"),
               MPLCONFIGDIR=str(home / "mpl"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               LABKIT_REPORTS=str(run / "reports"), LABKIT_DATA=str(config.data_dir()),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    for d in ("tmp", "home", "home/mpl", "home/runtime", "reports", "guard"):
        (run / d).mkdir(parents=True, exist_ok=True)
    cache = Path.home() / ".cache" / "matplotlib"  # reuse the font list: no rebuild per submission
    for f in cache.glob("fontlist-*.json") if cache.is_dir() else []:
        shutil.copy(f, home / "mpl" / f.name)
    return env


def _otter_run(run: Path, nb: dict, notebook: str, spec: dict[str, Any], mode: str, out: dict[str, Any]) -> Any:
    import contextlib
    import io

    import otter.run

    submission = run / f"submission-{mode}" / f"{notebook}.ipynb"
    submission.parent.mkdir(parents=True, exist_ok=True)
    submission.write_text(json.dumps(_prepare(nb, notebook, spec["profile"], mode)), encoding="utf-8")
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            return otter.run.main(str(submission), autograder=spec["zip"], output_dir=None, no_logo=True)
    finally:
        out["log"] = log.getvalue()[-4000:]


def _needs_lesson(graded: Any) -> bool:
    """Whether a test failed first on a NameError (the answer or its test used a name only the lesson
    defines)."""
    return any((_first_exception(r.message) or "").startswith("NameError") for t in graded.results.values()
               for r in t.test_case_results if not r.passed)


def grade_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Grade one submission (run inside a worker process): returns its rows, the executed notebook's
    page and timings; writes ``outcome.json`` in the run folder. Used by :func:`grade`."""
    import nbformat

    t0 = time.perf_counter()
    sub = Submission(spec["student"], spec["notebook"], Path(spec["path"]))
    run, questions = Path(spec["run"]), spec["questions"]
    out: dict[str, Any] = {"rows": [], "page": None, "seconds": 0.0, "log": ""}

    def finish(rows: list[dict[str, Any]]) -> dict[str, Any]:
        out.update(rows=rows, seconds=time.perf_counter() - t0)
        results.atomic_write_text(run / "outcome.json", json.dumps(out))
        return out

    try:
        nb = json.loads(sub.path.read_text(encoding="utf-8"))
        nbformat.validate(nbformat.from_dict(nb))
    except (UnicodeDecodeError, ValueError, nbformat.ValidationError, KeyError, TypeError) as exc:
        return finish(_rows(sub, questions, "invalid", f"not a valid notebook: {type(exc).__name__}: {str(exc)[:200]}"))
    wrong = _identify(nb, sub.notebook, questions)
    if wrong:
        return finish(_rows(sub, questions, "wrong notebook", wrong))
    env = _environment(run)
    os.environ.update(env)
    os.environ[guard.ENV] = json.dumps({"write_roots": [str(run), env["LABKIT_DATA"]], "protected": ["tests", "../source"],
                                        "violations": str(run / "guard" / "violations.jsonl")})
    import tempfile as _tempfile

    _tempfile.tempdir = env["TMPDIR"]
    guard.install([str(run)], [], str(run / "guard" / "worker.jsonl"), record=False)
    mode = spec.get("mode", "full")
    try:
        graded = _otter_run(run, nb, sub.notebook, spec, mode, out)
        if mode == "exercises" and _needs_lesson(graded):
            # an answer used something only the lesson defines: grade the whole notebook instead
            mode = "full"
            graded = _otter_run(run, nb, sub.notebook, spec, mode, out)
    except Exception as exc:  # noqa: BLE001 - otter could not grade it: say so, keep the batch going
        return finish(_rows(sub, questions, "error", f"the grader failed: {type(exc).__name__}: {str(exc)[:200]}"))
    out["mode"] = mode
    executed = nbformat.from_dict(graded.notebook) if graded.notebook is not None else None
    errors = _answer_errors(executed) if executed is not None else {}
    violations = [json.loads(ln) for ln in (run / "guard" / "violations.jsonl").read_text().splitlines()
                  if ln.strip()] if (run / "guard" / "violations.jsonl").exists() else []
    rows = []
    for q, max_points in questions.items():
        test = graded.results.get(q)
        points = float(test.score) if test is not None else 0.0
        points = max(0.0, min(points, float(max_points)))
        status = "passed" if points == max_points else "partial" if points > 0 else "failed"
        reason = "" if status == "passed" else (errors.get(q) or (_case_reason(test) if test is not None
                                                                  else "no test result (check cell deleted?)"))
        rows.append(dict(student=sub.student, notebook=sub.notebook, question=q, points=points,
                         max_points=float(max_points), status=status, reason=reason))
    if violations:
        first = violations[0]
        why = f"integrity: {first['what']} ({first['detail'][:150]})" + (
            f" and {len(violations) - 1} more" if len(violations) > 1 else "")
        rows = [dict(r, points=0.0, status="integrity", reason=why) for r in rows]
    if executed is not None:
        results.atomic_write_text(run / "executed.ipynb", nbformat.writes(executed))
        page = run / "page.html"
        results.atomic_write_text(page, gradebook.submission_page(executed, rows, seconds=time.perf_counter() - t0,
                                                                       mode=mode))
        out["page"] = str(page)
    return finish(rows)


# ---------------------------------------------------------------------------------------------- parent
@dataclasses.dataclass
class GradeResult:
    """What ``labkit grade`` wrote and measured."""

    rows: list[dict[str, Any]]
    csv: Path
    index: Path
    seconds: float
    timings: dict[tuple[str, str], float]


def _kill_tree(pid: int) -> None:
    """Kill a worker and everything it started (the kernel runs in a session of its own)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = proc.children(recursive=True) + [proc]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=10)


def _run_worker(spec: dict[str, Any], timeout: float) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    run = Path(spec["run"])
    (run / "spec.json").write_text(json.dumps(spec))
    with open(run / "worker.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "labkit.course.grade", str(run / "spec.json")],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(run))
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            return {"status": "timeout"}, time.perf_counter() - t0
    try:
        return json.loads((run / "outcome.json").read_text()), time.perf_counter() - t0
    except (OSError, ValueError):
        tail = (run / "worker.log").read_bytes()[-300:].decode("utf-8", "replace").strip().splitlines()
        return {"status": "error", "why": tail[-1] if tail else f"exit code {proc.returncode}"}, time.perf_counter() - t0


def _checked(outcome: dict[str, Any], sub: Submission, questions: dict[str, float], timeout: float
             ) -> list[dict[str, Any]]:
    """The worker's rows, trusted only as far as the manifest allows (names, points <= max)."""
    if outcome.get("status") == "timeout":
        return _rows(sub, questions, "timeout", f"did not finish within {timeout:g} s (an endless loop?)")
    got = {r.get("question"): r for r in outcome.get("rows", []) if isinstance(r, dict)}
    if set(got) != set(questions):
        return _rows(sub, questions, "error", f"the grader failed: {outcome.get('why', 'no result')}"[:300])
    rows = []
    for q, max_points in questions.items():
        r = got[q]
        points = float(r.get("points", 0.0))
        points = points if 0.0 <= points <= float(max_points) else 0.0
        rows.append(dict(student=sub.student, notebook=sub.notebook, question=q, points=points,
                         max_points=float(max_points), status=str(r.get("status", "error"))[:20],
                         reason=str(r.get("reason", ""))[:300]))
    return rows


def grade(submissions: str | Path, *, autograder: str | Path = "dist/autograder", out: str | Path = "grades",
          timeout: float = 600.0, jobs: int = 1, profile: str = "smoke", mode: str = "exercises",
          keep: bool = False, echo: Callable[[str], None] = print) -> GradeResult:
    """Grade every submission in ``submissions`` (see the module docstring) and write ``out/grades.csv``,
    ``out/index.html`` and ``out/<student>/<notebook>.html``. ``mode="exercises"`` runs only the setup,
    parameters, answer and check cells (no exercise depends on the lesson; a test failing on a NameError
    re-grades that notebook in full); ``mode="full"`` runs every cell. Used by ``labkit grade``."""
    from tqdm.auto import tqdm

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    t0 = time.perf_counter()
    autograder, out = Path(autograder), Path(out)
    manifest_path = autograder / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: run `labkit assign` first (it writes dist/autograder)")
    manifest = json.loads(manifest_path.read_text())
    course: dict[str, dict[str, float]] = manifest["notebooks"]
    subs = discover(submissions, list(course))
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="labkit-grade-"))
    rows: list[dict[str, Any]] = []
    timings: dict[tuple[str, str], float] = {}
    pages: dict[tuple[str, str], Path] = {}
    work = []
    for i, sub in enumerate(subs):
        if sub.path is None:
            rows += _rows(sub, course[sub.notebook], "missing", f"no {sub.notebook}.ipynb handed in")
            continue
        run = scratch / f"{i:04d}"
        run.mkdir()
        shutil.copyfile(autograder / f"{sub.notebook}.zip", run / "autograder.zip")  # a fresh copy per run
        work.append((sub, {"student": sub.student, "notebook": sub.notebook, "path": str(sub.path.resolve()),
                           "run": str(run), "zip": str(run / "autograder.zip"), "questions": course[sub.notebook],
                           "profile": profile, "mode": mode}))
    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, int(jobs))) as pool, \
                tqdm(total=len(work), desc="grading", unit="notebook") as bar:
            futures = {pool.submit(_run_worker, spec, timeout): (sub, spec) for sub, spec in work}
            for future in concurrent.futures.as_completed(futures):
                sub, spec = futures[future]
                outcome, seconds = future.result()
                got = _checked(outcome, sub, course[sub.notebook], timeout)
                rows += got
                timings[(sub.student, sub.notebook)] = seconds
                page = Path(spec["run"]) / "page.html"  # a fixed place, never a path the worker names
                if outcome.get("page") and page.is_file() and not page.is_symlink():
                    pages[(sub.student, sub.notebook)] = page
                bar.update(1)
                bar.set_postfix_str(f"{sub.student}/{sub.notebook}")
                total, best = sum(r["points"] for r in got), sum(r["max_points"] for r in got)
                echo(f"{sub.student:>16s}  {sub.notebook:<26s} {total:5.1f}/{best:<5.1f} {seconds:6.1f} s  "
                     f"{got[0]['status'] if len({r['status'] for r in got}) == 1 else 'graded'}")
        for (student, notebook), page in pages.items():
            target = out / gradebook.safe_name(student) / f"{notebook}.html"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(page, target)
            executed = page.parent / "executed.ipynb"
            if executed.is_file() and not executed.is_symlink():
                shutil.copyfile(executed, target.with_suffix(".ipynb"))
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    order = {(s.student, s.notebook): i for i, s in enumerate(subs)}
    rows.sort(key=lambda r: (order[(r["student"], r["notebook"])], list(course[r["notebook"]]).index(r["question"])))
    csv_path = gradebook.write_csv(out / "grades.csv", rows)
    index = gradebook.write_index(out, rows, course, timings=timings, pages=set(pages))
    seconds = time.perf_counter() - t0
    echo(f"graded {len(work)} notebooks of {len({s.student for s in subs})} students in {seconds:.0f} s -> {index}")
    return GradeResult(rows, csv_path, index, seconds, timings)


def _worker_main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    grade_one(spec)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1]))
