"""Does TFLite Micro run this model in an arena of N bytes? The bisection behind
``labkit.tflite.tflm_min_arena``, as a program of its own::

    python -m labkit.tflm_probe START STEP CAP < model.tflite

prints the smallest arena size (to ``STEP`` bytes, searching upwards from ``START`` and never above
``CAP``) in which the runtime prepares the model and runs two inferences, or ``-1`` if even ``CAP``
bytes do not suffice. Every attempt runs in a forked child, because TFLite Micro *crashes* (segfault
in the LSTM kernel) rather than failing cleanly when a temporary allocation does not fit. It imports
only NumPy and the TFLM runtime (no TensorFlow, so forking is safe) and no other labkit module.
Run by ``labkit.tflite.tflm_min_arena`` (notebook 05).
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np

__all__ = ["runs", "min_arena", "main"]


def runs(data: bytes, size: int) -> bool:
    """Whether TFLite Micro prepares ``data`` and runs two inferences on zeros in ``size`` bytes (in a
    forked child, so a crash is a "no")."""
    from tflite_micro.python.tflite_micro import runtime  # imported once, before the first fork

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            interp = runtime.Interpreter.from_bytes(data, arena_size=size)
            d = interp.get_input_details(0)
            interp.set_input(np.zeros(d["shape"], d["dtype"]), 0)
            interp.invoke()
            interp.invoke()
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def min_arena(data: bytes, start: int, step: int, cap: int) -> int:
    """The smallest arena (within ``step`` bytes) in which :func:`runs` holds: doubling from ``start``
    until it runs, then bisection; ``-1`` if it does not run below ``cap`` bytes."""
    lo, hi = 0, max(step, start)
    while not runs(data, hi):
        lo, hi = hi, 2 * hi
        if hi > cap:
            return -1
    while hi - lo > step:
        mid = (lo + hi) // 2
        if runs(data, mid):
            hi = mid
        else:
            lo = mid
    return hi


def main(argv: Sequence[str] | None = None) -> int:
    """``START STEP CAP`` on the command line, the .tflite bytes on stdin; prints the arena size."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or not all(a.lstrip("-").isdigit() for a in args):
        print("usage: python -m labkit.tflm_probe START STEP CAP < model.tflite", file=sys.stderr)
        return 2
    start, step, cap = (int(a) for a in args)
    print(min_arena(sys.stdin.buffer.read(), start, step, cap))
    return 0


if __name__ == "__main__":
    sys.exit(main())
