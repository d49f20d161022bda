"""Array-level helpers of the backend."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from scratchgen import backend


@st.composite
def _broadcastable(draw):
    target = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=4)))
    lead = draw(st.integers(0, len(target)))
    shape = tuple(1 if draw(st.booleans()) else n for n in target[lead:])
    return shape, target


@settings(max_examples=60, deadline=None)
@given(_broadcastable(), st.booleans())
def test_broadcast_view_equals_numpy_broadcast_to(shapes, transposed):
    shape, target = shapes
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    if transposed:  # a non-contiguous input takes NumPy's own path
        x = x.T.copy().T
    view = backend.broadcast_view(x, target)
    expected = np.broadcast_to(x, target)
    assert view.shape == expected.shape and view.dtype == expected.dtype
    np.testing.assert_array_equal(view, expected)
    assert not view.flags.writeable
    assert np.shares_memory(view, x)


def test_broadcast_view_rejects_incompatible_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        backend.broadcast_view(np.zeros((2, 3)), (4, 3))
    with pytest.raises(ValueError):
        backend.broadcast_view(np.zeros((2, 3)), (3,))


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
    got = backend.sum_axes(x, axes, keepdims)
    expected = x.sum(axis=axes, keepdims=keepdims)
    assert np.shape(got) == expected.shape and np.result_type(got) == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == "float32" else 1e-12)


def test_sum_axes_takes_the_batch_first_path():
    """Axes (0, 2, 3) of an (N, C, H, W) array: the images are added first (the result is
    exact here, the numbers being small integers)."""
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    expected = x.sum(axis=(0, 2, 3), keepdims=True)
    got = backend.sum_axes(x, (0, -2, -1), keepdims=True)
    assert got.shape == (1, 3, 1, 1)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(backend.sum_axes(x, (0, 2, 3)), expected.ravel())
