"""The one walker over a Keras model's graph: layer calls in order, what feeds what, and what the
TFLite converter folds away.

* :class:`Graph` lists the layer calls of a functional or Sequential ``tf.keras`` model in a
  topological order that follows the model's own layer order, with the tensors each call reads and
  writes (ids and shapes), the calls that feed it (:meth:`Graph.inbound`) and those it feeds
  (:meth:`Graph.consumers`). tfmot wrappers (QAT, pruning) are looked through (:func:`unwrap`).
* :func:`fold_plan` says what has no TFLite operator of its own: a BatchNormalization right after a
  convolution or Dense layer (folded into its kernel and bias), a ReLU/ReLU6 right after a
  convolution, Dense or element-wise layer (fused into it) and the layers that vanish at inference
  (Dropout, noise, tfmot's QuantizeLayer).

Used by ``labkit.estimate`` (costs per operator), ``labkit.quantize`` (BatchNorm folding, quantization
points, ReLU fusion for QAT) and ``labkit.prune`` (channel propagation, BatchNorm re-estimation).
No labkit imports; TensorFlow is imported on first use.
"""
from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["Node", "Graph", "FoldPlan", "fold_plan", "unwrap", "activation_name", "fusable_relu", "kind",
           "channels", "IDENTITY_AT_INFERENCE", "FUSABLE_ACTIVATIONS"]

IDENTITY_AT_INFERENCE: tuple[str, ...] = (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout", "GaussianDropout",
    "GaussianNoise", "ActivityRegularization")
"""Layers that compute nothing at inference (the converter drops them)."""

FUSABLE_ACTIVATIONS: tuple[str, ...] = ("linear", "relu", "relu6")
"""Activations TFLite fuses into the convolution / fully-connected operator that computes them."""

_FOLD_BN_INTO = ("conv", "depthwise", "separable", "dense")
_FUSE_RELU_INTO = _FOLD_BN_INTO + ("elementwise",)


def _tf() -> Any:
    import tensorflow as tf

    return tf


# ------------------------------------------------------------------------------------ layer facts
def unwrap(layer: Any) -> Any:
    """The layer inside tfmot's wrappers (QuantizeWrapper, PruneLowMagnitude ...); Keras' own
    TimeDistributed and Bidirectional wrappers are kept (they change what the layer computes)."""
    tf = _tf()
    keep = (tf.keras.layers.TimeDistributed, tf.keras.layers.Bidirectional)
    while isinstance(layer, tf.keras.layers.Wrapper) and not isinstance(layer, keep):
        layer = layer.layer
    return layer


def activation_name(layer: Any) -> str:
    """Name of the activation a layer applies (``"linear"`` without one; tfmot's QAT activation
    wrappers are looked through)."""
    act = getattr(layer, "activation", None)
    while act is not None and not hasattr(act, "__name__") and hasattr(act, "activation"):
        act = act.activation  # tfmot's QuantizeAwareActivation wraps the real one
    if act is None or type(act).__name__ == "NoOpActivation":  # tfmot: linear, output quantized later
        return "linear"
    return getattr(act, "__name__", type(act).__name__)


def fusable_relu(layer: Any) -> str | None:
    """``"relu"`` or ``"relu6"`` for a ReLU layer or activation TFLite can fuse into the operator before
    it (no negative slope, no threshold, no cap other than 6); ``None`` otherwise."""
    tf = _tf()
    if isinstance(layer, tf.keras.layers.ReLU):
        mv = layer.max_value
        if float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
            return None
        if mv is None:
            return "relu"
        return "relu6" if float(mv) == 6 else None
    if type(layer).__name__ == "Activation" and activation_name(layer) in ("relu", "relu6"):
        return activation_name(layer)
    return None


def kind(layer: Any) -> str:
    """Coarse kind of a (unwrapped) layer: ``input``, ``conv``, ``depthwise``, ``separable``,
    ``conv_transpose``, ``dense``, ``batchnorm``, ``rnn``, ``bidirectional``, ``time_distributed``,
    ``identity`` (nothing at inference), ``pooling``, ``reshape``, ``elementwise`` or ``other``."""
    tf = _tf()
    L = tf.keras.layers
    name = type(layer).__name__
    if isinstance(layer, L.InputLayer):
        return "input"
    if isinstance(layer, L.DepthwiseConv2D) or name == "DepthwiseConv1D":
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
    if name in IDENTITY_AT_INFERENCE or name == "QuantizeLayer":
        return "identity"  # tfmot's QuantizeLayer: nothing left once inputs are int8
    if "Pooling" in name:
        return "pooling"
    if isinstance(layer, (L.Flatten, L.Reshape)):
        return "reshape"
    if isinstance(layer, (L.Add, L.Subtract, L.Multiply)):
        return "elementwise"
    return "other"


