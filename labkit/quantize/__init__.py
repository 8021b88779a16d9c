"""Quantization at any bit width: fake-quant post-training quantization (PTQ) and quantization-aware
training (QAT) with tensorflow-model-optimization.

The arithmetic (the same as TensorFlow Lite's int8 scheme, generalised to ``num_bits``)::

    q     = clip(round(x / scale) + zero_point, qmin, qmax)      # integer code
    x_hat = (q - zero_point) * scale                              # what the integer stands for

``round`` is half away from zero (C's ``std::round``, as in TFLite). Signed codes: activations use
``[-2^(b-1), 2^(b-1) - 1]`` with a zero point (asymmetric, calibrated min/max), weights use the
*narrow* symmetric range ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` with zero point 0, one scale per output
channel (``"per_channel"``, TFLite's choice for Conv2D, DepthwiseConv2D and Dense) or one per tensor.

* :func:`fake_quant` (NumPy, hand-checkable), :func:`symmetric_params`, :func:`asymmetric_params`.
* :func:`fold_batchnorm` folds each BatchNorm into the Conv/Dense before it and splits softmax out of
  its layer, like the TFLite converter does, so 8-bit simulation matches the real int8 model.
* :func:`ptq` returns a plain ``tf.keras`` model whose weights are fake-quantized at ``num_bits``
  and, with ``activations=True``, with a :class:`FakeQuant` layer at every point where TFLite would
  store an int8 tensor (model input, output of each fused Conv/Dense+ReLU, Add, pooling ...), its
  range calibrated on representative inputs (:func:`calibrate`). Evaluate it like any other model.
* :func:`qat` fine-tunes a model with fake quantization in the loop: at 8 bits through tfmot's
  ``quantize_model`` scheme (convertible to a real int8 ``.tflite``), at other widths through custom
  ``QuantizeConfig`` s (:class:`NBitQuantizeConfig`) applied with ``quantize_annotate_layer`` /
  ``quantize_apply`` inside ``quantize_scope``; those models run in simulation only (TFLite kernels take
  8-bit or 16-bit activations), except 4-bit weights with 8-bit activations
  (``qat(model, 4, activation_bits=8)``), which ``labkit.tflite.convert(..., "w4a8")`` stores as int4 and
  LiteRT and TFLite Micro run.
* Recurrent layers (LSTM/GRU) are outside tfmot's QAT support: :func:`qat` raises
  :class:`UnsupportedLayerError` for them.

Modules: ``arithmetic`` (NumPy), ``simulation`` (folding, quantization points, calibration, PTQ) and
``aware`` (QAT); everything is importable from ``labkit.quantize``. The graph (layer order, BatchNorm
folding, ReLU fusion) comes from ``labkit.graph``, the same walker the estimates use. Notebook 06's
sweeps and tables live in ``labkit.experiments.quantization``, its figure in ``labkit.plots``.
"""
from __future__ import annotations

from .arithmetic import (MAX_BITS, MIN_BITS, asymmetric_params, fake_quant, qrange, quantize_int, quantize_weights,
                         round_half_away, symmetric_params)
from .aware import NBitQuantizeConfig, PerChannelLastValueQuantizer, QATResult, init_activation_ranges, qat, qat_scope
from .simulation import (KERNEL_LAYERS, SOFTMAX_SCALE, Calibration, FakeQuant, UnsupportedLayerError, batches,
                         calibrate, fold_batchnorm, ptq, quant_points)

__all__ = [
    "UnsupportedLayerError", "MIN_BITS", "MAX_BITS", "qrange", "round_half_away", "fake_quant", "quantize_int",
    "symmetric_params", "asymmetric_params", "quantize_weights", "FakeQuant", "KERNEL_LAYERS", "fold_batchnorm",
    "Calibration", "batches", "calibrate", "quant_points", "ptq", "NBitQuantizeConfig", "QATResult", "qat",
    "init_activation_ranges", "qat_scope", "PerChannelLastValueQuantizer", "SOFTMAX_SCALE",
]
