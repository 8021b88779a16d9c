"""The model cache: every trained (or pruned and fine-tuned) model stored under ``data_dir()/models/<key>/``
(``model.h5`` + ``meta.json``), keyed by a hash of what made it (:func:`cache_key`: data :func:`fingerprint`,
features, :func:`architecture_fingerprint`, hyper-parameters, seed, :data:`RECIPE_VERSION`), written atomically
and made under a lock (:func:`cache_lock`) so that two processes never train the same model twice. The
:class:`TrainResult` it stores and returns is what ``labkit.train``'s recipes give back.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import numpy as np

from . import config, models
from .io import atomic_write_text, file_lock, jsonable

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

RECIPE_VERSION = "1"
"""Version of the training recipes (``labkit.train``); bump it when a change should invalidate cached models."""


# --------------------------------------------------------------------------------------------- result
@dataclasses.dataclass
class TrainResult:
    """A trained (or cached) model with its training history and measured metrics.

    ``history`` maps Keras metric names (``loss``, ``val_loss``, ``accuracy`` ...) to per-epoch lists;
    ``metrics`` holds the evaluation (test top-1 or MAE in real units ...); ``train_time_s`` is the
    wall time of the original ``fit`` (features excluded), also on a cache hit. Used by notebooks 03-08.
    """

    model: "tf.keras.Model"
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    train_time_s: float
    cache_hit: bool
    key: str
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def params(self) -> int:
        """Number of parameters (trainable + non-trainable)."""
        return int(self.model.count_params())

    @property
    def path(self) -> Path:
        """The cache folder of this model."""
        return models_dir() / self.key

    def row(self, **extra: Any) -> dict[str, Any]:
        """One flat row for a results table: model, features, scalar metrics, params, size, time.

        Used by notebooks 03 and 04.
        """
        row: dict[str, Any] = {"model": self.info.get("model_name", "")}
        if "features" in self.info:
            row["features"] = self.info["features"].get("name") or self.info["features"].get("kind")
        row.update(extra)
        for k, v in self.metrics.items():
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                row[k] = float(v) if isinstance(v, (float, np.floating)) else int(v)
        row["params"] = self.params
        row["size_kb"] = round(self.params * 4 / 1024, 2)  # float32 weights
        row["train_time_s"] = round(float(self.train_time_s), 1)
        row["epochs"] = len(self.history.get("loss", []))
        row["cache_hit"] = bool(self.cache_hit)
        return row


# ---------------------------------------------------------------------------------------------- cache
def models_dir() -> Path:
    """The model cache: ``data_dir()/models``. Used by notebooks 03-08 (through ``train_*``)."""
    path = config.data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def canonical_json(value: Any) -> str:
    """Sorted, compact JSON of ``value`` (made JSON-safe): what cache keys and study names hash."""
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"))


def hash_arrays(*arrays: np.ndarray, max_full_bytes: int = 1 << 29) -> str:
    """SHA-256 over dtype, shape and content; arrays above ``max_full_bytes`` hash 4,096 evenly spaced
    rows plus per-row sums (so multi-GB datasets fingerprint in seconds)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        if a.nbytes <= max_full_bytes or a.ndim == 0:
            h.update(a.tobytes())
        else:
            rows = np.linspace(0, len(a) - 1, 4096).astype(np.int64)
            h.update(np.ascontiguousarray(a[rows]).tobytes())
            h.update(a.reshape(len(a), -1).sum(axis=1, dtype=np.float64).tobytes())
    return h.hexdigest()


