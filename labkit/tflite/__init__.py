"""The kit's one TFLite layer: convert, look inside, run (LiteRT and TFLite Micro), export.

=====================  ========================================================================
``files``              :class:`Converted`, :func:`check_tflite`, :func:`op_names`, :func:`storage_table`,
                       :func:`breakdown`, :func:`to_c_array` / :func:`write_c_array`
``converter``          :func:`convert` (``fp32``, ``fp16``, ``int8_w``, ``int8_wa``; ``w4a8`` from a 4-bit QAT
                       model), :func:`convert_all`
``litert``             :class:`LiteRTRunner`, :func:`predict`, :func:`latency`, :func:`invoker`, :func:`quantize_input`,
                       :func:`dequantize`, :func:`io_details`
``micro``              :func:`tflm_arena`, :func:`tflm_min_arena`, :func:`run_tflm`,
                       :func:`compare_tflm_litert`
=====================  ========================================================================

Everything is importable from ``labkit.tflite`` itself (``tflite.convert(model, "int8_wa", x)``). Every
file handed to an interpreter is checked first: a truncated, random or non-TFLite file raises
:class:`InvalidTFLiteError` naming what is wrong. Used by notebooks 02 and 05-08.
"""
from __future__ import annotations

from .files import (
    LOW_BIT_MODES,
    MODE_DESCRIPTIONS,
    MODE_LABELS,
    MODES,
    TFLITE_IDENTIFIER,
    Converted,
    InvalidTFLiteError,
    QuantParams,
    TFLMError,
    breakdown,
    check_tflite,
    op_names,
    storage_table,
    tflite_bytes,
    to_c_array,
    write_c_array,
    zlib_size,
)
from .litert import LiteRTRunner, dequantize, invoker, io_details, latency, predict, quantize_input
from .converter import DEFAULT_CALIBRATION_SAMPLES, ROUTES, convert, convert_all, int4_tensors
from .micro import compare_tflm_litert, run_tflm, tflm_arena, tflm_arena_bytes, tflm_min_arena

__all__ = [
    "MODES", "LOW_BIT_MODES", "MODE_LABELS", "MODE_DESCRIPTIONS", "TFLITE_IDENTIFIER", "ROUTES",
    "DEFAULT_CALIBRATION_SAMPLES", "InvalidTFLiteError", "TFLMError", "QuantParams", "Converted", "convert",
    "convert_all", "int4_tensors", "zlib_size",
    "check_tflite", "tflite_bytes", "io_details", "op_names", "storage_table", "breakdown", "quantize_input",
    "dequantize", "LiteRTRunner", "predict", "invoker", "latency", "tflm_arena", "tflm_arena_bytes", "tflm_min_arena",
    "run_tflm", "compare_tflm_litert", "to_c_array", "write_c_array",
]
