"""Keep a graded submission inside its own folder: a Python audit hook installed in the grading kernel
(and in the worker process that runs otter) by ``labkit grade``.

While a submission runs, the hook refuses (``PermissionError``) and records:

* writes (``open`` for writing, remove, rename, mkdir, rmtree, chmod, links, shutil copies) outside the
  run's folders (the run directory, which holds the submission and its reports, and labkit's data cache);
* any read or write of the tests (``tests/`` next to the submission and otter's ``source/``) by code
  other than otter's own grading code;
* processes started directly by notebook code (``subprocess``, ``os.system``, ``os.exec*``...).

A refused action is *recorded* as an integrity violation when notebook code did it (a cell or code it
``exec``-ed is the nearest caller outside the standard library, with no labkit frame in between); writes
that libraries attempt (e.g. a compiled-file cache) are refused silently. ``labkit grade`` gives a
notebook with a violation 0 points and says why. This is a guard against accidents and naive cheating,
not an operating-system sandbox: native code (ctypes, a C extension) is not audited. For hostile
submissions, grade in containers (``otter grade`` with Docker).
"""
from __future__ import annotations

import json
import os
import sys
import sysconfig
import threading
from typing import Any

__all__ = ["ENV", "install", "install_from_env"]

ENV = "LABKIT_GUARD"
_WRITE_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1), "os.mkdir": (0,), "os.symlink": (0, 1),
                 "os.link": (0, 1), "os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,), "os.utime": (0,),
                 "shutil.rmtree": (0,), "shutil.copyfile": (1,), "shutil.copytree": (1,), "shutil.move": (0, 1),
                 "shutil.copymode": (1,), "shutil.copystat": (1,)}
_READ_EVENTS = {"shutil.copyfile": (0,), "shutil.copytree": (0,), "os.symlink": (0,), "os.link": (0,)}
_PROCESS_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                   "pty.spawn"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_STDLIB = tuple(os.path.realpath(sysconfig.get_paths()[k]) + os.sep for k in ("stdlib", "platstdlib"))
_SITE = tuple(os.path.realpath(sysconfig.get_paths()[k]) + os.sep for k in ("purelib", "platlib"))
_LABKIT = os.path.realpath(os.path.dirname(os.path.dirname(__file__))) + os.sep


def _path(value: Any, *, real: bool = True) -> str | None:
    """The absolute path of an audit event's path argument (symlinks resolved when ``real``); None for
    a file descriptor."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        return None
    return os.path.realpath(value) if real else os.path.abspath(value)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r.rstrip(os.sep) or path.startswith(r) for r in roots)


def _kind(filename: str) -> str:
    """'notebook' (a cell, exec-ed or doctest code), 'stdlib', 'labkit', 'otter' or 'library'."""
    if filename.startswith("<frozen") or filename.startswith(_STDLIB) and not filename.startswith(_SITE):
        return "stdlib"
    if filename.startswith("<") or "ipykernel_" in filename or "/ipykernel-" in filename:
        return "notebook"
    real = os.path.realpath(filename)
    if real.startswith(_LABKIT):
        return "labkit"
    if f"{os.sep}otter{os.sep}" in real:
        return "otter"
    return "library"


def _callers() -> list[str]:
    """Kinds of the calling frames, innermost first, without the standard library and this module."""
    kinds, frame = [], sys._getframe(2)
    while frame is not None:
        # IPython's `open` in a notebook is a thin wrapper (_modified_open) around io.open: see through it
        if frame.f_code.co_filename != __file__ and frame.f_code.co_name != "_modified_open":
            kind = _kind(frame.f_code.co_filename)
            if kind != "stdlib":
                kinds.append(kind)
        frame = frame.f_back
    return kinds


def _by_notebook(kinds: list[str]) -> bool:
    """Notebook code did it itself (not through labkit or a library)."""
    return bool(kinds) and kinds[0] == "notebook"


def install(write_roots: list[str], protected: list[str], violations: str, *, record: bool = True) -> None:
    """Install the audit hook (it cannot be removed): writes outside ``write_roots``, any access to
    ``protected`` by non-otter code and processes started by notebook code are refused; those done by
    notebook code are appended to ``violations`` (JSON lines) when ``record``. Used by ``labkit grade``."""
    roots = tuple(os.path.realpath(r) + os.sep for r in write_roots) + (os.devnull,)
    guarded = tuple(os.path.realpath(p) + os.sep for p in protected)
    log = open(violations, "a", buffering=1, encoding="utf-8")  # opened before the hook exists
    state = threading.local()

    def refuse(what: str, detail: str, noted: bool) -> None:
        if record and noted:
            log.write(json.dumps({"what": what, "detail": detail}) + "\n")
        raise PermissionError(f"labkit grade: {what} is not allowed while grading ({detail})")

    def check_write(path: str | None) -> None:
        if path is None:
            return
        if _under(path, guarded):
            kinds = _callers()
            if "otter" not in kinds[:1]:
                refuse("changing the tests", path, True)
        if not _under(path, roots):
            cache = path.endswith((".pyc", ".nbi", ".nbc")) or f"{os.sep}__pycache__{os.sep}" in path
            refuse("writing outside the submission's folder", path, not cache and _by_notebook(_callers()))

    def check_read(path: str | None) -> None:
        # reads are frequent (every import): a string test first, the stack only for the tests' folders
        if path is not None and _under(path, guarded):
            kinds = _callers()
            if "otter" not in kinds:
                refuse("reading the tests", path, "labkit" not in kinds)

    def hook(event: str, args: tuple) -> None:
        if event != "open" and event not in _WRITE_EVENTS and event not in _READ_EVENTS and event not in _PROCESS_EVENTS:
            return
        if getattr(state, "busy", False):
            return
        state.busy = True
        try:
            if event == "open":
                path, mode, flags = (list(args) + [None, None])[:3]
                writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
                if writing:
                    check_write(_path(path))
                else:
                    check_read(_path(path, real=False))
            elif event in _PROCESS_EVENTS:
                if _by_notebook(_callers()):
                    refuse("starting a process", f"{event} {str(args[:2])[:200]}", True)
            else:
                for i in _WRITE_EVENTS.get(event, ()):
                    check_write(_path(args[i]) if len(args) > i else None)
                for i in _READ_EVENTS.get(event, ()):
                    check_read(_path(args[i]) if len(args) > i else None)
        finally:
            state.busy = False

    sys.addaudithook(hook)


def install_from_env() -> None:
    """Install the guard described by ``$LABKIT_GUARD`` (JSON: write_roots, protected relative to the
    working directory, violations). Run by the first cell ``labkit grade`` adds to a submission."""
    spec = json.loads(os.environ[ENV])
    here = os.getcwd()
    install(spec["write_roots"], [os.path.join(here, p) for p in spec["protected"]], spec["violations"],
            record=spec.get("record", True))
