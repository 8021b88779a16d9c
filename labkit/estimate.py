"""What a model costs on a microcontroller, estimated from the Keras graph alone (no converter here).

* :func:`profile` - one row per layer: parameters, constant bytes (float32 / int8), multiply-accumulates
  (MACs) and activation bytes, plus a totals row; :func:`totals` its headline numbers.
* :func:`peak_ram` / :func:`memory_timeline` - peak activation memory for batch 1 when the layers run one
  after another in topological order and every tensor is freed after its last use (what the TFLite Micro
  memory planner achieves on chain-like graphs).
* :data:`BOARDS` / :func:`board_share` - the share of a board's flash and SRAM a model takes.
* :class:`McuModel` / :data:`CORTEX_M4` - a first-order microcontroller latency from the MACs.

``labkit.experiments.estimation.check_against_tflite`` puts these estimates next to the real thing (the
converted file from ``labkit.tflite.convert`` and the TFLite Micro arena).

Counting conventions (the ones MLPerf Tiny and most papers use):

* 1 MAC = one multiply + one add; **FLOPs = 2 x MACs**. Bias additions, activations, BatchNorm at
  inference and pooling are *not* MACs (pooling's adds/compares are tiny next to the convolutions: 8,000
  for DS-CNN's average pooling against 2.66 M MACs).
* BatchNorm parameters are counted in ``params``, but the converter folds BN into the convolution or
  Dense layer before it, so its bytes are zero in the weight columns (``folded=True``) - except the bias it
  creates when that layer has none. ReLU/ReLU6 after a convolution, Dense or element-wise layer is fused
  into it and Dropout disappears at inference: they are ``folded`` too and add no tensor to the RAM
  estimate (``labkit.graph.fold_plan`` decides, for the estimate and the quantization simulation alike).
* int8 weight bytes: weights 1 byte each, biases int32 (4 bytes each) - the TFLite full-integer scheme.
  The per-channel scales and zero points, tensor names and the flatbuffer structure are *not* included:
  ``labkit.tflite.breakdown`` measures them.
* Besides weights, a converted file stores small int32 constants that some operators read: the target
  shape of a Flatten/Reshape, the axes of a global pooling (MEAN), the axis of a Conv1D's EXPAND_DIMS and
  the begin/end/strides of the slice after an LSTM. They count in the weight columns of their layer
  (:func:`shape_constants`), once per distinct value as the converter stores them, in the form the
  converter gives them: batch axis left open (the default route of ``labkit.tflite.convert``), or fixed
  at 1 for models with a recurrent layer (its fallback route, see PITFALLS.md). With them the estimate
  equals the converted file's tensor data on every model of the kit (tests/test_estimate.py).
* tfmot wrappers (QAT, pruning) are looked through: quantizer ranges, step counters and pruning masks
  are bookkeeping, not weights. A model nested as a layer counts as one row with 0 MACs (a warning
  says so): build flat models.
* RAM follows what the TFLite converter emits: folded layers add no tensor, Flatten/Reshape are real
  copies in TFLite Micro, a softmax/sigmoid after a Dense is its own op, a fused LSTM writes the whole
  sequence before a slice keeps the last step. On the kit's models the int8 and float32 estimates equal
  the arena "head" that TFLite Micro reports (tests/test_estimate.py).
"""
from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .graph import FUSABLE_ACTIVATIONS, FoldPlan, Graph, Node, activation_name, channels, fold_plan, kind, unwrap

__all__ = [
    "Board", "BOARDS", "DEFAULT_BOARD", "board_share", "McuModel", "CORTEX_M4", "profile", "totals", "peak_ram", "memory_timeline",
    "shape_constants", "fill_random_weights", "summary", "TFLM_ALIGNMENT",
]

TFLM_ALIGNMENT = 16
"""Bytes to which TensorFlow Lite Micro aligns every tensor buffer in its arena (``MicroArenaBufferAlignment``)."""

