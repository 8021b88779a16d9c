"""Self-checks for the course's exercises, with or without otter-grader.

The student edition of every notebook (built by ``labkit assign``) has one init cell after the Colab
setup cell::

    from labkit.course import selfcheck
    grader = selfcheck.init("01_preprocessing.ipynb")

and after each exercise a check cell ``grader.check("q1_stft_shape")``. :func:`init` returns otter's
``otter.Notebook`` when otter-grader is installed (JupyterLab with ``pip install tinyml-labkit[course]``,
and always inside ``labkit grade``, where otter runs the hidden tests too). Otherwise, e.g. on Colab,
whose preinstalled ipywidgets 7 and wrapt 2 an otter install would replace, it returns
:class:`Notebook`: a small otter-compatible checker that runs the exercise's *public* tests (OK-format
doctests, as otter stores them) from ``tests/<question>.py`` files, the notebook's own metadata
(``metadata.otter.tests``), or, on Colab, the open notebook as the Colab frontend returns it.
A check prints pass/fail and never raises, so an unsolved notebook still runs end to end.

:func:`forbid` is what the hidden tests use to refuse an answer that merely calls the labkit function it
re-implements: inside the block those functions raise, and names in the answer bound to them fail.
"""
from __future__ import annotations

import contextlib
import dataclasses
import doctest
import glob
import html
import importlib
import inspect
import io
import json
import os
import sys
import types
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

__all__ = ["Notebook", "CheckResult", "init", "forbid", "ForbiddenCall", "public_tests", "run_cases"]


# ------------------------------------------------------------------------------------------ running tests
@dataclasses.dataclass
class CheckResult:
    """Outcome of one ``grader.check``: shown as text or HTML in the notebook."""

    question: str
    passed: int
    total: int
    failures: list[str]
    hidden_note: bool = True

    @property
    def ok(self) -> bool:
        """Whether every public test passed."""
        return self.total > 0 and self.passed == self.total

    def __repr__(self) -> str:
        if self.total == 0:
            return f"{self.question}: no public test found (is this the student edition of the notebook?)"
        if self.ok:
            tail = " (hidden tests run when your notebook is graded)" if self.hidden_note else ""
            return f"{self.question}: all {self.total} public test(s) passed{tail}."
        lines = [f"{self.question}: {self.total - self.passed} of {self.total} public test(s) failed."]
        lines += [f"\n{f.rstrip()}" for f in self.failures]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = "#137333" if self.ok else "#b3261e"
        return f"<pre style='color:{colour}'>{html.escape(repr(self))}</pre>"


def run_cases(cases: list[Mapping[str, Any]], env: Mapping[str, Any], name: str) -> tuple[int, list[str]]:
    """Run OK-format doctest cases (``{"code": ">>> ..."}``) against a copy of ``env``; returns the
    number passed and the failure reports. Never raises. Used by :class:`Notebook`."""
    passed, failures = 0, []
    parser = doctest.DocTestParser()
    for i, case in enumerate(cases):
        out = io.StringIO()
        try:
            test = parser.get_doctest(case["code"], dict(env), f"{name}[{i}]", None, 0)
            runner = doctest.DocTestRunner(verbose=False, optionflags=doctest.ELLIPSIS)
            runner.run(test, out=out.write, clear_globs=True)
            ok = runner.failures == 0
        except BaseException as exc:  # noqa: BLE001 - a self-check reports, it never stops the notebook
            ok, out = False, io.StringIO(f"{type(exc).__name__}: {exc}")
        if ok:
            passed += 1
        else:
            failures.append(_shorten(out.getvalue()))
    return passed, failures


def _shorten(report: str, limit: int = 1500) -> str:
    """doctest's report without its banner lines; the end (the exception) matters most."""
    lines = [ln for ln in report.splitlines() if not set(ln) <= {"*"}]
    text = "\n".join(lines)
    return text if len(text) <= limit else "...\n" + text[-limit:]


# ------------------------------------------------------------------------------------------ finding tests
def _spec_from_file(path: Path) -> dict[str, Any]:
    env: dict[str, Any] = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), env)  # otter's test file format
    return env["test"]


def _tests_in_metadata(nb: Mapping[str, Any]) -> dict[str, Any]:
    return dict(nb.get("metadata", {}).get("otter", {}).get("tests", {}))


def _colab_notebook() -> dict[str, Any] | None:
    """The open notebook as Colab's frontend sends it (Colab keeps no copy on the runtime's disk)."""
    if "google.colab" not in sys.modules:
        return None
    try:
        from google.colab import _message  # type: ignore[import-not-found]

        reply = _message.blocking_request("get_ipynb", request="", timeout_sec=30)
        return reply["ipynb"] if reply else None
    except Exception:  # noqa: BLE001 - no frontend (e.g. a headless run)
        return None


