"""What a model costs on a microcontroller, estimated from the Keras graph and checked against TFLite.

* :func:`profile` - one row per layer: parameters, weight bytes (float32 / int8), multiply-accumulates
  (MACs) and activation bytes, plus a totals row.
* :func:`peak_ram` / :func:`memory_timeline` - peak activation memory for batch 1 when the layers run one
  after another in topological order and every tensor is freed after its last use (what the TFLite Micro
  memory planner achieves on chain-like graphs).
* :data:`BOARDS` / :func:`board_share` - the share of a board's flash and SRAM a model takes.
* :func:`check_against_tflite` - the estimates next to the real thing: the size of the converted
  ``.tflite`` (float32 and full int8), what that file holds (:func:`tflite_breakdown`), and the tensor
  arena the TensorFlow Lite Micro runtime allocates (:func:`tflm_arena`).

Counting conventions (the ones MLPerf Tiny and most papers use):

* 1 MAC = one multiply + one add; **FLOPs = 2 x MACs**. Bias additions, activations, BatchNorm at
  inference and pooling are *not* MACs (pooling's adds/compares are tiny next to the convolutions: 8,000
  for DS-CNN's average pooling against 2.66 M MACs).
* BatchNorm parameters are counted in ``params``, but the converter folds BN into the convolution or
  Dense layer before it, so its bytes are zero in the weight columns (``folded=True``) - except the bias it
  creates when that layer has none. ReLU/ReLU6 after a convolution or Dense layer is fused into it and
  Dropout disappears at inference: they are ``folded`` too and add no tensor to the RAM estimate.
* int8 weight bytes: weights 1 byte each, biases int32 (4 bytes each) - the TFLite full-integer scheme.
  The per-channel scales and zero points, tensor names and the flatbuffer structure are *not* included:
  :func:`tflite_breakdown` measures them.
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
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "Board", "BOARDS", "board_share", "profile", "totals", "peak_ram", "memory_timeline",
    "fill_random_weights", "tflite_breakdown", "tflm_arena", "tflm_arena_bytes", "TFLiteCheck",
    "check_against_tflite", "compare_table", "summary", "plot_macs", "plot_memory", "TFLM_ALIGNMENT",
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
}
"""Published flash/SRAM of three boards used in TinyML courses (1 KB = 1,024 bytes, as in the datasheets)."""


def board_share(flash_bytes: float, ram_bytes: float, board: str | Board = "nano33ble") -> dict[str, Any]:
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


# =========================================================================== the Keras graph

def _tf():
    import tensorflow as tf

    return tf


@dataclasses.dataclass
class _Node:
    """One call of a layer in the model graph (a layer called twice gives two nodes)."""

    name: str
    layer: Any                       # the (unwrapped) Keras layer
    outer: Any                       # the layer as it sits in the model (maybe a tfmot wrapper)
    inputs: list[str]
    outputs: list[str]
    input_shapes: list[tuple[int, ...]]
    output_shapes: list[tuple[int, ...]]
    is_input: bool = False
    folded: bool = False             # no TFLite op of its own (folded BN, fused ReLU, Dropout)
    fused_act: bool = False          # a following ReLU was fused into this op
    bias_from_bn: int = 0            # bias elements a folded BN adds to the layer before it
    bn_bias: int = 0                 # on a folded BN: the bias elements it creates (shown on its row)


def _shape(kt) -> tuple[int, ...]:
    dims = list(kt.shape)
    if dims and dims[0] is None:
        dims[0] = 1
    if any(d is None for d in dims):
        raise ValueError(f"tensor {getattr(kt, 'name', kt)} has an unknown dimension {tuple(kt.shape)}; "
                         "build the model with a fixed input shape (no None except the batch axis)")
    return tuple(int(d) for d in dims)


def _unwrap(layer):
    tf = _tf()
    keep = (tf.keras.layers.TimeDistributed, tf.keras.layers.Bidirectional)
    while isinstance(layer, tf.keras.layers.Wrapper) and not isinstance(layer, keep):
        layer = layer.layer  # tfmot QuantizeWrapper / PruneLowMagnitude and friends
    return layer


def _nodes(model) -> list[_Node]:
    """The model's layer calls in a topological order that follows creation order among siblings."""
    tf = _tf()
    if not isinstance(model, tf.keras.Model):
        raise TypeError(f"expected a tf.keras Model (legacy Keras 2), got {type(model).__name__}; build it with "
                        "labkit.models.build or tf.keras after `import labkit`")
    by_depth = getattr(model, "_nodes_by_depth", None)
    if not by_depth:
        raise ValueError(f"model {model.name!r} has no graph yet: build it with an input shape "
                         "(tf.keras.Input(...) or a first layer with input_shape=...) before estimating")
    rank = {id(layer): i for i, layer in enumerate(model.layers)}
    raw = [n for depth in by_depth for n in by_depth[depth]]
    produced_by = {}
    for k, n in enumerate(raw):
        for t in n.flat_output_ids:
            produced_by[t] = k
    deps = {k: {produced_by[t] for t in n.flat_input_ids if t in produced_by} for k, n in enumerate(raw)}
    order, done = [], set()
    while len(order) < len(raw):  # Kahn's algorithm, ready nodes by layer creation order
        ready = [k for k in range(len(raw)) if k not in done and deps[k] <= done]
        if not ready:
            raise ValueError(f"model {model.name!r} has a cycle in its layer graph")
        k = min(ready, key=lambda j: (rank.get(id(raw[j].layer), len(rank)), j))
        order.append(k)
        done.add(k)
    calls: dict[int, int] = {}
    out = []
    for k in order:
        n = raw[k]
        calls[id(n.layer)] = calls.get(id(n.layer), 0) + 1
        name = n.layer.name if calls[id(n.layer)] == 1 else f"{n.layer.name}#{calls[id(n.layer)]}"
        out.append(_Node(
            name=name, layer=_unwrap(n.layer), outer=n.layer,
            inputs=list(n.flat_input_ids), outputs=list(n.flat_output_ids),
            input_shapes=[_shape(t) for t in n.keras_inputs],
            output_shapes=[_shape(t) for t in tf.nest.flatten(n.outputs)],
            is_input=isinstance(n.layer, tf.keras.layers.InputLayer),
        ))
    return out