_DTYPE_BYTES = {"int8": 1, "float32": 4, "fp32": 4, "float16": 2, "fp16": 2, "int16": 2}


def _dtype_bytes(dtype: str) -> int:
    try:
        return _DTYPE_BYTES[str(dtype)]
    except KeyError:
        raise ValueError(f"dtype must be one of {sorted(_DTYPE_BYTES)}, got {dtype!r}") from None


# =========================================================================== boards

@dataclasses.dataclass(frozen=True)
class Board:
    """A development board's memory, as published by its maker. Used by notebooks 02 and 08."""

    name: str
    mcu: str
    core: str
    clock_mhz: int
    flash_bytes: int
    sram_bytes: int
    source: str


KiB = 1024
MiB = 1024 * 1024

BOARDS: dict[str, Board] = {
    "nano33ble": Board(
        "Arduino Nano 33 BLE Sense", "Nordic nRF52840", "Arm Cortex-M4F", 64, 1 * MiB, 256 * KiB,
        "Arduino Nano 33 BLE Sense product page / nRF52840 product specification: 1 MB flash, 256 KB RAM"),
    "nucleo_l476rg": Board(
        "STM32 NUCLEO-L476RG", "ST STM32L476RG", "Arm Cortex-M4F", 80, 1 * MiB, 128 * KiB,
        "STM32L476RG datasheet (DS10198): 1 MB flash, 128 KB SRAM (96 KB SRAM1 + 32 KB SRAM2)"),
    "pico": Board(
        "Raspberry Pi Pico", "Raspberry Pi RP2040", "2 x Arm Cortex-M0+", 133, 2 * MiB, 264 * KiB,
        "Raspberry Pi Pico datasheet: RP2040 with 264 KB on-chip SRAM, 2 MB on-board QSPI flash"),
    "nucleo_l4r5zi": Board(
        "STM32 NUCLEO-L4R5ZI", "ST STM32L4R5ZI", "Arm Cortex-M4F", 120, 2 * MiB, 640 * KiB,
        "STM32L4R5xx datasheet: 2 MB flash, 640 KB SRAM, 120 MHz; MLPerf Tiny's reference board"),
}
"""Published flash/SRAM of boards used in TinyML courses (1 KB = 1,024 bytes, as in the datasheets)."""

DEFAULT_BOARD = "nucleo_l4r5zi"
"""The kit's one default board: the board :data:`CORTEX_M4`'s latency figure was measured on, so that
"does it fit" (notebook 02) and "how long does it take" (notebooks 05, 07, 08) speak of the same chip."""


def board_share(flash_bytes: float, ram_bytes: float, board: str | Board = DEFAULT_BOARD) -> dict[str, Any]:
    """Share of ``board``'s flash and SRAM taken by a model (the model alone: the runtime, the feature
    pipeline and the application need the rest). Used by notebooks 02 and 08."""
    b = board if isinstance(board, Board) else BOARDS.get(board)
    if b is None:
        raise ValueError(f"unknown board {board!r}; choose one of {sorted(BOARDS)} or pass a Board")
    return {
        "board": b.name,
        "flash_share": flash_bytes / b.flash_bytes,
        "ram_share": ram_bytes / b.sram_bytes,
        "fits": bool(flash_bytes <= b.flash_bytes and ram_bytes <= b.sram_bytes),
    }


# =========================================================================== MCU latency estimate

@dataclasses.dataclass(frozen=True)
class McuModel:
    """A first-order microcontroller latency model: ``ms = MACs x cycles_per_mac / clock``.

    It ignores per-layer overheads, memory stalls and the different efficiency of depthwise, dense
    and pointwise kernels, so its numbers are *estimates* to compare models with, not measurements.
    Used by notebooks 07 and 08.
    """

    name: str
    clock_hz: float
    cycles_per_mac: float
    source: str

    def latency_ms(self, macs: float) -> float:
        """Estimated inference time in milliseconds for ``macs`` multiply-accumulates."""
        return float(macs) * self.cycles_per_mac / self.clock_hz * 1e3