def fingerprint(dataset: Any) -> str:
    """A stable fingerprint of a ``KWSData`` or ``Windows`` (its arrays' content and label names).

    Used by the model cache (notebooks 03-08).
    """
    names = [n for n in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test") if hasattr(dataset, n)]
    if not names:
        raise TypeError(f"cannot fingerprint {type(dataset).__name__}: expected x_train/y_train/... arrays")
    # memoised on the dataset, checked against each array's identity AND a CRC-32 of its bytes (~0.1 s for
    # 230 MB, a third of the SHA-256): arrays changed in place (``w.x_train *= 2``) get a new fingerprint
    ids = tuple((id(a), zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B")))
                for a in (np.asarray(getattr(dataset, n)) for n in names))
    cached = getattr(dataset, "_labkit_fingerprint", None)
    if cached and cached[0] == ids:  # memoised for these very arrays with this very content
        return cached[1]
    h = hashlib.sha256(hash_arrays(*(np.asarray(getattr(dataset, n)) for n in names)).encode())
    for extra in ("labels", "feature_names", "target_names"):
        if hasattr(dataset, extra):
            h.update(canonical_json({extra: list(getattr(dataset, extra))}).encode())
    digest = h.hexdigest()[:32]
    try:  # memoise on the (mutable) dataset object; harmless if it is frozen
        object.__setattr__(dataset, "_labkit_fingerprint", (ids, digest))
    except Exception:  # pragma: no cover
        pass
    return digest


def architecture_fingerprint(model: "tf.keras.Model") -> str:
    """Hash of a model's layer classes, configs (without auto-generated names) and weight shapes.

    Changes when ``labkit.models`` changes an architecture, so stale cached models are not reused.
    """
    parts = []
    for layer in model.layers:
        cfg = {k: v for k, v in layer.get_config().items() if k != "name"}
        parts.append([type(layer).__name__, cfg, [list(w.shape) for w in layer.weights]])
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:16]


def cache_key(task: str, model_name: str, parts: Mapping[str, Any]) -> str:
    """``<task>_<model>_<16 hex>`` from a canonical JSON hash of ``parts`` and :data:`RECIPE_VERSION`.

    Used by ``train.train_kws`` and ``train.train_forecaster``.
    """
    payload = canonical_json({"task": task, "model": model_name, "recipe": RECIPE_VERSION, **parts})
    return f"{task}_{model_name}_{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


def load_cached(key: str, *, compile_fn: Callable[["tf.keras.Model"], None] | None = None) -> TrainResult | None:
    """The cached :class:`TrainResult` for ``key``, or ``None`` if absent (or unreadable).

    Used by ``labkit.train`` and ``labkit.search`` (notebooks 03-09).
    """
    folder = models_dir() / key
    meta_path, model_path = folder / "meta.json", folder / "model.h5"
    if not (meta_path.exists() and model_path.exists()):
        return None
    import tensorflow as tf

    try:
        meta = json.loads(meta_path.read_text())
        model = tf.keras.models.load_model(model_path, compile=False, custom_objects=models.custom_objects())
    except Exception as exc:  # corrupt entry: retrain rather than fail
        print(f"[train] ignoring unreadable cache entry {folder} ({type(exc).__name__}: {exc})")
        return None
    if compile_fn is not None:
        compile_fn(model)
    return TrainResult(model=model, history=meta.get("history", {}), metrics=meta.get("metrics", {}),
                       train_time_s=float(meta.get("train_time_s", float("nan"))), cache_hit=True,
                       key=key, info=meta.get("info", {}))


def save_cached(result: TrainResult) -> Path:
    """Store ``result`` under ``models_dir()/<key>/`` atomically (temp folder, then rename).

    Used by ``train.train_kws`` and ``train.train_forecaster``.
    """
    root = models_dir()
    final = root / result.key
    tmp = Path(tempfile.mkdtemp(prefix=f".{result.key}.", dir=root))
    try:
        with warnings.catch_warnings():  # "HDF5 is legacy": it is what tfmot and h5 readers handle best
            warnings.simplefilter("ignore", UserWarning)
            result.model.save(tmp / "model.h5", include_optimizer=False, save_format="h5")
        meta = {"key": result.key, "history": result.history, "metrics": result.metrics,
                "train_time_s": result.train_time_s, "info": result.info,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(tmp / "meta.json", json.dumps(jsonable(meta), indent=1, allow_nan=False) + "\n")
        for path in (tmp, tmp / "meta.json"):  # mkdtemp/mkstemp create owner-only entries
            path.chmod(0o755 if path.is_dir() else 0o644)
        try:
            os.replace(tmp, final)
        except OSError:  # an entry exists (a corrupt one was retrained, or a concurrent run was faster): swap it out
            old = root / f".{result.key}.old.{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


@contextlib.contextmanager
def cache_lock(key: str, *, enabled: bool = True) -> Iterator[None]:
    """Hold the lock of cache entry ``key`` while it is looked up, made and stored, unless it is already
    cached (or ``enabled`` is False): a second process asking for the same entry meanwhile waits, then loads
    it, instead of training it again (notebooks side by side in a report run ask for the same models). Used by
    ``train.train_kws``, ``train.train_forecaster`` and ``labkit.search.pruned_model``."""
    if not enabled or (models_dir() / key / "meta.json").exists():
        yield
        return
    with file_lock(models_dir() / f".{key}.lock"):
        yield


def report_hit(res: TrainResult) -> None:
    """Print the one line of a cache hit. Used by ``labkit.train``."""
    print(f"[train] cache hit {res.key}: {res.info.get('model_name', '?')} trained in "
          f"{res.train_time_s:.1f} s, loaded from {res.path}")