_IDENTITY_AT_INFERENCE = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout",
                          "GaussianDropout", "GaussianNoise", "ActivityRegularization")
_FUSABLE_ACTS = ("linear", "relu", "relu6")


def _act_name(layer) -> str:
    act = getattr(layer, "activation", None)
    while act is not None and not hasattr(act, "__name__") and hasattr(act, "activation"):
        act = act.activation  # tfmot's QuantizeAwareActivation wraps the real one
    if act is None or type(act).__name__ == "NoOpActivation":  # tfmot: linear, output quantized later
        return "linear"
    return getattr(act, "__name__", str(act))


def _is_relu(layer) -> bool:
    tf = _tf()
    if isinstance(layer, tf.keras.layers.ReLU):
        mv = layer.max_value
        return float(layer.negative_slope) == 0 and float(layer.threshold) == 0 and (mv is None or float(mv) == 6)
    return type(layer).__name__ == "Activation" and _act_name(layer) in ("relu", "relu6")


def _kind(layer) -> str:
    """Coarse layer kind used by the counting rules."""
    tf = _tf()
    L = tf.keras.layers
    if isinstance(layer, L.InputLayer):
        return "input"
    if isinstance(layer, L.DepthwiseConv2D) or type(layer).__name__ == "DepthwiseConv1D":
        return "depthwise"
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        return "separable"
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return "conv_transpose"
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        return "conv"
    if isinstance(layer, L.Dense):
        return "dense"
    if isinstance(layer, L.BatchNormalization):
        return "batchnorm"
    if isinstance(layer, (L.LSTM, L.GRU, L.SimpleRNN)):
        return "rnn"
    if isinstance(layer, L.Bidirectional):
        return "bidirectional"
    if isinstance(layer, L.TimeDistributed):
        return "time_distributed"
    if type(layer).__name__ in _IDENTITY_AT_INFERENCE or type(layer).__name__ == "QuantizeLayer":
        return "identity"  # tfmot's QuantizeLayer: nothing left once inputs are int8
    if "Pooling" in type(layer).__name__:
        return "pooling"
    if isinstance(layer, (L.Flatten, L.Reshape)):
        return "reshape"
    return "other"


def _resolve(alias: dict[str, str], t: str) -> str:
    while t in alias:
        t = alias[t]
    return t