CORTEX_M4 = McuModel(
    name=f"Cortex-M4F @ {BOARDS[DEFAULT_BOARD].clock_mhz} MHz ({BOARDS[DEFAULT_BOARD].name}, TFLite Micro int8)",
    clock_hz=BOARDS[DEFAULT_BOARD].clock_mhz * 1e6,
    # 120e6 cycles/s / 5.497 inferences/s / 2,656,768 MACs (the MLPerf Tiny DS-CNN, 49x10x1 -> 12) = 8.2
    cycles_per_mac=120e6 / 5.497 / 2_656_768,
    source=("MLPerf Tiny v0.5 reference submission, keyword spotting (DS-CNN) on the NUCLEO-L4R5ZI: "
            "5.497 inferences/s with TensorFlow Lite Micro 2.3.1, int8 "
            "(github.com/mlcommons/tiny_results_v0.5, closed/reference/results/Nucleo-L4R5ZI/kws/"
            "performance/results.txt). Optimised kernels are faster: microTVM + CMSIS-NN reached "
            "10.0 inferences/s (about 4.5 cycles/MAC) on the same board in v1.1."),
)
"""The one figure behind every "estimated MCU latency" (notebooks 02, 05, 07, 08): about 8.2 cycles per
MAC for a Cortex-M4 class core at 120 MHz (:data:`DEFAULT_BOARD`), measured end to end on the DS-CNN
keyword spotter."""


# =========================================================================== the Keras graph

def _tf():
    import tensorflow as tf

    return tf


def _shape(shape: tuple) -> tuple[int, ...]:
    """A node's tensor shape at batch 1; other unknown dimensions are an error."""
    dims = list(shape)
    if dims and dims[0] is None:
        dims[0] = 1
    if any(d is None for d in dims):
        raise ValueError(f"a tensor has an unknown dimension {tuple(shape)}; build the model with a fixed input "
                         "shape (no None except the batch axis)")
    return tuple(int(d) for d in dims)


@dataclasses.dataclass
class _Plan:
    """The walked graph at batch 1 with the converter's folding decisions."""

    graph: Graph
    fold: FoldPlan
    in_shapes: dict[str, list[tuple[int, ...]]]
    out_shapes: dict[str, list[tuple[int, ...]]]
    batch1: bool                      # converted at a fixed batch of 1 (recurrent models)

    def nodes(self) -> list[Node]:
        return self.graph.nodes


def _plan(model) -> _Plan:
    graph = Graph(model)
    return _Plan(graph, fold_plan(graph),
                 {n.name: [_shape(s) for s in n.input_shapes] for n in graph.nodes},
                 {n.name: [_shape(s) for s in n.output_shapes] for n in graph.nodes},
                 any(kind(n.inner) in ("rnn", "bidirectional") for n in graph.nodes))


# =========================================================================== counting rules

def _prod(values) -> int:
    return int(np.prod(values, dtype=np.int64)) if len(values) else 1


def _rnn_macs(layer, in_shape: tuple[int, ...]) -> int:
    tf = _tf()
    gates = 4 if isinstance(layer, tf.keras.layers.LSTM) else 3 if isinstance(layer, tf.keras.layers.GRU) else 1
    steps, features, units = in_shape[1], in_shape[-1], layer.units
    return steps * gates * (features * units + units * units)


