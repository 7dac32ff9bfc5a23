"""Lowering spatial layers to the unrolled kinds: what the parallel RTL generator builds.

:func:`lower_spatial` replaces every :class:`~hgq_rtl.ir.spatial.ConvLayer` by its
:meth:`~hgq_rtl.ir.spatial.ConvLayer.to_dense` and every
:class:`~hgq_rtl.ir.spatial.MaxPoolNdLayer` by its
:meth:`~hgq_rtl.ir.spatial.MaxPoolNdLayer.to_windows`; names, inputs, formats and every other
layer stay as they are, so the reference gives identical outputs on both models.

The IR imports only numpy and the standard library.
"""

from __future__ import annotations

import dataclasses

from .model import IRModel, Layer
from .spatial import ConvLayer, MaxPoolNdLayer


def lower_layer(layer: Layer) -> Layer:
    """``layer`` with its spatial shape unrolled (a dense or maxpool layer), or itself."""
    if isinstance(layer, ConvLayer):
        return layer.to_dense()
    if isinstance(layer, MaxPoolNdLayer):
        return layer.to_windows()
    return layer


def lower_spatial(ir: IRModel) -> IRModel:
    """``ir`` with every conv and maxpool_nd layer lowered (:func:`lower_layer`); the model
    itself when it has none."""
    layers = tuple(lower_layer(layer) for layer in ir.layers)
    if all(new is old for new, old in zip(layers, ir.layers, strict=True)):
        return ir
    return dataclasses.replace(ir, layers=layers, metadata=dict(ir.metadata))


def has_spatial_layers(ir: IRModel) -> bool:
    """Whether ``ir`` holds a conv or maxpool_nd layer."""
    return any(isinstance(layer, ConvLayer | MaxPoolNdLayer) for layer in ir.layers)