def _plan(model) -> tuple[list[_Node], dict[str, str], list[str]]:
    """Nodes with their folding decisions, the tensor aliases these create, and the model outputs."""
    nodes = _nodes(model)
    consumers: dict[str, int] = {}
    for n in nodes:
        for t in n.inputs:
            consumers[t] = consumers.get(t, 0) + 1
    model_outputs = [str(id(t)) for t in model.outputs]
    for t in model_outputs:
        consumers[t] = consumers.get(t, 0) + 1
    producer = {t: n for n in nodes for t in n.outputs}
    alias: dict[str, str] = {}

    def single_chain(t: str) -> _Node | None:
        """The op that really produces ``t`` if every tensor on the way has this one consumer."""
        while True:
            if consumers.get(t, 0) != 1:
                return None
            if t in alias:
                t = alias[t]
                continue
            return producer.get(t)

    for n in nodes:
        kind = _kind(n.layer)
        if n.is_input or len(n.inputs) != 1 or len(n.outputs) != 1:
            continue
        if kind == "identity":
            n.folded = True
        elif kind == "batchnorm":
            p = single_chain(n.inputs[0])
            if p is not None and _kind(p.layer) in ("conv", "depthwise", "separable", "dense") \
                    and _act_name(p.layer) == "linear" and not p.fused_act:
                n.folded = True
                if not getattr(p.layer, "use_bias", True) and p.bias_from_bn == 0:
                    p.bias_from_bn = n.bn_bias = _split(p.output_shapes[0], p.layer)[1]
        elif _is_relu(n.layer):
            p = single_chain(n.inputs[0])
            if p is not None and _kind(p.layer) in ("conv", "depthwise", "separable", "dense") \
                    and _act_name(p.layer) == "linear" and not p.fused_act:
                n.folded = True
                p.fused_act = True
        if n.folded:
            alias[n.outputs[0]] = n.inputs[0]
    return nodes, alias, model_outputs


# =========================================================================== counting rules

def _prod(values) -> int:
    return int(np.prod(values, dtype=np.int64)) if len(values) else 1


def _channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") != "channels_first"


def _split(shape: tuple[int, ...], layer) -> tuple[tuple[int, ...], int]:
    """(spatial dims, channels) of a batch-first feature map."""
    if _channels_last(layer):
        return shape[1:-1], shape[-1]
    return shape[2:], shape[1]


def _rnn_macs(layer, in_shape: tuple[int, ...]) -> int:
    tf = _tf()
    gates = 4 if isinstance(layer, tf.keras.layers.LSTM) else 3 if isinstance(layer, tf.keras.layers.GRU) else 1
    steps, features, units = in_shape[1], in_shape[-1], layer.units
    return steps * gates * (features * units + units * units)