def _macs(layer, in_shapes: list[tuple[int, ...]], out_shapes: list[tuple[int, ...]], *, folded: bool = False,
          outer=None, name: str = "") -> int:
    """Multiply-accumulates of one layer call at batch 1."""
    k = kind(layer)
    if not in_shapes:
        return 0
    in_shape, out_shape = in_shapes[0], out_shapes[0]
    if k in ("conv", "depthwise", "separable", "conv_transpose"):
        taps = _prod(layer.kernel_size)
        in_sp, c_in = channels(in_shape, layer)
        out_sp, c_out = channels(out_shape, layer)
        if k == "conv":
            return _prod(out_sp) * c_out * taps * (c_in // getattr(layer, "groups", 1))
        if k == "conv_transpose":
            return _prod(in_sp) * c_in * taps * c_out
        mid = c_in * layer.depth_multiplier
        if k == "depthwise":
            return _prod(out_sp) * mid * taps
        return _prod(out_sp) * mid * taps + _prod(out_sp) * mid * c_out  # separable: depthwise + pointwise
    if k == "dense":
        return _prod(in_shape[1:-1]) * in_shape[-1] * layer.units
    if k == "rnn":
        return _rnn_macs(layer, in_shape)
    if k == "bidirectional":
        return _rnn_macs(layer.forward_layer, in_shape) + _rnn_macs(layer.backward_layer, in_shape)
    if k == "time_distributed":
        return in_shape[1] * _macs(unwrap(layer.layer), [(1,) + in_shape[2:]], [(1,) + out_shape[2:]])
    if k == "batchnorm" and not folded:
        return _prod(out_shape[1:])  # one multiply-add per element when it stays a separate op
    if k == "other" and outer is not None and _params(outer)[0]:
        warnings.warn(f"estimate: no MAC rule for layer {name!r} ({type(layer).__name__}); counted as 0 MACs",
                      RuntimeWarning, stacklevel=3)
    return 0


def shape_constants(layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...], *,
                    batch1: bool = False) -> list[np.ndarray]:
    """The int32 constants the converter stores for one layer besides its weights: a Flatten's target
    shape ``[-1, n]``; a Reshape's target (``[1, *shape]`` at batch 1; with an open batch axis the shape
    is packed at run time from one scalar per target dimension and the slice ``[0]:[1]`` of the input's
    shape); a global pooling's axes; a Conv1D's expand-dims axis (a ``[1, 1, steps, channels]`` reshape
    at batch 1); the begin / end / strides of the slice that keeps an LSTM's last step. ``in_shape`` and
    ``out_shape`` are batch-1 shapes. Used by :func:`profile` (notebook 02)."""
    tf = _tf()
    L = tf.keras.layers

    def i32(*values: int) -> np.ndarray:
        return np.asarray(values, np.int32)

    if isinstance(layer, L.Flatten):
        if len(in_shape) <= 2 or (batch1 and all(d == 1 for d in in_shape[1:-1])):
            return []  # nothing to flatten / (1, 1, .., c) feeds FULLY_CONNECTED as it is at a fixed batch
        return [i32(-1, _prod(out_shape[1:]))]
    if isinstance(layer, L.Reshape):
        if batch1:
            return [i32(1, *out_shape[1:])]
        return [i32(0), i32(1), *[np.int32(d).reshape(()) for d in out_shape[1:]]]
    if type(layer).__name__.startswith(("GlobalAveragePooling", "GlobalMaxPooling")):
        first = 2 if getattr(layer, "data_format", "channels_last") == "channels_first" else 1
        return [i32(*range(first, first + len(in_shape) - 2))]
    if isinstance(layer, L.Conv1D) and not isinstance(layer, L.Conv1DTranspose):
        return [i32(1, 1, *in_shape[1:])] if batch1 else [np.int32(-3).reshape(())]
    if isinstance(layer, L.LSTM) and not layer.return_sequences:
        return [i32(0, -1, 0), i32(0, 0, 0), i32(1, 1, 1)]
    return []