def channels(shape: tuple[int, ...], layer: Any) -> tuple[tuple[int, ...], int]:
    """(spatial dims, channels) of a batch-first feature map produced or read by ``layer``."""
    if getattr(layer, "data_format", "channels_last") != "channels_first":
        return tuple(shape[1:-1]), shape[-1]
    return tuple(shape[2:]), shape[1]


# -------------------------------------------------------------------------------------- the graph
@dataclasses.dataclass
class Node:
    """One call of a layer in the model graph (a layer called twice gives two nodes, the second named
    ``"<layer>#2"``). Shapes include the batch axis (``None`` where the model leaves it open)."""

    name: str
    layer: Any                       # the layer as it sits in the model (maybe a tfmot wrapper)
    inner: Any                       # the layer with tfmot wrappers removed (:func:`unwrap`)
    inputs: list[str]                # tensor ids read
    outputs: list[str]               # tensor ids written
    input_shapes: list[tuple]
    output_shapes: list[tuple]
    call_kwargs: dict[str, Any]
    is_input: bool = False

    @property
    def cls(self) -> str:
        """Class name of the (unwrapped) layer."""
        return type(self.inner).__name__


class Graph:
    """The layer calls of a built functional or Sequential ``tf.keras`` model, in topological order.

    ``order`` holds node names; :meth:`inbound` the names of the nodes whose outputs a node reads (in
    call order), :meth:`consumers` those reading its outputs; ``inputs`` the input nodes and
    ``outputs`` the nodes producing the model's outputs (``output_tensors`` their tensor ids).
    Used by labkit.estimate, labkit.quantize and labkit.prune.
    """

    def __init__(self, model: Any) -> None:
        tf = _tf()
        if not isinstance(model, tf.keras.Model):
            raise TypeError(f"expected a tf.keras Model (legacy Keras 2), got {type(model).__name__}; build it "
                            "with labkit.models.build or tf.keras after `import labkit`")
        by_depth = getattr(model, "_nodes_by_depth", None)
        if not by_depth:
            raise ValueError(f"model {model.name!r} has no graph yet: build it with an input shape "
                             "(tf.keras.Input(...) or a first layer with input_shape=...)")
        self.model = model
        rank = {id(layer): i for i, layer in enumerate(model.layers)}
        raw = [n for depth in by_depth for n in by_depth[depth]]
        produced_by: dict[str, int] = {}
        for k, n in enumerate(raw):
            for t in n.flat_output_ids:
                produced_by[t] = k
        deps = {k: {produced_by[t] for t in n.flat_input_ids if t in produced_by} for k, n in enumerate(raw)}
        ordered, done = [], set()
        while len(ordered) < len(raw):  # Kahn's algorithm, ready nodes by the model's layer order
            ready = [k for k in range(len(raw)) if k not in done and deps[k] <= done]
            if not ready:
                raise ValueError(f"model {model.name!r} has a cycle in its layer graph")
            k = min(ready, key=lambda j: (rank.get(id(raw[j].layer), len(rank)), j))
            ordered.append(k)
            done.add(k)
        calls: dict[int, int] = {}
        self.nodes: list[Node] = []
        for k in ordered:
            n = raw[k]
            calls[id(n.layer)] = calls.get(id(n.layer), 0) + 1
            name = n.layer.name if calls[id(n.layer)] == 1 else f"{n.layer.name}#{calls[id(n.layer)]}"
            kwargs = {key: v for key, v in (getattr(n, "call_kwargs", None) or {}).items()
                      if not any("KerasTensor" in type(t).__name__ for t in tf.nest.flatten(v))}
            self.nodes.append(Node(
                name=name, layer=n.layer, inner=unwrap(n.layer), inputs=list(n.flat_input_ids),
                outputs=list(n.flat_output_ids), input_shapes=[tuple(t.shape) for t in n.keras_inputs],
                output_shapes=[tuple(t.shape) for t in tf.nest.flatten(n.outputs)], call_kwargs=kwargs,
                is_input=isinstance(n.layer, tf.keras.layers.InputLayer)))
        self._by_name = {n.name: n for n in self.nodes}
        self.order: list[str] = [n.name for n in self.nodes]
        self.producer: dict[str, str] = {t: n.name for n in self.nodes for t in n.outputs}
        self._inbound = {n.name: [self.producer[t] for t in n.inputs if t in self.producer] for n in self.nodes}
        self._consumers: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for src in dict.fromkeys(self._inbound[n.name]):
                self._consumers[src].append(n.name)
        self.output_tensors: list[str] = [str(id(t)) for t in model.outputs]
        self.outputs: list[str] = [self.producer[t] for t in self.output_tensors]
        self.inputs: list[str] = [self.producer[str(id(t))] for t in model.inputs]

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        return self._by_name[name]

    def layer(self, name: str) -> Any:
        """The layer of node ``name`` as it sits in the model."""
        return self._by_name[name].layer

    def cls(self, name: str) -> str:
        """Class name of node ``name``'s (unwrapped) layer."""
        return self._by_name[name].cls

    def inbound(self, name: str) -> list[str]:
        """Names of the nodes whose outputs node ``name`` reads, in call order."""
        return self._inbound[name]

    def consumers(self, name: str) -> list[str]:
        """Names of the nodes reading node ``name``'s outputs (each once)."""
        return self._consumers[name]

    def is_output(self, name: str) -> bool:
        """Whether node ``name`` produces one of the model's outputs."""
        return name in self.outputs

    def shared_layers(self) -> list[str]:
        """Names of the layers called more than once (their later calls are nodes ``"<name>#k"``)."""
        return sorted({n.layer.name for n in self.nodes if "#" in n.name})