def _macs(n: _Node) -> int:
    """Multiply-accumulates of one layer call at batch 1."""
    layer, kind = n.layer, _kind(n.layer)
    if not n.input_shapes:
        return 0
    in_shape, out_shape = n.input_shapes[0], n.output_shapes[0]
    if kind in ("conv", "depthwise", "separable", "conv_transpose"):
        k = _prod(layer.kernel_size)
        in_sp, c_in = _split(in_shape, layer)
        out_sp, c_out = _split(out_shape, layer)
        if kind == "conv":
            return _prod(out_sp) * c_out * k * (c_in // getattr(layer, "groups", 1))
        if kind == "conv_transpose":
            return _prod(in_sp) * c_in * k * c_out
        mid = c_in * layer.depth_multiplier
        if kind == "depthwise":
            return _prod(out_sp) * mid * k
        return _prod(out_sp) * mid * k + _prod(out_sp) * mid * c_out  # separable: depthwise + pointwise
    if kind == "dense":
        return _prod(in_shape[1:-1]) * in_shape[-1] * layer.units
    if kind == "rnn":
        return _rnn_macs(layer, in_shape)
    if kind == "bidirectional":
        return _rnn_macs(layer.forward_layer, in_shape) + _rnn_macs(layer.backward_layer, in_shape)
    if kind == "time_distributed":
        inner = _Node(n.name, _unwrap(layer.layer), layer.layer, [], [], [(1,) + in_shape[2:]],
                      [(1,) + out_shape[2:]])
        return in_shape[1] * _macs(inner)
    if kind == "batchnorm" and not n.folded:
        return _prod(out_shape[1:])  # one multiply-add per element when it stays a separate op
    if kind == "other" and _params(n.outer)[0]:
        warnings.warn(f"estimate: no MAC rule for layer {n.name!r} ({type(layer).__name__}); counted as 0 MACs",
                      RuntimeWarning, stacklevel=3)
    return 0


def _weight_bytes(n: _Node) -> tuple[int, int]:
    """(float32, int8) bytes the layer's constants take in a converted .tflite (see module docstring)."""
    layer, kind = n.layer, _kind(n.layer)
    if kind == "batchnorm":
        channels = n.output_shapes[0][-1] if _channels_last(layer) else n.output_shapes[0][1]
        if n.folded:  # folded into the previous layer; only a bias it lacked remains
            return 4 * n.bn_bias, 4 * n.bn_bias
        return 4 * 2 * channels, 2 * channels  # a MUL and an ADD with per-channel constants
    fp32 = int8 = 0
    for w in _weights(n.outer):
        size = _prod(w.shape)
        fp32 += 4 * size
        leaf = w.name.split("/")[-1]
        int8 += 4 * size if leaf.startswith("bias") else size
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
    ``weight_bytes_int8`` (constants in a converted model; int8 = 1-byte weights + int32 biases),
    ``act_bytes_fp32`` / ``act_bytes_int8`` (the layer's output tensor).

    The last row (``name == "total"``) sums every column except the activation columns, which hold the
    peak activation memory of :func:`peak_ram` (the sum of all activations means nothing on a device).
    Pooling, activations, reshapes, dropout and element-wise layers count 0 MACs. Used by notebook 02.
    """
    nodes, _, _ = _plan(model)
    rows = []
    for n in nodes:
        params, trainable = _params(n.outer)
        fp32, int8 = _weight_bytes(n)
        act = sum(_prod(s[1:]) for s in n.output_shapes)
        rows.append({
            "name": n.name, "type": type(n.layer).__name__, "output_shape": _fmt_shape(n.output_shapes),
            "params": params, "trainable": trainable, "folded": bool(n.folded), "macs": _macs(n),
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
    nodes, alias, model_outputs = _plan(model)
    size: dict[str, int] = {}
    graph_inputs: list[str] = []
    steps: list[_Step] = []
    for n in nodes:
        for t, s in zip(n.outputs, n.output_shapes):
            size[t] = _prod(s[1:]) * elem_bytes
        if n.is_input:
            graph_inputs.extend(n.outputs)
            continue
        if n.folded:
            continue
        ins = list(dict.fromkeys(_resolve(alias, t) for t in n.inputs))
        kind, act = _kind(n.layer), _act_name(n.layer)
        # the TFLite ops of this layer: (label, output tensor id, bytes); the last one writes the layer output
        ops: list[tuple[str, str, int]] = []
        transient = 0  # kernel scratch live during the layer's first op
        if kind == "separable":  # a depthwise op, then a pointwise op
            _, c_in = _split(n.input_shapes[0], n.layer)
            out_sp, _ = _split(n.output_shapes[0], n.layer)
            ops.append((f"{n.name} (depthwise)", f"{n.outputs[0]}:dw",
                        _prod(out_sp) * c_in * n.layer.depth_multiplier * elem_bytes))
        if kind == "rnn" and isinstance(n.layer, tf.keras.layers.LSTM):
            # TFLite's fused LSTM writes the whole sequence, then a strided slice keeps the last step;
            # its kernel holds one scratch vector per gate (int16 in the int8 kernel, float32 otherwise).
            steps_, units = n.input_shapes[0][1], n.layer.units
            transient = 4 * units * (2 if elem_bytes == 1 else elem_bytes)
            if not n.layer.return_sequences:
                ops.append((n.name, f"{n.outputs[0]}:seq", steps_ * units * elem_bytes))
                ops.append((f"{n.name} (slice)", "", 0))
        if act not in _FUSABLE_ACTS and kind in ("conv", "depthwise", "separable", "dense", "conv_transpose"):
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
    outs = [_resolve(alias, t) for t in model_outputs]
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
    :func:`tflm_arena`). Used by notebooks 02, 07 and 08."""
    return int(memory_timeline(model, dtype, align=align)["live_bytes"].max())


# =========================================================================== the real thing

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


def _convert_minimal(model, mode: str, *, seed: int = 0, samples: int = 8) -> bytes:
    """Keras -> .tflite for the estimate checks only: "fp32", or "int8" (full integer, int8 input and
    output, random-normal representative data). A batch-1 concrete function is converted (the plain
    Keras path fails on LSTMs, PITFALLS.md). labkit.convert.convert is the kit's converter; this
    stand-in keeps the estimate checks independent of it and can be replaced by it."""
    tf = _tf()
    if mode not in ("fp32", "int8"):
        raise ValueError(f"mode must be 'fp32' or 'int8', got {mode!r}")
    shapes = [(1,) + tuple(int(d) for d in s.shape[1:]) for s in model.inputs]
    specs = [tf.TensorSpec(s, tf.float32) for s in shapes]
    fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    # A bare tf.Module holding the variables is enough for the converter's SavedModel path (which keeps
    # LSTMs fused) and is saved ~15x faster than the Keras model itself; without any trackable object
    # the deprecated path unrolls LSTMs into WHILE loops.
    holder = tf.Module()
    holder.variables_ = list(model.variables)
    holder.fn = fn
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(*specs)], holder)
    if mode == "int8":
        rng = np.random.default_rng(seed)

        def representative():
            for _ in range(samples):
                yield [rng.standard_normal(s).astype(np.float32) for s in shapes]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # "Assets written to ..." for every conversion
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            data, _ = _capture_stderr(converter.convert)  # the converter's C++ chatter
    except Exception as err:
        raise RuntimeError(f"converting {model.name!r} to {mode} TFLite failed: {err}") from err
    finally:
        logger.setLevel(level)
    return data


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    return fb