def _weight_bytes(n: Node, plan: _Plan, seen: set[tuple]) -> tuple[int, int]:
    """(float32, int8) bytes the layer's constants take in a converted .tflite (see module docstring);
    ``seen`` holds the int32 constants already stored (the converter stores each distinct one once)."""
    layer, k = n.inner, kind(n.inner)
    if k == "batchnorm":
        bias = plan.fold.bn_bias.get(n.name, 0)
        c = channels(plan.out_shapes[n.name][0], layer)[1]
        if n.name in plan.fold.folded:  # folded into the previous layer; only a bias it lacked remains
            return 4 * bias, 4 * bias
        return 4 * 2 * c, 2 * c  # a MUL and an ADD with per-channel constants
    fp32 = int8 = 0
    for w in _weights(n.layer):
        size = _prod(w.shape)
        fp32 += 4 * size
        leaf = w.name.split("/")[-1]
        int8 += 4 * size if leaf.startswith("bias") else size
    if n.name not in plan.fold.folded and plan.in_shapes[n.name]:
        for const in shape_constants(layer, plan.in_shapes[n.name][0], plan.out_shapes[n.name][0],
                                     batch1=plan.batch1):
            key = (const.shape, const.tobytes())
            if key not in seen:
                seen.add(key)
                fp32 += const.nbytes
                int8 += const.nbytes
    return fp32, int8


_BOOKKEEPING = re.compile(r"(_min|_max|optimizer_step|mask|threshold|pruning_step)(:\d+)?$")


def _weights(layer, trainable: bool = False) -> list:
    """The layer's model weights, without tfmot's quantizer ranges, step counters and pruning masks."""
    weights = layer.trainable_weights if trainable else layer.weights
    return [w for w in weights if not _BOOKKEEPING.search(w.name)]


def _params(layer) -> tuple[int, int]:
    return sum(_prod(w.shape) for w in _weights(layer)), sum(_prod(w.shape) for w in _weights(layer, True))


