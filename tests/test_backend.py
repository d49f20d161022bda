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


def test_to_with_a_string_that_is_neither_device_nor_dtype_says_so():
    # a mistyped device used to be reported as "not a dtype"
    with pytest.raises(ValueError, match=r"'tpu' is neither a device .* nor a dtype"):
        backend.parse_to_args(("tpu",))
    assert backend.parse_to_args(("cpu", "float64")) == (backend.CPU, np.dtype(np.float64))


@pytest.mark.parametrize("shapes", [((5, 3), (3, 4)), ((2, 5, 3), (3, 4)), ((4, 2, 5, 3), (2, 3, 6))])
def test_matmul_is_numpys_product(shapes):
    """backend.matmul, the raw-array product above the ops, equals numpy.matmul."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    np.testing.assert_allclose(backend.matmul(a, b), np.matmul(a, b), rtol=1e-12, atol=1e-12)