def _check_flatbuffer(data: bytes) -> None:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected the .tflite file's bytes, got {type(data).__name__} "
                        "(read a file with Path(...).read_bytes())")
    if len(data) < 8 or bytes(data[4:8]) != b"TFL3":
        raise ValueError("these bytes are not a TFLite flatbuffer (no 'TFL3' identifier at offset 4): "
                         "pass the bytes of a .tflite file written by the TFLite converter")


def tflite_breakdown(tflite_bytes: bytes) -> dict[str, int]:
    """Where the bytes of a ``.tflite`` file go: ``tensor_data`` (weights and biases, each distinct buffer
    once), ``quant_params`` (per-tensor/per-channel scales as float32 and zero points as int64),
    ``names`` (tensor names), ``metadata`` (runtime version, conversion info) and ``structure``
    (the rest: flatbuffer tables, shapes, operator lists, alignment padding). Used by notebook 02."""
    _check_flatbuffer(tflite_bytes)
    fb = _schema()
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(bytearray(tflite_bytes), 0))

    def buf_len(i: int) -> int:
        data = m.buffers[i].data
        return 0 if data is None else len(data)

    tensor_bufs, quant, names = set(), 0, 0
    for sg in m.subgraphs or []:
        for t in sg.tensors or []:
            tensor_bufs.add(t.buffer)
            names += len(t.name or b"")
            q = t.quantization
            if q is not None:
                quant += 4 * len(q.scale if q.scale is not None else [])
                quant += 8 * len(q.zeroPoint if q.zeroPoint is not None else [])
                quant += 4 * len(q.min if q.min is not None else []) + 4 * len(q.max if q.max is not None else [])
    meta_bufs = {md.buffer for md in (m.metadata or [])}
    tensor_data = sum(buf_len(i) for i in tensor_bufs)
    metadata = sum(buf_len(i) for i in meta_bufs - tensor_bufs)
    total = len(tflite_bytes)
    return {"file": total, "tensor_data": tensor_data, "quant_params": quant, "names": names,
            "metadata": metadata, "structure": total - tensor_data - quant - names - metadata}


_ARENA_RE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def _capture_stderr(fn: Callable[[], Any]) -> tuple[Any, str]:
    """Run ``fn`` with file descriptor 2 sent to a temp file (the TFLM runtime prints from C++)."""
    sys.stderr.flush()
    fd = 2
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            result = fn()
        except BaseException as err:  # keep what the C++ side said, it usually names the problem
            os.dup2(saved, fd)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace").strip()
            if text:
                err.add_note("native log:\n" + text[-3000:])
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)
        tmp.seek(0)
        return result, tmp.read().decode("utf-8", "replace")