def _fmt_shape(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join("x".join(str(d) for d in s[1:]) or "scalar" for s in shapes)


# =========================================================================== profile

_COLUMNS = ["name", "type", "output_shape", "params", "trainable", "folded", "macs",
            "weight_bytes_fp32", "weight_bytes_int8", "act_bytes_fp32", "act_bytes_int8"]


def profile(model, *, totals_row: bool = True) -> pd.DataFrame:
    """Per-layer cost table of a Keras model at batch 1.

    Columns: ``name``, ``type``, ``output_shape``, ``params`` (all weights, BN statistics included),
    ``trainable``, ``folded`` (no TFLite op of its own: BN folded / ReLU fused into the layer before,
    Dropout removed), ``macs`` (multiply-accumulates; FLOPs = 2 x MACs), ``weight_bytes_fp32`` /
    ``weight_bytes_int8`` (constants in a converted model; int8 = 1-byte weights + int32 biases, plus
    the int32 shape constants of :func:`shape_constants`), ``act_bytes_fp32`` / ``act_bytes_int8``
    (the layer's output tensor).

    The last row (``name == "total"``) sums every column except the activation columns, which hold the
    peak activation memory of :func:`peak_ram` (the sum of all activations means nothing on a device).
    Pooling, activations, reshapes, dropout and element-wise layers count 0 MACs. Used by notebook 02.
    """
    plan = _plan(model)
    rows = []
    seen: set[tuple] = set()
    for n in plan.nodes():
        params, trainable = _params(n.layer)
        fp32, int8 = _weight_bytes(n, plan, seen)
        outs = plan.out_shapes[n.name]
        act = sum(_prod(s[1:]) for s in outs)
        rows.append({
            "name": n.name, "type": type(n.inner).__name__, "output_shape": _fmt_shape(outs),
            "params": params, "trainable": trainable, "folded": n.name in plan.fold.folded,
            "macs": _macs(n.inner, plan.in_shapes[n.name], outs, folded=n.name in plan.fold.folded, outer=n.layer,
                          name=n.name),
            "weight_bytes_fp32": fp32, "weight_bytes_int8": int8,
            "act_bytes_fp32": 4 * act, "act_bytes_int8": act,
        })
    df = pd.DataFrame(rows, columns=_COLUMNS)
    if totals_row:
        total = {c: int(df[c].sum()) for c in ("params", "trainable", "macs", "weight_bytes_fp32",
                                               "weight_bytes_int8")}
        total.update(name="total", type="", output_shape="", folded=False,
                     act_bytes_fp32=peak_ram(model, "float32"), act_bytes_int8=peak_ram(model, "int8"))
        df = pd.concat([df, pd.DataFrame([total], columns=_COLUMNS)], ignore_index=True)
    return df


def totals(model) -> dict[str, int]:
    """Headline numbers of a model: params, trainable, MACs, flash (weight bytes) and peak RAM at float32
    and int8. Used by notebooks 02, 07 and 08."""
    row = profile(model).iloc[-1]
    return {
        "params": int(row["params"]), "trainable": int(row["trainable"]), "macs": int(row["macs"]),
        "flash_fp32": int(row["weight_bytes_fp32"]), "flash_int8": int(row["weight_bytes_int8"]),
        "ram_fp32": int(row["act_bytes_fp32"]), "ram_int8": int(row["act_bytes_int8"]),
    }


# =========================================================================== peak RAM

@dataclasses.dataclass
class _Step:
    name: str
    inputs: list[str]
    outputs: list[str]
    transient: int = 0  # scratch bytes live during this step only


def _steps(model, elem_bytes: int) -> tuple[list[_Step], dict[str, int], list[str], list[str]]:
    """The ops the converted model runs (after folding), with tensor sizes in bytes."""
    tf = _tf()
    plan = _plan(model)
    size: dict[str, int] = {}
    graph_inputs: list[str] = []
    steps: list[_Step] = []
    for n in plan.nodes():
        in_shapes, out_shapes = plan.in_shapes[n.name], plan.out_shapes[n.name]
        for t, s in zip(n.outputs, out_shapes):
            size[t] = _prod(s[1:]) * elem_bytes
        if n.is_input:
            graph_inputs.extend(n.outputs)
            continue
        if n.name in plan.fold.folded:
            continue
        ins = list(dict.fromkeys(plan.fold.resolve(t) for t in n.inputs))
        layer = n.inner
        k, act = kind(layer), activation_name(layer)
        # the TFLite ops of this layer: (label, output tensor id, bytes); the last one writes the layer output
        ops: list[tuple[str, str, int]] = []
        transient = 0  # kernel scratch live during the layer's first op
        if k == "separable":  # a depthwise op, then a pointwise op
            _, c_in = channels(in_shapes[0], layer)
            out_sp, _ = channels(out_shapes[0], layer)
            ops.append((f"{n.name} (depthwise)", f"{n.outputs[0]}:dw",
                        _prod(out_sp) * c_in * layer.depth_multiplier * elem_bytes))
        if k == "rnn" and isinstance(layer, tf.keras.layers.LSTM):
            # TFLite's fused LSTM writes the whole sequence, then a strided slice keeps the last step;
            # its kernel holds one scratch vector per gate (int16 in the int8 kernel, float32 otherwise).
            steps_, units = in_shapes[0][1], layer.units
            transient = 4 * units * (2 if elem_bytes == 1 else elem_bytes)
            if not layer.return_sequences:
                ops.append((n.name, f"{n.outputs[0]}:seq", steps_ * units * elem_bytes))
                ops.append((f"{n.name} (slice)", "", 0))
        if act not in FUSABLE_ACTIVATIONS and k in ("conv", "depthwise", "separable", "dense", "conv_transpose"):
            ops.append((n.name, f"{n.outputs[0]}:pre_act", size[n.outputs[0]]))  # the activation is its own op
            ops.append((f"{n.name} ({act})", "", 0))
        if not ops or ops[-1][1]:
            ops.append((n.name, "", 0))
        prev = ins
        for j, (label, tid, nbytes) in enumerate(ops):
            outs_j = [tid] if tid else list(n.outputs)
            if tid:
                size[tid] = nbytes
            steps.append(_Step(label, prev, outs_j, transient if j == 0 else 0))
            prev = outs_j
    outs = [plan.fold.resolve(t) for t in plan.graph.output_tensors]
    return steps, size, graph_inputs, outs


def memory_timeline(model, dtype: str = "int8", *, align: int = TFLM_ALIGNMENT) -> pd.DataFrame:
    """Live activation bytes while each op runs (batch 1, ops in topological order, every tensor freed
    after its last use; graph inputs live from the start, outputs to the end). ``align`` rounds each
    tensor up as TFLite Micro does (16 bytes); use 1 for raw tensor bytes. Used by notebook 02."""
    elem = _dtype_bytes(dtype)
    if align < 1:
        raise ValueError(f"align must be >= 1, got {align}")
    steps, size, graph_inputs, outs = _steps(model, elem)

    def aligned(t: str) -> int:
        return int(math.ceil(size[t] / align) * align)

    last_use: dict[str, float] = {}
    for i, st in enumerate(steps):
        for t in st.inputs:
            last_use[t] = i
    for t in outs:
        last_use[t] = math.inf
    born = {t: -1 for t in graph_inputs}
    rows = []
    for i, st in enumerate(steps):
        for t in st.outputs:
            born.setdefault(t, i)
        live = [t for t, b in born.items() if b <= i and (last_use.get(t, b) >= i)]
        rows.append({"step": i, "op": st.name, "live_bytes": sum(aligned(t) for t in live) + st.transient,
                     "tensors": len(live)})
    if not rows:  # a model that is only its input
        rows.append({"step": 0, "op": "input", "live_bytes": sum(aligned(t) for t in graph_inputs),
                     "tensors": len(graph_inputs)})
    return pd.DataFrame(rows)


def peak_ram(model, dtype: str = "int8", *, align: int = TFLM_ALIGNMENT) -> int:
    """Peak activation memory in bytes for batch 1 (``dtype`` "int8" or "float32"): the largest
    :func:`memory_timeline` entry. Works for branching graphs. It is what TFLite Micro's arena needs for
    tensors (its non-persistent "head"); the runtime adds persistent structures on top (see
    ``labkit.tflite.tflm_arena``). Used by notebooks 02, 07 and 08."""
    return int(memory_timeline(model, dtype, align=align)["live_bytes"].max())


# =========================================================================== helpers

def fill_random_weights(model, seed: int = 0, scale: float = 0.1):
    """Give every weight a random value (in place; BN variances stay positive) and return the model.

    A freshly built model has all-zero biases, and the TFLite converter stores identical constants only
    once, so its file is smaller than a trained model's; random weights make size checks honest.
    Used by notebook 02 and the estimate tests.
    """
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        v = rng.normal(0.0, scale, size=tuple(w.shape)).astype(w.dtype.as_numpy_dtype)
        if "moving_variance" in w.name or "gamma" in w.name:
            v = 1.0 + np.abs(v)
        values.append(v)
    model.set_weights(values)
    return model


def summary(models: Mapping[str, Any], board: str | Board | None = DEFAULT_BOARD) -> pd.DataFrame:
    """One row per model: input shape, params, MACs, estimated flash and peak RAM at float32 and int8,
    and (with ``board``) the int8 estimates as a share of the board. Used by notebooks 02 and 08."""
    rows = []
    for name, model in models.items():
        tot = totals(model)
        row = {"model": name, "input": "x".join(str(d) for d in model.input_shape[1:]), **tot}
        if board is not None:
            share = board_share(tot["flash_int8"], tot["ram_int8"], board)
            row.update(flash_share_int8=share["flash_share"], ram_share_int8=share["ram_share"], fits_int8=share["fits"])
        rows.append(row)
    return pd.DataFrame(rows)
