"""Compare the recorded results of two reports table by table (e.g. before and after a refactor).

    python benchmarks/compare_results.py BEFORE AFTER [--timings]

BEFORE and AFTER are report folders (holding ``results/``) or ``results/`` folders themselves. Every
``<table>.json`` is compared: its ``params``, its ``key`` and its rows, row by row and column by column.

* Deterministic values (metrics, sizes, parameters, MACs, arena bytes, labels, settings) must be equal,
  exactly (floats too: the same seed gives the same numbers);
* timings are not compared: columns and keys that are wall times or derived from them (``*_ms`` except the
  MAC-based ``mcu_ms_est``, ``*_s``, ``seconds``, ``runs``, ``ms_per_clip``, ``... latency %``,
  ``Latency ms`` ..., and the value, margin and verdict of a constraint on a latency), and ``recorded_at`` /
  ``versions``, and timings quoted inside texts (with ``--timings``, the median after/before ratio of the
  timings is printed per table, for information);
* every other difference is printed, with the row's identifying columns and the size of the change.

Exit status 0 when nothing deterministic differs, 1 otherwise. Used to check the architecture refactor
(issue 11) against a smoke report of the commit before it.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

IDENTIFYING = ("task", "model", "run", "variant", "mode", "method", "bits", "features", "stage", "preset",
               "constraint", "check", "pipeline", "Model", "Optimization", "quantity", "layer", "keep_width", "norm",
               "config", "package", "runtime", "split", "level", "training")
"""Columns that say which row a row is (shown in the differences)."""

TIMING_NAMES = {"ms", "seconds", "runs", "recorded_at", "versions", "Latency ms", "Total ms", "latency_change_pct"}
"""Values that are wall times, derived from them, or depend on the machine (besides ``*_ms``, ``*_s`` ...)."""


def is_timing(name: str) -> bool:
    """Whether a column / key / param named ``name`` holds a timing (not compared): ``*_ms`` (but not the
    MAC-based ``mcu_ms_est``), ``*_s``, ``*ms_per_clip``, ``... latency %`` and :data:`TIMING_NAMES`."""
    name = str(name)
    return (name in TIMING_NAMES or name.endswith(("_ms", "_s", "ms_per_clip", "latency %"))) and name != "mcu_ms_est"


TIMED_IN_TEXT = re.compile(r"\b(\w*_ms|[Ll]atency|[Tt]otal) ([-+]?[0-9][0-9.,]*(?:e[-+]?\d+)?)")
"""A timing quoted inside a text value (notebook 08's key: "... inference_ms 0.0634)")."""


def _untimed(value: Any) -> Any:
    """``value`` with the timings quoted in a text replaced by a placeholder."""
    return TIMED_IN_TEXT.sub(lambda m: f"{m.group(1)} <timing>", value) if isinstance(value, str) else value


def _results_dir(path: Path) -> Path:
    return path / "results" if (path / "results").is_dir() else path


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                             and not isinstance(a, bool) and a == b)


def _change(a: Any, b: Any) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        delta = b - a
        rel = f", {delta / a:+.3g} relative" if a else ""
        return f"{a!r} -> {b!r} (delta {delta:+.6g}{rel})"
    text_a, text_b = json.dumps(a)[:160], json.dumps(b)[:160]
    return f"{text_a} -> {text_b}"


def _label(row: dict[str, Any], index: int) -> str:
    ids = [f"{c}={row[c]}" for c in IDENTIFYING if c in row and row[c] is not None and not isinstance(row[c], float)]
    return f"row {index}" + (f" ({', '.join(ids)})" if ids else "")


def _compare_mapping(where: str, a: dict[str, Any], b: dict[str, Any], diffs: list[str], ratios: list[float]) -> None:
    # a constraint check of a timing (``metric`` = "inference_ms" ...): its value, margin and verdict are timings too
    timed_row = is_timing(a.get("metric", "")) if isinstance(a.get("metric"), str) else False
    for k in sorted(set(a) | set(b), key=str):
        if is_timing(k) or (timed_row and k in ("value", "margin", "passed")):
            _ratio(a.get(k), b.get(k), ratios)
            continue
        if k not in a:
            diffs.append(f"{where}: new {k!r} = {json.dumps(b[k])[:160]}")
        elif k not in b:
            diffs.append(f"{where}: {k!r} gone (was {json.dumps(a[k])[:160]})")
        elif not _same(_untimed(a[k]), _untimed(b[k])):
            diffs.append(f"{where} {k!r}: {_change(a[k], b[k])}")


def _ratio(a: Any, b: Any, ratios: list[float]) -> None:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a and not isinstance(a, bool):
        ratios.append(b / a)


def compare_table(name: str, before: dict[str, Any], after: dict[str, Any]) -> tuple[list[str], list[float]]:
    """Differences of one recorded table (params, key, rows) and the after/before ratios of its timings."""
    diffs: list[str] = []
    ratios: list[float] = []
    for field in ("notebook", "profile"):
        if before.get(field) != after.get(field):
            diffs.append(f"{field}: {before.get(field)!r} -> {after.get(field)!r}")
    _compare_mapping("params", before.get("params", {}), after.get("params", {}), diffs, ratios)
    _compare_mapping("key", before.get("key", {}), after.get("key", {}), diffs, ratios)
    rows_a, rows_b = before.get("rows", []), after.get("rows", [])
    if len(rows_a) != len(rows_b):
        diffs.append(f"rows: {len(rows_a)} -> {len(rows_b)}")
    for i, (ra, rb) in enumerate(zip(rows_a, rows_b)):
        _compare_mapping(_label(rb, i), ra, rb, diffs, ratios)
    return diffs, ratios


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path, help="report (or results) folder before")
    ap.add_argument("after", type=Path, help="report (or results) folder after")
    ap.add_argument("--timings", action="store_true", help="print the median after/before ratio of the timings")
    args = ap.parse_args(argv)
    da, db = _results_dir(args.before), _results_dir(args.after)
    tables_a = {p.stem: p for p in sorted(da.glob("*.json"))}
    tables_b = {p.stem: p for p in sorted(db.glob("*.json"))}
    if not tables_a or not tables_b:
        print(f"no recorded results in {da if not tables_a else db}", file=sys.stderr)
        return 2
    changed, same = [], []
    for name in sorted(set(tables_a) | set(tables_b)):
        if name not in tables_b:
            print(f"== {name}: only in BEFORE")
            changed.append(name)
            continue
        if name not in tables_a:
            print(f"== {name}: only in AFTER")
            changed.append(name)
            continue
        diffs, ratios = compare_table(name, json.loads(tables_a[name].read_text()),
                                      json.loads(tables_b[name].read_text()))
        timing = (f"; timings after/before: median x{statistics.median(ratios):.2f} over {len(ratios)} values"
                  if args.timings and ratios else "")
        if diffs:
            changed.append(name)
            print(f"== {name}: {len(diffs)} difference(s){timing}")
            for d in diffs:
                print(f"   {d}")
        else:
            same.append(name)
            print(f"== {name}: identical (timings not compared){timing}")
    print(f"\nsummary: {len(same)} table(s) identical, {len(changed)} with differences"
          + (f": {', '.join(changed)}" if changed else ""))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
