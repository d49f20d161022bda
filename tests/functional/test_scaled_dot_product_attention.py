"""F.scaled_dot_product_attention against PyTorch's definition written out in NumPy:

    attn_bias = 0, -inf where ~attn_mask or (is_causal and j > i)   (ones(Lq, Lk).tril(0))
    O = softmax(Q K^T * scale + attn_bias) V
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F


def sdpa_definition(q, k, v, attn_mask=None, is_causal=False, scale=None):
    lq, lk = q.shape[-2], k.shape[-2]
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    bias = np.zeros((lq, lk))
    if is_causal:
        bias[~np.tril(np.ones((lq, lk), dtype=bool))] = -np.inf
    if attn_mask is not None:
        bias = np.where(attn_mask, bias, -np.inf)
    s = q @ np.swapaxes(k, -1, -2) * scale + bias
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


@pytest.mark.parametrize("lq, lk", [(4, 4), (3, 6), (6, 3)])
@pytest.mark.parametrize("with_mask", [False, True])
def test_is_causal_is_the_top_left_lower_triangle(lq, lk, with_mask, device):
    rng = np.random.default_rng(lq * 10 + lk)
    q, k, v = (rng.standard_normal((2, 3, n, d)) for n, d in ((lq, 5), (lk, 5), (lk, 4)))
    mask = None
    if with_mask:
        mask = rng.random((lq, lk)) < 0.7
        mask[:, 0] = True                  # key 0 is causal-visible to every query: no empty row
    out = F.scaled_dot_product_attention(
        *(sg.tensor(a, device=device) for a in (q, k, v)),
        attn_mask=None if mask is None else sg.backend.to_device(mask, device), is_causal=True)
    np.testing.assert_allclose(out.numpy(), sdpa_definition(q, k, v, mask, True), rtol=1e-10,
                               atol=1e-12)


def test_causal_rows_ignore_later_keys():
    """Changing key/value j changes no output row i < j."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((5, 3)), rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    k2, v2 = k.copy(), v.copy()
    k2[3:], v2[3:] = 7.0, -7.0
    a = F.scaled_dot_product_attention(sg.tensor(q), sg.tensor(k), sg.tensor(v), is_causal=True)
    b = F.scaled_dot_product_attention(sg.tensor(q), sg.tensor(k2), sg.tensor(v2), is_causal=True)
    np.testing.assert_array_equal(a.numpy()[:3], b.numpy()[:3])
    assert not np.allclose(a.numpy()[3:], b.numpy()[3:])


def test_pytorch_argument_order_and_unsupported_arguments():
    rng = np.random.default_rng(1)
    q, k, v = (sg.tensor(rng.standard_normal((3, 2))) for _ in range(3))
    mask = np.array([[True, False, True]] * 3)
    positional = F.scaled_dot_product_attention(q, k, v, mask, 0.0, True, 0.5)
    np.testing.assert_allclose(positional.numpy(), sdpa_definition(
        q.numpy(), k.numpy(), v.numpy(), mask, True, 0.5), rtol=1e-12)
    with pytest.raises(NotImplementedError, match="dropout_p"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=0.1)
    with pytest.raises(TypeError, match="boolean"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.zeros((3, 3)))