_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 12: 8, 15: 4, 16: 2, 17: 1}
"""Bytes per element of TFLite's TensorType codes (FLOAT32=0, FLOAT16=1, INT32=2, UINT8=3, INT64=4,
BOOL=6, INT16=7, COMPLEX64=8, INT8=9, FLOAT64=10, ...); unknown types count 8."""


def _variable_tensor_bytes(m) -> int:
    """Sum of the sizes of all tensors without constant data, over every subgraph (an upper bound of
    what the memory planner lays out)."""
    total = 0
    for g in range(m.SubgraphsLength()):
        sg = m.Subgraphs(g)
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            buf = m.Buffers(t.Buffer()) if t.Buffer() < m.BuffersLength() else None
            if buf is not None and buf.DataLength() > 0:
                continue
            shape = [max(1, int(d)) for d in t.ShapeAsNumpy()] if t.ShapeLength() else [1]
            total += _prod(shape) * _TYPE_BYTES.get(t.Type(), 8)
    return total


def tflm_arena(tflite_bytes: bytes, *, arena_size: int | None = None) -> dict[str, Any]:
    """Tensor arena the TensorFlow Lite Micro runtime really allocates for a model (one inference on zeros,
    then its RecordingMicroAllocator report). Returns ``total``, ``head`` (non-persistent: activation
    tensors and kernel scratch buffers, laid out by the memory planner) and ``tail`` (persistent: tensor
    and node structs, quantization data, kernel state), in bytes, plus the raw ``report``.

    These figures come from the host (x86-64) build with reference kernels: on a 32-bit MCU pointers are
    half as large (smaller tail) and optimised kernels (CMSIS-NN) may ask for extra scratch (larger
    head). Used by notebook 02 (and by labkit.convert)."""
    from tflite_micro.python.tflite_micro import runtime

    _check_flatbuffer(tflite_bytes)
    fb = _schema()
    m = fb.Model.GetRootAsModel(bytearray(tflite_bytes), 0)
    n_inputs = m.Subgraphs(0).InputsLength()
    # Generous by default: TFLM can crash (not fail cleanly) when a kernel's temporary allocation does
    # not fit, so start above the sum of every non-constant tensor (the planner never needs more).
    size = arena_size or (2 * _variable_tensor_bytes(m) + 4 * len(tflite_bytes) + (1 << 20))
    last_error: Exception | None = None
    for _ in range(6):
        def run():
            interp = runtime.Interpreter.from_bytes(bytes(tflite_bytes), arena_size=size)
            for i in range(n_inputs):
                d = interp.get_input_details(i)
                interp.set_input(np.zeros(d["shape"], dtype=d["dtype"]), i)
            interp.invoke()
            interp.print_allocations()

        try:
            _, text = _capture_stderr(run)
        except RuntimeError as err:  # arena too small (or an op TFLM lacks): try a larger arena once more
            last_error = err
            if arena_size is not None:
                break
            size *= 4
            continue
        found = {k: int(v) for k, v in _ARENA_RE.findall(text)}
        if "total" not in found:
            raise RuntimeError("the TFLM runtime printed no RecordingMicroAllocator report; got:\n" + text[-2000:])
        return {**found, "report": "\n".join(line for line in text.splitlines() if "RecordingMicroAllocator" in line)}
    raise RuntimeError(f"TFLite Micro could not run this model (last arena size tried: {size:,} bytes): "
                       f"{last_error}. Check that every op is supported by TFLM; pass arena_size= to try "
                       "a specific size.") from last_error


def tflm_arena_bytes(tflite_bytes: bytes) -> int:
    """Total tensor arena in bytes that TensorFlow Lite Micro uses for this model (see :func:`tflm_arena`).
    Used by notebooks 02 and 06."""
    return int(tflm_arena(tflite_bytes)["total"])


@dataclasses.dataclass
class TFLiteCheck:
    """Estimates next to measurements for one model (:func:`check_against_tflite`)."""

    model: str
    table: pd.DataFrame                          # one row per quantity: estimate, measured, gap
    tflite: dict[str, bytes]                     # the converted files, "fp32" and "int8"
    breakdown: dict[str, dict[str, int]]         # tflite_breakdown per mode
    arena: dict[str, dict[str, Any]]             # tflm_arena per mode (without the text report)


