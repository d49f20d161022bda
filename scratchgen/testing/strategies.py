"""Hypothesis strategies for property-testing differentiable ops.

    from hypothesis import given
    from scratchgen.testing import strategies as sgst, gradcheck

    @given(sgst.arrays(sgst.shapes(), avoid=(0.0,)))
    def test_my_relu(a):
        x = sg.tensor(a, requires_grad=True)
        gradcheck(my_relu, [x])

Arrays are float64 and bounded; ``avoid`` keeps values at least ``margin`` away from the kinks
of a piecewise function, and ``distinct`` keeps them pairwise apart (no ties for max/min).
Needs the ``hypothesis`` package (the ``test`` extra).
"""
from __future__ import annotations

from typing import Sequence

import numpy
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = ["shapes", "broadcastable_shapes", "arrays", "distinct_arrays", "positive_arrays"]


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """Array shapes (tuples of ints)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3,
                         min_side: int = 1, max_side: int = 4):
    """Tuples of ``num_shapes`` shapes that broadcast together (NumPy rules)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side,
    ).map(lambda r: r.input_shapes)


def _push_away(a: numpy.ndarray, avoid: Sequence[float], margin: float) -> numpy.ndarray:
    a = a.copy()
    for k in avoid:
        near = numpy.abs(a - k) < margin
        a[near] = k + numpy.where(a[near] >= k, margin, -margin)
    return a


def arrays(shape, low: float = -2.0, high: float = 2.0, avoid: Sequence[float] = (),
           margin: float = 0.05, dtype=numpy.float64):
    """float64 arrays with values in [low, high], none within ``margin`` of a point in ``avoid``.

    ``shape`` is a tuple or a strategy of tuples.
    """
    shape_st = shape if isinstance(shape, st.SearchStrategy) else st.just(tuple(shape))
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    return shape_st.flatmap(lambda s: hnp.arrays(dtype, s, elements=elements)).map(
        lambda a: _push_away(a, avoid, margin)
    )


def positive_arrays(shape, low: float = 0.2, high: float = 3.0):
    """Arrays in [low, high] with low > 0: inputs for log, sqrt, division."""
    return arrays(shape, low, high)


def distinct_arrays(shape, low: float = -2.0, high: float = 2.0, min_gap: float = 1e-2):
    """Arrays whose values are pairwise at least ``min_gap`` apart: no ties, so max, min and
    sorting are differentiable there."""
    shape_st = shape if isinstance(shape, st.SearchStrategy) else st.just(tuple(shape))

    def build(s, seed):
        n = int(numpy.prod(s)) if s else 1
        rng = numpy.random.default_rng(seed)
        span = max(high - low, min_gap * n * 2)
        grid = low + span * (numpy.arange(n) + 0.5) / n
        jitter = rng.uniform(-0.25, 0.25, n) * (span / n - min_gap)
        return (rng.permutation(grid) + jitter).reshape(s)

    return st.tuples(shape_st, st.integers(0, 2**32 - 1)).map(lambda p: build(*p))