def public_tests(question: str, nb_path: str | os.PathLike | None = None, tests_dir: str | os.PathLike = "tests"
                 ) -> list[dict[str, Any]]:
    """The public doctest cases of ``question``: from ``tests_dir/<question>.py``, else the metadata of
    ``nb_path`` (or of any notebook in the working folder that holds the question), else the open Colab
    notebook. Hidden cases are never returned. Used by :class:`Notebook`."""
    spec: dict[str, Any] | None = None
    test_file = Path(tests_dir) / f"{question}.py"
    if test_file.is_file():
        spec = _spec_from_file(test_file)
    if spec is None:
        candidates = [Path(nb_path)] if nb_path else []
        candidates += [Path(p) for p in sorted(glob.glob("*.ipynb"))]
        for path in candidates:
            try:
                tests = _tests_in_metadata(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
            if question in tests:
                spec = tests[question]
                break
    if spec is None:
        nb = _colab_notebook()
        spec = _tests_in_metadata(nb).get(question) if nb else None
    if spec is None:
        return []
    return [case for suite in spec.get("suites", []) for case in suite.get("cases", []) if not case.get("hidden")]


class Notebook:
    """A tiny otter-compatible checker: ``grader.check("q1")`` runs the public tests of one exercise
    against the notebook's variables and shows pass/fail. Used by the student edition of notebooks 01-08
    when otter-grader is not installed (e.g. on Colab)."""

    def __init__(self, nb_path: str | os.PathLike | None = None, tests_dir: str | os.PathLike = "tests"):
        self.nb_path = nb_path
        self.tests_dir = tests_dir

    def check(self, question: str, global_env: Mapping[str, Any] | None = None) -> CheckResult:
        """Run the public tests of ``question`` (in the caller's globals by default); never raises."""
        if global_env is None:
            frame = inspect.currentframe()
            global_env = frame.f_back.f_globals if frame and frame.f_back else {}
        try:
            cases = public_tests(question, self.nb_path, self.tests_dir)
        except Exception as exc:  # noqa: BLE001
            return CheckResult(question, 0, 1, [f"could not load the tests: {type(exc).__name__}: {exc}"])
        passed, failures = run_cases(cases, global_env, question)
        return CheckResult(question, passed, len(cases), failures)


def _otter_notebook(nb_name: str) -> Any | None:
    """otter's Notebook where it can check this notebook (otter installed, not Colab, the notebook file
    present or otter in grading mode), else None."""
    if "google.colab" in sys.modules:
        return None
    try:
        import otter
    except Exception:  # noqa: BLE001 - not installed, or broken by other packages
        return None
    grading = getattr(otter.Notebook, "_tests_dir_override", None) is not None
    if not grading and not Path(nb_name).is_file():
        return None
    return otter.Notebook(nb_name)


def init(nb_name: str) -> Any:
    """The ``grader`` of a student notebook: otter's ``Notebook`` when otter-grader is installed and can
    find the notebook (and always in ``labkit grade``), else labkit's :class:`Notebook`. Used by the init
    cell of the student edition of notebooks 01-08."""
    return _otter_notebook(nb_name) or Notebook(nb_name)


# --------------------------------------------------------------------------------- refusing labkit calls
class ForbiddenCall(BaseException):
    """Raised by a function an exercise asks students to write themselves (a BaseException, so an
    ``except Exception`` in the answer does not hide it)."""


def _resolve(target: str) -> tuple[Any, str, Any]:
    """``"labkit.quantize.fake_quant"`` -> (owner object, attribute name, current value)."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:-1]:
            owner = getattr(owner, name)
        attr = parts[-1]
        value = inspect.getattr_static(owner, attr) if isinstance(owner, type) else getattr(owner, attr)
        return owner, attr, value
    raise ImportError(f"cannot resolve {target!r}")


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # an empty closure cell
        return False
    return True


def _stub(target: str, calls: list[str]) -> Callable[..., Any]:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        calls.append(target)
        raise ForbiddenCall(f"{target} is what this exercise asks you to write yourself")
    return forbidden


@contextlib.contextmanager
def forbid(answer: Callable[..., Any], *targets: str) -> Iterator[None]:
    """Fail (AssertionError) if ``answer`` uses any of ``targets`` (dotted paths such as
    ``"labkit.quantize.fake_quant"``): a global name of the answer bound to one fails at once, and inside
    the block each target (and every alias in the answer's globals) raises :class:`ForbiddenCall`.
    Everything is restored on exit. Used by the hidden tests (:mod:`labkit.course.reference`)."""
    resolved = [(t, *_resolve(t)) for t in targets]
    originals = {id(value): t for t, _, _, value in resolved}
    func = getattr(answer, "__func__", answer)
    if id(func) in originals:
        raise AssertionError(f"your answer is {originals[id(func)]}: this exercise asks you to write it yourself")
    code = getattr(func, "__code__", None)
    env = getattr(func, "__globals__", {})
    if code is not None:
        bound = {name: env.get(name) for name in _code_names(code)}
        bound.update({name: cell.cell_contents for name, cell in zip(code.co_freevars, func.__closure__ or ())
                      if _cell_filled(cell)})
        for name, value in sorted(bound.items(), key=lambda item: item[0]):
            unwrapped = value.fget if isinstance(value, property) else value
            if value is not None and id(unwrapped) in originals:
                raise AssertionError(f"your answer calls {originals[id(unwrapped)]} (as {name!r}): this exercise "
                                     "asks you to write it yourself")
    calls: list[str] = []
    patched: list[tuple[Any, str, Any]] = []
    try:
        for target, owner, attr, value in resolved:
            stub = _stub(target, calls)
            patched.append((owner, attr, value))
            setattr(owner, attr, property(stub) if isinstance(value, property) else stub)
            for name, alias in list(env.items()):
                if alias is value:
                    patched.append((env, name, value))
                    env[name] = stub
        try:
            yield
        except ForbiddenCall as exc:
            raise AssertionError(f"your answer calls {exc.args[0].split(' is ')[0]}: this exercise asks you to "
                                 "write it yourself") from None
    finally:
        for owner, attr, value in reversed(patched):
            if isinstance(owner, dict):
                owner[attr] = value
            else:
                setattr(owner, attr, value)
    if calls:
        raise AssertionError(f"your answer calls {calls[0]}: this exercise asks you to write it yourself")
