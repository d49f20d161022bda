"""normalize_affine's arguments, and which layers take it: batch and instance norm with both
gamma and beta are one node; without them, normalize_over."""
from __future__ import annotations

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen.functional.normalization import Normalize, NormalizeAffine


def _x(*shape):
    return sg.tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32),
                     requires_grad=True)


@pytest.mark.parametrize("shape, gamma, axes, match", [
    ((2, 3, 4, 4), 4, (0, 2, 3), r"gamma \(4,\)"),        # gamma of another width
    ((2, 3, 4, 4), 3, (0, -3), r"axes \(0, 1\)"),          # the channel axis, negative
    ((3,), 3, (0,), r"input \(3,\)"),                      # no channel axis
    ((2, 3, 4, 4), 3, (0, 6), r"axes \(0, 6\) out of range"),  # not an axis (6 % 4 = 2)
    ((2, 3, 4, 4), 3, (-5,), r"axes \(-5,\) out of range"),
])
def test_bad_arguments_name_the_problem(shape, gamma, axes, match):
    g = sg.tensor(np.ones(gamma, np.float32))
    with pytest.raises(ValueError, match=match):
        F.normalize_affine(_x(*shape), g, g, axes, 1e-5)


def test_negative_axes_equal_positive_ones():
    x, g, b = _x(2, 3, 4, 5), _x(3), _x(3)
    a = F.normalize_affine(x, g, b, (0, -2, -1), 1e-5)[0].numpy()
    np.testing.assert_array_equal(a, F.normalize_affine(x, g, b, (0, 2, 3), 1e-5)[0].numpy())


@pytest.mark.parametrize("layer, node", [
    (nn.BatchNorm2d(3), NormalizeAffine),
    (nn.BatchNorm1d(3), NormalizeAffine),
    (nn.InstanceNorm2d(3, affine=True), NormalizeAffine),
    (nn.InstanceNorm2d(3), Normalize),
])
def test_layers_take_one_node(layer, node):
    layer.train()
    x = _x(4, 3, 5, 5) if isinstance(layer, (nn.BatchNorm2d, nn.InstanceNorm2d)) else _x(4, 3)
    assert isinstance(layer(x)._ctx, node)
