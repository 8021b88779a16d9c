"""What this machine is and whether the stack works: used by notebook 00 and ``labkit info``."""
from __future__ import annotations

import os
import platform
import time
from typing import Callable

import numpy as np
import pandas as pd

from . import config, results


def environment() -> dict[str, object]:
    """Python/TensorFlow/Keras flavour, CPU count, GPUs (or a plain 'none'), folders. Used by notebook 00."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    keras_module = tf.keras.Model.__module__.split(".")[0]
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu_cores": os.cpu_count(),
        "gpus": ", ".join(g.name for g in gpus) if gpus else "none (everything runs on the CPU)",
        "tensorflow": tf.__version__,
        "tf.keras is": "legacy Keras 2 (tf_keras)" if keras_module == "tf_keras" else f"{keras_module} (Keras 3!)",
        "TF_USE_LEGACY_KERAS": os.environ.get("TF_USE_LEGACY_KERAS", "unset"),
        "data cache": str(config.data_dir()),
        "reports": str(config.reports_dir()),
    }


def _check_legacy_keras() -> str:
    import tensorflow as tf
    import tf_keras

    if tf.keras.Model.__module__.split(".")[0] != "tf_keras":
        raise RuntimeError("tf.keras is Keras 3: restart the kernel and `import labkit` before TensorFlow")
    return f"tf.keras -> tf_keras {tf_keras.__version__}"


def _tiny_model():
    import tensorflow as tf

    model = tf.keras.Sequential([
        tf.keras.layers.Input((8,)),
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _check_training(seed: int) -> str:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    model = _tiny_model()
    hist = model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    loss = hist.history["loss"]
    if not loss[-1] < loss[0]:
        raise RuntimeError(f"loss did not decrease: {loss}")
    return f"loss {loss[0]:.3f} -> {loss[-1]:.3f} in 5 epochs"


def _check_tfmot() -> str:
    import tensorflow_model_optimization as tfmot

    pruned = tfmot.sparsity.keras.prune_low_magnitude(_tiny_model())
    qat = tfmot.quantization.keras.quantize_model(_tiny_model())
    return f"prune_low_magnitude ({len(pruned.layers)} layers) and quantize_model ({len(qat.layers)} layers) accept tf.keras models"


def _check_litert() -> str:
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    data = tf.lite.TFLiteConverter.from_keras_model(_tiny_model()).convert()
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
    interp.invoke()
    out = interp.get_tensor(interp.get_output_details()[0]["index"])
    if not np.isclose(out.sum(), 1.0, atol=1e-4):
        raise RuntimeError(f"softmax output does not sum to 1: {out}")
    return f"converted {len(data):,} B .tflite and ran it with ai_edge_litert"


def _check_tflm() -> str:
    import tensorflow as tf
    from tflite_micro.python.tflite_micro import runtime

    data = tf.lite.TFLiteConverter.from_keras_model(_tiny_model()).convert()
    interp = runtime.Interpreter.from_bytes(data)
    interp.set_input(np.zeros((1, 8), np.float32), 0)
    interp.invoke()
    out = interp.get_output(0)
    return f"TFLite Micro runtime ran the model (output shape {tuple(out.shape)})"


def _check_espeak() -> str:
    import ctypes

    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    return f"eSpeak NG {lib.espeak_Info(None).decode()} loaded (synthetic keyword set available offline)"


def _check_weather() -> str:
    import pvlib

    path = os.path.join(os.path.dirname(pvlib.__file__), "data", "bsrn-pay0616.dat.gz")
    if not os.path.exists(path):
        raise RuntimeError(f"pvlib {pvlib.__version__} lacks bsrn-pay0616.dat.gz: pip install pvlib==0.11.2")
    return f"pvlib {pvlib.__version__} ships the Payerne BSRN file (offline weather data)"


def check_stack(seed: int = 0) -> pd.DataFrame:
    """Run a small end-to-end check of each part of the stack; one row per check with status and time.

    Never raises: a failing check is reported with its error message. Used by notebook 00.
    """
    checks: list[tuple[str, Callable[[], str]]] = [
        ("legacy Keras 2", _check_legacy_keras),
        ("train a tiny model", lambda: _check_training(seed)),
        ("tfmot pruning + QAT wrappers", _check_tfmot),
        ("TFLite conversion + LiteRT", _check_litert),
        ("TFLite Micro runtime", _check_tflm),
        ("eSpeak NG (synthetic speech)", _check_espeak),
        ("Payerne weather data", _check_weather),
    ]
    rows = []
    for name, fn in checks:
        t0 = time.perf_counter()
        try:
            detail, ok = fn(), True
        except Exception as exc:  # report every failure instead of stopping at the first
            detail, ok = f"{type(exc).__name__}: {exc}", False
        rows.append({"check": name, "ok": ok, "seconds": round(time.perf_counter() - t0, 3), "detail": detail})
    return pd.DataFrame(rows)


def versions_frame() -> pd.DataFrame:
    """Package versions as a two-column table. Used by notebook 00."""
    return pd.DataFrame(list(results.versions().items()), columns=["package", "version"])
