"""Streaming building blocks for convolutional networks (hls4ml io_stream / FINN dataflow style).

Pixels of a ``(C, H, W)`` image enter one beat per pixel in raster order; a
:class:`WindowGenerator` (line buffers, padding, stride, dilation: shapes only) produces the
window vector of every output position, a compute block wrapped in a :class:`StreamStage` (e.g.
:class:`rtl_gen.components.DenseComponent` with the kernel as one constant matrix over the window,
or a :class:`MaxTree`) is applied to every window, and a :class:`Collector` gathers the final map
into one vector for a dense tail. :class:`StreamChain` connects stages and names the ports like
AXI4-Stream. Every stream is an :class:`amaranth.lib.stream.Signature` with valid/ready.
Several pixels per beat: :class:`WideWindowGenerator` and :class:`Replicated`
(:mod:`rtl_gen.stream.wide`).
"""

from .collect import Collector, beat_order
from .geometry import WindowGeometry
from .pool import MaxTree
from .stage import StreamStage
from .top import StreamChain
from .wide import Replicated, WideWindowGenerator
from .window import WindowGenerator

__all__ = [
    "Collector",
    "MaxTree",
    "Replicated",
    "StreamChain",
    "StreamStage",
    "WideWindowGenerator",
    "WindowGenerator",
    "WindowGeometry",
    "beat_order",
]