def check_against_tflite(model, *, seed: int = 0, tflite: Mapping[str, bytes] | None = None,
                         modes: Sequence[str] = ("fp32", "int8")) -> TFLiteCheck:
    """Convert ``model`` (float32 and full int8, unless ``tflite`` already holds the bytes per mode) and
    compare the estimates with the real thing: weight bytes vs the file's tensor data and total size,
    peak RAM vs the TFLM arena (head = tensors, total = with runtime structures).

    Fill the weights first (training or :func:`fill_random_weights`): a fresh model's zero biases are
    stored once by the converter and make the file look smaller. Used by notebook 02.
    """
    tot = totals(model)
    files = dict(tflite or {})
    rows, breakdown, arenas = [], {}, {}
    for mode in modes:
        if mode not in files:
            files[mode] = _convert_minimal(model, mode, seed=seed)
        b = files[mode]
        bd = tflite_breakdown(b)
        breakdown[mode] = bd
        est_flash = tot["flash_int8" if mode == "int8" else "flash_fp32"]
        est_ram = tot["ram_int8" if mode == "int8" else "ram_fp32"]
        rows.append({"model": model.name, "mode": mode, "quantity": "flash: weights vs tensor data",
                     "estimate": est_flash, "measured": bd["tensor_data"]})
        rows.append({"model": model.name, "mode": mode, "quantity": "flash: weights vs .tflite file",
                     "estimate": est_flash, "measured": bd["file"]})
        try:
            arena = tflm_arena(b)
        except RuntimeError as err:
            warnings.warn(f"TFLM could not run {model.name} ({mode}): {err}", RuntimeWarning, stacklevel=2)
            arena = {"total": None, "head": None, "tail": None}
        arenas[mode] = {k: v for k, v in arena.items() if k != "report"}
        rows.append({"model": model.name, "mode": mode, "quantity": "RAM: peak vs TFLM arena head",
                     "estimate": est_ram, "measured": arena.get("head")})
        rows.append({"model": model.name, "mode": mode, "quantity": "RAM: peak vs TFLM arena total",
                     "estimate": est_ram, "measured": arena.get("total")})
    table = pd.DataFrame(rows)
    measured = pd.to_numeric(table["measured"], errors="coerce")
    table["gap"] = measured - table["estimate"]
    table["ratio"] = measured / table["estimate"]
    return TFLiteCheck(model.name, table, files, breakdown, arenas)


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


def summary(models: Mapping[str, Any], board: str | Board | None = "nano33ble") -> pd.DataFrame:
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


def plot_macs(profiles: Mapping[str, pd.DataFrame], *, ncols: int = 2):
    """Horizontal bars of MACs per layer (layers with MACs only), one panel per model. Used by notebook 02."""
    import matplotlib.pyplot as plt

    names = list(profiles)
    nrows = math.ceil(len(names) / ncols)
    heights = [max(1, int((profiles[n]["macs"].iloc[:-1] > 0).sum())) for n in names]
    fig, axes = plt.subplots(nrows, ncols, figsize=(12, 0.9 + 0.28 * max(heights) * nrows + 0.6 * nrows),
                             squeeze=False)
    for ax, name in zip(axes.flat, names):
        df = profiles[name]
        df = df[(df["name"] != "total") & (df["macs"] > 0)]
        ax.barh(df["name"][::-1], df["macs"][::-1], color="tab:blue")
        total = int(profiles[name]["macs"].iloc[-1])
        ax.set_title(f"{name}: {total:,} MACs", fontsize=10)
        ax.set_xlabel("MACs")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_memory(model, dtype: str = "int8", *, align: int = TFLM_ALIGNMENT):
    """Live activation bytes while each op runs (:func:`memory_timeline`), peak highlighted. Used by
    notebook 02."""
    import matplotlib.pyplot as plt

    tl = memory_timeline(model, dtype, align=align)
    peak = tl["live_bytes"].max()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    colors = ["tab:red" if v == peak else "tab:gray" for v in tl["live_bytes"]]
    ax.bar(tl["op"], tl["live_bytes"], color=colors)
    ax.set_ylabel(f"live bytes ({dtype})")
    ax.set_title(f"{model.name}: peak {peak:,} B of activations ({dtype}, batch 1)")
    ax.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    return fig
