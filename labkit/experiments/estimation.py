"""Notebook 02: the analytic estimates (``labkit.estimate``) next to the real thing - the converted
file (``labkit.tflite.convert``, the kit's one converter), what it holds (``tflite.breakdown``) and the
tensor arena TFLite Micro allocates (``tflite.tflm_arena``) - and the latency of a model on every runtime.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import bench
from ..estimate import Board, board_share, totals
from ..tflite import breakdown, convert, latency, tflm_arena

__all__ = ["TFLiteCheck", "check_against_tflite", "compare_table", "latency_rows"]

CHECK_CALIBRATION_SAMPLES = 8
"""Random-normal inputs that calibrate the int8 file of :func:`check_against_tflite` (its size and arena
do not depend on the scales)."""


@dataclasses.dataclass
class TFLiteCheck:
    """Estimates next to measurements for one model (:func:`check_against_tflite`)."""

    model: str
    table: pd.DataFrame                          # one row per quantity: estimate, measured, gap
    tflite: dict[str, bytes]                     # the converted files, "fp32" and "int8"
    breakdown: dict[str, dict[str, int]]         # tflite.breakdown per mode
    arena: dict[str, dict[str, Any]]             # tflm_arena per mode (without the text report)


def check_against_tflite(model, *, seed: int = 0, tflite: Mapping[str, bytes] | None = None,
                         modes: Sequence[str] = ("fp32", "int8")) -> TFLiteCheck:
    """Convert ``model`` with ``labkit.tflite.convert`` (float32 and full int8, calibrated on
    :data:`CHECK_CALIBRATION_SAMPLES` random-normal inputs drawn with ``seed``; unless ``tflite`` already
    holds the bytes per mode) and compare the estimates with the real thing: weight bytes vs the file's
    tensor data and total size, peak RAM vs the TFLM arena (head = tensors, total = with runtime
    structures).

    Fill the weights first (training or ``estimate.fill_random_weights``): a fresh model's zero biases are
    stored once by the converter and make the file look smaller. Used by notebook 02.
    """
    tot = totals(model)
    files = dict(tflite or {})
    rows, breakdowns, arenas = [], {}, {}
    for mode in modes:
        if mode not in ("fp32", "int8"):
            raise ValueError(f"mode must be 'fp32' or 'int8' (full integer), got {mode!r}")
        if mode not in files:
            rep = None
            if mode == "int8":
                shape = (CHECK_CALIBRATION_SAMPLES, *(int(d) for d in model.input_shape[1:]))
                rep = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
            files[mode] = convert(model, "int8_wa" if mode == "int8" else "fp32", rep).data
        b = files[mode]
        bd = breakdown(b)
        breakdowns[mode] = bd
        est_flash = tot["flash_int8" if mode == "int8" else "flash_fp32"]
        est_ram = tot["ram_int8" if mode == "int8" else "ram_fp32"]
        rows.append({"model": model.name, "mode": mode, "quantity": "flash: weights vs tensor data",
                     "estimate": est_flash, "measured": bd["tensor_data"]})
        rows.append({"model": model.name, "mode": mode, "quantity": "flash: weights vs .tflite file",
                     "estimate": est_flash, "measured": bd["file"]})
        try:
            arena: dict[str, Any] = tflm_arena(b)
        except RuntimeError as err:
            warnings.warn(f"TFLM could not run {model.name} ({mode}): {err}", RuntimeWarning, stacklevel=2)
            arena = {"total": None, "head": None, "tail": None}
        arenas[mode] = dict(arena)
        rows.append({"model": model.name, "mode": mode, "quantity": "RAM: peak vs TFLM arena head",
                     "estimate": est_ram, "measured": arena.get("head")})
        rows.append({"model": model.name, "mode": mode, "quantity": "RAM: peak vs TFLM arena total",
                     "estimate": est_ram, "measured": arena.get("total")})
    table = pd.DataFrame(rows)
    measured = pd.to_numeric(table["measured"], errors="coerce")
    table["gap"] = measured - table["estimate"]
    table["ratio"] = measured / table["estimate"]
    return TFLiteCheck(model.name, table, files, breakdowns, arenas)


def compare_table(checks: Sequence[TFLiteCheck], board: str | Board | None = None) -> pd.DataFrame:
    """One row per model and mode: estimated flash (weights) vs the .tflite file, estimated peak RAM vs
    the TFLM arena (head and total), and, with ``board``, the measured file and arena as a share of the
    board's flash and SRAM. Used by notebooks 02 and 06."""
    rows = []
    for chk in checks:
        t = chk.table.set_index(["mode", "quantity"])
        for mode in chk.breakdown:
            bd, arena = chk.breakdown[mode], chk.arena[mode]
            est_flash = int(t.loc[(mode, "flash: weights vs .tflite file"), "estimate"])
            est_ram = int(t.loc[(mode, "RAM: peak vs TFLM arena head"), "estimate"])
            row = {"model": chk.model, "mode": mode, "flash_est": est_flash, "tensor_data": bd["tensor_data"],
                   "tflite_bytes": bd["file"], "file_over_est": bd["file"] / est_flash if est_flash else math.nan,
                   "ram_est": est_ram, "arena_head": arena.get("head"), "arena_total": arena.get("total"),
                   "arena_over_est": (arena["total"] / est_ram) if arena.get("total") and est_ram else math.nan}
            if board is not None:
                share = board_share(bd["file"], arena.get("total") or 0, board)
                row.update(flash_share=share["flash_share"], ram_share=share["ram_share"], fits=share["fits"])
            rows.append(row)
    return pd.DataFrame(rows)



def latency_rows(model, tflite: Mapping[str, bytes] | None = None, *, runs: int = 100, warmup: int = 10,
                 seed: int = 0, devices: Sequence[str] | None = None) -> pd.DataFrame:
    """Batch-1 latency of one model on every runtime at hand: Keras on each device of
    ``bench.device_info`` (or ``devices``) and LiteRT for each ``.tflite`` in ``tflite`` (``{"fp32": bytes,
    "int8": bytes}``), on one random-normal input. Used by notebook 02."""
    shape = tuple(d or 1 for d in model.input_shape[1:])
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    rows = []
    for device in devices or bench.device_info()["devices"]:
        rows.append({**bench.latency_keras(model, x, runs, warmup, device=device), "model": model.name,
                     "runtime": f"keras ({device})"})
    for mode, data in (tflite or {}).items():
        rows.append({**latency(data, x, runs, warmup), "model": model.name, "runtime": f"litert {mode}"})
    cols = ["model", "runtime", "device", "median_ms", "p10_ms", "p90_ms", "runs"]
    return pd.DataFrame(rows)[cols]
