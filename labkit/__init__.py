"""tinyml-labkit: helpers for the TinyML course notebooks.

Importing ``labkit`` does exactly one thing besides defining names: it selects the
legacy Keras 2 API (``TF_USE_LEGACY_KERAS=1``) that tensorflow-model-optimization
needs, and quiets TensorFlow's C++ logs.  It must therefore be imported *before*
TensorFlow; if TensorFlow was imported first without the switch, a warning says so.
Submodules are imported lazily (``labkit.data``, ``labkit.features`` ...).
"""
from __future__ import annotations

import importlib
import os
import sys
import warnings

__version__ = "0.1.0"

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    warnings.warn(
        "TensorFlow was imported before labkit without TF_USE_LEGACY_KERAS=1, so tf.keras is "
        "Keras 3 and tensorflow-model-optimization will reject the models. Restart the kernel "
        "and import labkit first (or set TF_USE_LEGACY_KERAS=1 before importing TensorFlow).",
        RuntimeWarning,
        stacklevel=2,
    )
elif "tensorflow" in sys.modules and "keras" in sys.modules and "tf_keras" not in sys.modules:
    warnings.warn(
        "Keras 3 (`import keras`) is already loaded; labkit builds every model with tf_keras. "
        "Restart the kernel and import labkit first.",
        RuntimeWarning,
        stacklevel=2,
    )

_SUBMODULES = (
    "config", "io", "results", "bench", "metrics", "graph", "models", "data", "features", "estimate", "tflite",
    "train", "tasks", "quantize", "prune", "search", "studies", "colab", "experiments", "plots", "widgets", "session", "system",
    "manifest", "report_pages", "report_index", "pagecheck", "report", "cli",
)


def lazy_submodules(package: str, names: tuple[str, ...], namespace: dict):
    """``(__getattr__, __dir__)`` for a package whose submodules ``names`` load on first access (PEP 562),
    so importing the package stays cheap. Used here and by ``labkit.experiments``."""

    def __getattr__(name: str):
        if name in names:
            module = importlib.import_module(f"{package}.{name}")
            namespace[name] = module
            return module
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(list(namespace) + list(names))

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_submodules(__name__, _SUBMODULES, globals())
