"""kernels.reduce.sum_axes against numpy.sum."""
import numpy as np
from hypothesis import given, settings, strategies as st

from scratchgen.kernels.reduce import sum_axes


@st.composite
def _reduction(draw):
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=4)))
    if not shape:
        return shape, ()
    axes = draw(st.lists(st.integers(-len(shape), len(shape) - 1),
                         unique_by=lambda a: a % len(shape), max_size=len(shape)))
    return shape, tuple(axes)


@settings(max_examples=120, deadline=None)
@given(_reduction(), st.booleans(), st.sampled_from(["float64", "float32", "int64", "bool"]),
       st.booleans())
def test_sum_axes_equals_numpy_sum(case, keepdims, dtype, transposed):
    shape, axes = case
    x = np.random.default_rng(0).standard_normal(shape) * 10
    x = x.astype(dtype)
    if transposed:  # a non-contiguous input takes NumPy's own path
        x = x.T.copy().T
    got = sum_axes(x, axes, keepdims)
    expected = x.sum(axis=axes, keepdims=keepdims)
    assert np.shape(got) == expected.shape and np.result_type(got) == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == "float32" else 1e-12)


def test_sum_axes_adds_the_images_first():
    """Axes (0, 2, 3) of a contiguous (N, C, H, W) array: bit for bit the images' sum, then
    each channel's plane -- which rounds differently from NumPy's own order here, so the test
    tells the two paths apart."""
    x = np.random.default_rng(0).standard_normal((64, 16, 4, 4)).astype(np.float32)
    two_step = x.sum(axis=0).sum(axis=(1, 2))
    assert (x.sum(axis=(0, 2, 3)) != two_step).any()
    np.testing.assert_array_equal(sum_axes(x, (0, -2, -1)), two_step)
    got = sum_axes(x, (0, 2, 3), keepdims=True)
    assert got.shape == (1, 16, 1, 1)
    np.testing.assert_array_equal(got.ravel(), two_step)