# ---------------------------------------------------------------------------------------- folding
@dataclasses.dataclass
class FoldPlan:
    """What the TFLite converter folds away (:func:`fold_plan`).

    ``folded``: nodes without an operator of their own; ``alias``: tensor id -> the tensor that holds
    its values after folding; ``bn_into`` / ``relu_into``: folded BatchNorm / fused ReLU node -> the
    node it joins; ``bias_from_bn``: node -> bias elements a folded BatchNorm gives it (it had none),
    ``bn_bias``: the same count on the BatchNorm node that creates that bias.
    """

    folded: set[str]
    alias: dict[str, str]
    bn_into: dict[str, str]
    relu_into: dict[str, str]
    bias_from_bn: dict[str, int]
    bn_bias: dict[str, int]

    def resolve(self, tensor: str) -> str:
        """The tensor that holds ``tensor``'s values once folded layers are gone."""
        while tensor in self.alias:
            tensor = self.alias[tensor]
        return tensor

    def has_fused_relu(self, name: str) -> bool:
        """Whether a ReLU is fused into node ``name``."""
        return name in self.relu_into.values()


def fold_plan(graph: Graph) -> FoldPlan:
    """What the converter folds, node by node in order: identity layers vanish; a BatchNormalization
    whose input comes, through tensors read by it alone, from a linear Conv / DepthwiseConv /
    SeparableConv / Dense node folds into that node; a ReLU/ReLU6 (:func:`fusable_relu`) reached the same
    way from a linear Conv / Dense / element-wise node (Add, Subtract, Multiply) fuses into it.
    A tensor that is also a model output is never folded away. Used by estimate, quantize and prune."""
    readers: dict[str, int] = {}
    for n in graph.nodes:
        for t in n.inputs:
            readers[t] = readers.get(t, 0) + 1
    for t in graph.output_tensors:
        readers[t] = readers.get(t, 0) + 1
    plan = FoldPlan(set(), {}, {}, {}, {}, {})

    def single_chain(t: str) -> Node | None:
        """The node that really produces ``t`` if every tensor on the way has this one reader."""
        while True:
            if readers.get(t, 0) != 1:
                return None
            if t in plan.alias:
                t = plan.alias[t]
                continue
            return graph.node(graph.producer[t]) if t in graph.producer else None

    for n in graph.nodes:
        if n.is_input or len(n.inputs) != 1 or len(n.outputs) != 1:
            continue
        k = kind(n.inner)
        if k == "identity":
            plan.folded.add(n.name)
        elif k == "batchnorm":
            p = single_chain(n.inputs[0])
            if p is not None and kind(p.inner) in _FOLD_BN_INTO and activation_name(p.inner) == "linear" \
                    and not plan.has_fused_relu(p.name):
                plan.folded.add(n.name)
                plan.bn_into[n.name] = p.name
                if not getattr(p.inner, "use_bias", True) and p.name not in plan.bias_from_bn:
                    plan.bias_from_bn[p.name] = plan.bn_bias[n.name] = int(channels(p.output_shapes[0], p.inner)[1])
        elif fusable_relu(n.inner):
            p = single_chain(n.inputs[0])
            if p is not None and kind(p.inner) in _FUSE_RELU_INTO and activation_name(p.inner) == "linear" \
                    and not plan.has_fused_relu(p.name):
                plan.folded.add(n.name)
                plan.relu_into[n.name] = p.name
        if n.name in plan.folded:
            plan.alias[n.outputs[0]] = n.inputs[0]
    return plan
