"""The one call that starts every notebook: ``cfg = session.setup(PROFILE, seed=SEED, ...)``.

It sits above :mod:`labkit.config` and :mod:`labkit.plots` so that neither has to import the other:
the profile and the seeds come from ``config``, the figure style from ``plots``.
"""
from __future__ import annotations

import logging

from . import config, plots

__all__ = ["setup"]


def setup(profile_name: str = "quick", *, seed: int = 0, **overrides) -> config.Profile:
    """Notebook setup in one call: resolve the profile (``None`` overrides ignored), seed everything,
    quiet TensorFlow's Python INFO logs, widen pandas tables, apply the plot style.
    Used by the second code cell of every notebook."""
    import pandas as pd

    cfg = config.profile(profile_name, **overrides)
    config.seed_everything(seed)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # "Assets written to ..." on every conversion
    pd.set_option("display.max_colwidth", 120)
    pd.set_option("display.width", 160)
    plots.use_style()
    return cfg
