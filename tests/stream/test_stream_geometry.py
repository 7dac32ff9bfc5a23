"""WindowGeometry: sizes, the numpy reference of the windows, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rtl_gen.stream import WindowGeometry


def direct_windows(g: WindowGeometry, image: np.ndarray) -> np.ndarray:
    """The windows by a plain loop over output positions and taps (2-D view of 1-D)."""
    (h, w), (ph, pw) = g.in_size_2d, g.padding_2d
    image = image.reshape(g.channels, h, w)
    (kh, kw), (sh, sw), (dh, dw) = g.kernel_2d, g.stride_2d, g.dilation_2d
    rows = []
    oy = 0
    while oy * sh + dh * (kh - 1) < h + 2 * ph:
        ox = 0
        while ox * sw + dw * (kw - 1) < w + 2 * pw:
            row = []
            for c, ky, kx in itertools.product(range(g.channels), range(kh), range(kw)):
                y, x = oy * sh + ky * dh - ph, ox * sw + kx * dw - pw
                row.append(image[c, y, x] if 0 <= y < h and 0 <= x < w else 0)
            rows.append(row)
            ox += 1
        oy += 1
    return np.array(rows, np.int64)


GEOMETRIES = [
    WindowGeometry(1, (7,), 3),
    WindowGeometry(3, (9,), 2, stride=2, padding=1),
    WindowGeometry(1, (8,), 3, dilation=2, padding=2),
    WindowGeometry(1, (5, 5), 1),
    WindowGeometry(3, (5, 6), 3, padding=1),
    WindowGeometry(1, (6, 7), 2, stride=2),
    WindowGeometry(3, (7, 7), 3, stride=2, padding=2, dilation=2),
    WindowGeometry(1, (6, 5), (3, 2), stride=(1, 2), padding=(0, 1), dilation=(2, 1)),
    WindowGeometry(3, (4, 4), 2, padding=2),
]


@pytest.mark.parametrize("g", GEOMETRIES, ids=str)
def test_windows_match_a_direct_loop(g):
    rng = np.random.default_rng(0)
    image = rng.integers(-50, 50, (g.channels, *g.in_size))
    got = g.windows(image)
    assert got.shape == (g.out_positions, g.window_elements)
    np.testing.assert_array_equal(got, direct_windows(g, image))


def test_sizes_and_element_order_of_a_torch_like_conv():
    g = WindowGeometry(2, (6, 6), 3, stride=2, padding=1, dilation=1)
    assert (g.padded_size, g.extent, g.out_size) == ((8, 8), (3, 3), (3, 3))
    assert (g.window_elements, g.pixels, g.padded_pixels, g.out_positions) == (18, 36, 64, 9)
    image = np.arange(72).reshape(2, 6, 6)
    first = g.windows(image)[0].reshape(2, 3, 3)  # (c, ky, kx), top-left window over padding
    np.testing.assert_array_equal(first[1, 1:, 1:], image[1, :2, :2])
    assert not first[:, 0, :].any() and not first[:, :, 0].any()


def test_one_dimensional_is_the_two_dimensional_case_with_height_one():
    g1 = WindowGeometry(2, (9,), 3, stride=2, padding=1, dilation=2)
    g2 = WindowGeometry(2, (1, 9), (1, 3), stride=(1, 2), padding=(0, 1), dilation=(1, 2))
    image = np.arange(18).reshape(2, 9)
    np.testing.assert_array_equal(g1.windows(image), g2.windows(image.reshape(2, 1, 9)))
    assert g1.out_size_2d == g2.out_size == (1, 4)
    np.testing.assert_array_equal(g1.beats(image), g2.beats(image.reshape(2, 1, 9)))


def test_beats_are_pixels_in_raster_order():
    g = WindowGeometry(3, (2, 2), 1)
    image = np.arange(12).reshape(3, 2, 2)
    np.testing.assert_array_equal(g.beats(image), [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 0, "in_size": (4,), "kernel": 1}, "channels must be a positive integer"),
        ({"channels": 1, "in_size": (4, 4, 4), "kernel": 1}, r"in_size must be \(L,\) or"),
        ({"channels": 1, "in_size": 4, "kernel": 1}, r"in_size must be \(L,\) or"),
        ({"channels": 1, "in_size": (0, 4), "kernel": 1}, "in_size must be >= 1"),
        ({"channels": 1, "in_size": (4, 4), "kernel": (1, 2, 3)}, "kernel must be an integer or"),
        ({"channels": 1, "in_size": (4,), "kernel": 0}, "kernel must be >= 1"),
        ({"channels": 1, "in_size": (4,), "kernel": 2, "stride": 0}, "stride must be >= 1"),
        ({"channels": 1, "in_size": (4,), "kernel": 2, "padding": -1}, "padding must be >= 0"),
        ({"channels": 1, "in_size": (4,), "kernel": 2, "dilation": 0}, "dilation must be >= 1"),
        ({"channels": 1, "in_size": (4,), "kernel": 2.0}, "kernel must be an integer or"),
        ({"channels": 1, "in_size": (4, 4), "kernel": 5}, "spans 5 pixels in dimension 0"),
        ({"channels": 1, "in_size": (4,), "kernel": 3, "dilation": 2}, "more than the padded"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WindowGeometry(**kwargs)


def test_image_shape_is_checked():
    with pytest.raises(ValueError, match=r"image must have shape \(2, 4\)"):
        WindowGeometry(2, (4,), 2).windows(np.zeros((4, 2)))
