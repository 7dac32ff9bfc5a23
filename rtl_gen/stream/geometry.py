"""The shape arithmetic of a sliding window (convolution or pooling) over a streamed image.

:class:`WindowGeometry` states an image's channels and spatial size and a window's kernel,
stride, zero padding and dilation; it gives the output size and the numpy reference
:meth:`WindowGeometry.windows` that the window generator's hardware must reproduce beat for
beat. A 1-D signal of length ``L`` is the 2-D case with height 1 (kernel, stride and padding
1, 1 and 0 along the height), so every block treats both uniformly.

Orders (shared by the reference and the hardware):

* pixels stream in raster order, all ``C`` channels of one pixel per beat;
* the elements of a window are ordered ``(c, ky, kx)`` in C order, element
  ``c * kh * kw + ky * kw + kx``, which is a torch convolution weight ``(F, C, kh, kw)``
  flattened per output channel;
* windows come in raster order of the output positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Size = int | tuple[int, ...]


def _per_dim(value: Size, ndim: int, what: str, minimum: int) -> tuple[int, ...]:
    if isinstance(value, int | np.integer):
        values = (value,) * ndim
    elif isinstance(value, tuple | list):
        values = tuple(value)
    else:
        values = ()
    if len(values) != ndim or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(f"{what} must be an integer or {ndim} integers, not {value!r}")
    if min(values) < minimum:
        raise ValueError(f"{what} must be >= {minimum} in every dimension, not {value!r}")
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class WindowGeometry:
    """A window sliding over a ``(channels, *in_size)`` image.

    Parameters
    ----------
    channels
        Channels per pixel (``C``), at least 1.
    in_size
        Spatial size: ``(L,)`` for 1-D or ``(H, W)`` for 2-D.
    kernel, stride, padding, dilation
        Per spatial dimension (an integer applies to every dimension): the window size, the step
        between output positions, the zero pixels added on each side, and the spacing of the
        window's taps. Defaults: stride 1, padding 0, dilation 1.

    Raises
    ------
    ValueError
        On a non-positive size, kernel, stride or dilation, a negative padding, or a window that
        does not fit in the padded image.
    """

    channels: int
    in_size: tuple[int, ...]
    kernel: Size
    stride: Size = 1
    padding: Size = 0
    dilation: Size = 1

    def __post_init__(self) -> None:
        if not isinstance(self.channels, int | np.integer) or self.channels < 1:
            raise ValueError(f"channels must be a positive integer, not {self.channels!r}")
        object.__setattr__(self, "channels", int(self.channels))
        size = self.in_size
        if not isinstance(size, tuple | list) or len(size) not in (1, 2):
            raise ValueError(f"in_size must be (L,) or (H, W), not {size!r}")
        ndim = len(size)
        object.__setattr__(self, "in_size", _per_dim(size, ndim, "in_size", 1))
        object.__setattr__(self, "kernel", _per_dim(self.kernel, ndim, "kernel", 1))
        object.__setattr__(self, "stride", _per_dim(self.stride, ndim, "stride", 1))
        object.__setattr__(self, "padding", _per_dim(self.padding, ndim, "padding", 0))
        object.__setattr__(self, "dilation", _per_dim(self.dilation, ndim, "dilation", 1))
        for dim, (padded, extent) in enumerate(zip(self.padded_size, self.extent, strict=True)):
            if extent > padded:
                raise ValueError(
                    f"the window spans {extent} pixels in dimension {dim} (dilation * "
                    f"(kernel - 1) + 1), more than the padded size {padded}"
                )

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Spatial dimensions: 1 or 2."""
        return len(self.in_size)

    @property
    def extent(self) -> tuple[int, ...]:
        """Pixels a window spans per dimension: ``dilation * (kernel - 1) + 1``."""
        return tuple(d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel, strict=True))

    @property
    def padded_size(self) -> tuple[int, ...]:
        """Spatial size with the zero padding: ``in_size + 2 * padding``."""
        return tuple(n + 2 * p for n, p in zip(self.in_size, self.padding, strict=True))

    @property
    def out_size(self) -> tuple[int, ...]:
        """Output positions per dimension: ``(padded - extent) // stride + 1``."""
        return tuple(
            (n - e) // s + 1
            for n, e, s in zip(self.padded_size, self.extent, self.stride, strict=True)
        )

    @property
    def window_elements(self) -> int:
        """Elements of one window: ``channels * prod(kernel)``."""
        return self.channels * int(np.prod(self.kernel))

    @property
    def pixels(self) -> int:
        """Input beats per image: ``prod(in_size)``."""
        return int(np.prod(self.in_size))

    @property
    def padded_pixels(self) -> int:
        """Positions of the padded image: ``prod(padded_size)``."""
        return int(np.prod(self.padded_size))

    @property
    def out_positions(self) -> int:
        """Windows per image: ``prod(out_size)``."""
        return int(np.prod(self.out_size))

    # -- the uniform 2-D view ------------------------------------------------------------------
    def _as_2d(self, values: tuple[int, ...], fill: int) -> tuple[int, int]:
        return (fill, values[0]) if self.ndim == 1 else (values[0], values[1])

    @property
    def in_size_2d(self) -> tuple[int, int]:
        """``(H, W)``; ``(1, L)`` for 1-D."""
        return self._as_2d(self.in_size, 1)

    @property
    def kernel_2d(self) -> tuple[int, int]:
        return self._as_2d(self.kernel, 1)

    @property
    def stride_2d(self) -> tuple[int, int]:
        return self._as_2d(self.stride, 1)

    @property
    def padding_2d(self) -> tuple[int, int]:
        return self._as_2d(self.padding, 0)

    @property
    def dilation_2d(self) -> tuple[int, int]:
        return self._as_2d(self.dilation, 1)

    @property
    def extent_2d(self) -> tuple[int, int]:
        return self._as_2d(self.extent, 1)

    @property
    def padded_size_2d(self) -> tuple[int, int]:
        return self._as_2d(self.padded_size, 1)

    @property
    def out_size_2d(self) -> tuple[int, int]:
        return self._as_2d(self.out_size, 1)

    # -- positions of the padded raster walk ---------------------------------------------------
    def padded_is_pixel(self) -> np.ndarray:
        """Bool ``(PH, PW)``: True where the padded image holds an input pixel (not padding)."""
        (h, w), (ph, pw) = self.in_size_2d, self.padding_2d
        mask = np.zeros(self.padded_size_2d, bool)
        mask[ph : ph + h, pw : pw + w] = True
        return mask

    def window_corners(self) -> np.ndarray:
        """Bool ``(PH, PW)``: True at the bottom-right corner of every output window, i.e. where
        a raster walk over the padded image has seen all of that window's pixels."""
        (eh, ew), (sh, sw), (oh, ow) = self.extent_2d, self.stride_2d, self.out_size_2d
        mask = np.zeros(self.padded_size_2d, bool)
        mask[eh - 1 : eh - 1 + oh * sh : sh, ew - 1 : ew - 1 + ow * sw : sw] = True
        return mask

    # -- numpy reference -----------------------------------------------------------------------
    def beats(self, image: np.ndarray) -> np.ndarray:
        """An image ``(C, *in_size)`` as its stream of pixels ``(pixels, C)`` in raster order."""
        image = self._check_image(image)
        return image.reshape(self.channels, self.pixels).T

    def windows(self, image: np.ndarray) -> np.ndarray:
        """Every window of ``image`` ``(C, *in_size)``: ``(out_positions, window_elements)``.

        Rows in raster order of the output positions, elements in ``(c, ky, kx)`` order; pixels
        of the zero padding are 0.
        """
        image = self._check_image(image)
        (h, w), (ph, pw) = self.in_size_2d, self.padding_2d
        padded = np.zeros((self.channels, *self.padded_size_2d), image.dtype)
        padded[:, ph : ph + h, pw : pw + w] = image.reshape(self.channels, h, w)
        (kh, kw), (dh, dw), (sh, sw) = self.kernel_2d, self.dilation_2d, self.stride_2d
        oh, ow = self.out_size_2d
        rows = (np.arange(oh) * sh)[:, None, None, None] + (np.arange(kh) * dh)[None, None, :, None]
        cols = (np.arange(ow) * sw)[None, :, None, None] + (np.arange(kw) * dw)[None, None, None, :]
        # padded[c, rows, cols]: (C, oh, ow, kh, kw) -> (oh, ow, C, kh, kw)
        taps = padded[:, rows, cols].transpose(1, 2, 0, 3, 4)
        return taps.reshape(oh * ow, self.window_elements)

    def _check_image(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        expected = (self.channels, *self.in_size)
        if image.shape != expected:
            raise ValueError(f"image must have shape {expected}, not {image.shape}")
        return image
