"""The lessons' experiments: what each notebook sweeps, measures and tabulates, built on the techniques.

=================  ====================================================================================
``training``       notebooks 03-04: the (model, features) plan, result tables, forecasts vs truth
``estimation``     notebook 02: estimates vs the converted file and the TFLite Micro arena, latency rows
``conversion``     notebook 05: every conversion mode of a trained model, measured (:func:`compare_modes_kws`)
``quantization``   notebook 06: PTQ / QAT bit sweeps, the summary of real int8 files, worked tables
``pruning``        notebook 07: the pruning sweep, norms, summary tables
``tradeoffs``      notebooks 08-09: reading the search; the course's summary tables (from 05/07/08 or measured)
``claims``         notebook 09: the course's claims (K1-K8, F1-F4) checked on the recorded results
=================  ====================================================================================

Submodules load on first use (``experiments.conversion.compare_modes_kws(...)``), so importing one
lesson's module never loads another's (notebook 06's pulls in tfmot).
"""
from __future__ import annotations

from .. import lazy_submodules

_SUBMODULES = ("training", "estimation", "conversion", "quantization", "pruning", "tradeoffs", "claims")

__getattr__, __dir__ = lazy_submodules(__name__, _SUBMODULES, globals())
