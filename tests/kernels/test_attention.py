"""kernels.attention against the direct softmax(Q K^T * scale) V formula and finite differences."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchgen.kernels.attention as attention
from scratchgen.kernels.attention import attention_backward, attention_forward

SETTINGS = settings(max_examples=100, deadline=None)


def attention_reference(q, k, v, mask=None, causal=False, scale=None):
    """Row by row: o_i = sum_j softmax_j(s_ij) v_j over the allowed keys (0 if there are none)."""
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    lq, lk = q.shape[-2], k.shape[-2]
    q, k, v = (np.broadcast_to(a, batch + a.shape[-2:]).reshape(-1, *a.shape[-2:])
               for a in (q, k, v))
    allowed = np.ones((q.shape[0], lq, lk), dtype=bool)
    if mask is not None:
        allowed = np.broadcast_to(mask, batch + (lq, lk)).reshape(-1, lq, lk).copy()
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    out = np.zeros((q.shape[0], lq, v.shape[-1]))
    lse = np.full((q.shape[0], lq), -np.inf)
    for b in range(q.shape[0]):
        for i in range(lq):
            keys = [j for j in range(lk) if allowed[b, i, j] and (not causal or j <= i)]
            if not keys:
                continue
            s = np.array([scale * np.dot(q[b, i], k[b, j]) for j in keys])
            lse[b, i] = math.log(np.sum(np.exp(s - s.max()))) + s.max()
            p = np.exp(s - lse[b, i])
            out[b, i] = sum(p_j * v[b, j] for p_j, j in zip(p, keys))
    return out.reshape(batch + out.shape[1:]), lse.reshape(batch + (lq,))


@st.composite
def attention_cases(draw):
    batch = draw(st.sampled_from([(), (2,), (2, 3), (1, 2)]))
    lq, lk = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    d, dv = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    # k and v may be shared across the leading axes (broadcast), as for shared keys over heads
    kv_batch = draw(st.sampled_from([batch, tuple(1 for _ in batch), batch[1:]]))
    q = rng.standard_normal(batch + (lq, d))
    k = rng.standard_normal(kv_batch + (lk, d))
    v = rng.standard_normal(kv_batch + (lk, dv))
    mask_shape = draw(st.sampled_from([None, (lk,), (lq, lk), batch + (lq, lk),
                                       batch[:1] + (1,) * (len(batch) > 1) + (lq, lk)]))
    mask = None if mask_shape is None else rng.random(mask_shape) < 0.7
    causal = draw(st.booleans())
    scale = draw(st.sampled_from([None, 0.3, 2.0]))
    return q, k, v, mask, causal, scale


@SETTINGS
@given(attention_cases())
def test_forward_matches_direct_formula(case):
    q, k, v, mask, causal, scale = case
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no overflow / invalid-value warnings
        out, lse = attention_forward(q, k, v, mask, causal, scale)
    out_ref, lse_ref = attention_reference(q, k, v, mask, causal, scale)
    np.testing.assert_allclose(out, out_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-10, atol=1e-12)


def loss_and_grads(q, k, v, mask, causal, scale, r):
    out, lse = attention_forward(q, k, v, mask, causal, scale)
    return np.sum(out * r), attention_backward(r, q, k, v, out, lse, mask, causal, scale)


@SETTINGS
@given(attention_cases())
def test_backward_matches_finite_differences(case):
    """Central differences of L = sum(O * R) with respect to every entry of q, k and v."""
    q, k, v, mask, causal, scale = case
    r = np.random.default_rng(0).standard_normal(
        np.broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2], v.shape[-1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, grads = loss_and_grads(q, k, v, mask, causal, scale, r)
    eps = 1e-6
    inputs = [q, k, v]
    for which, grad in enumerate(grads):
        assert grad.shape == inputs[which].shape
        fd = np.zeros_like(inputs[which])
        for idx in np.ndindex(fd.shape):
            bumped = [a.copy() for a in inputs]
            bumped[which][idx] += eps
            plus = np.sum(attention_forward(*bumped, mask, causal, scale)[0] * r)
            bumped[which][idx] -= 2 * eps
            minus = np.sum(attention_forward(*bumped, mask, causal, scale)[0] * r)
            fd[idx] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)


def test_backward_matches_explicit_jacobian_formula():
    """dS = P * (dP - rowsum(dO * O)) equals the softmax Jacobian applied row by row."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    dout = rng.standard_normal((5, 2))
    scale = 1 / math.sqrt(3)
    out, lse = attention_forward(q, k, v)
    dq, dk, dv = attention_backward(dout, q, k, v, out, lse)
    s = scale * q @ k.T
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dp = dout @ v.T
    ds = np.stack([(np.diag(p[i]) - np.outer(p[i], p[i])) @ dp[i] for i in range(5)])
    np.testing.assert_allclose(dv, p.T @ dout, rtol=1e-12)
    np.testing.assert_allclose(dq, scale * ds @ k, rtol=1e-10)
    np.testing.assert_allclose(dk, scale * ds.T @ q, rtol=1e-10)


def test_fully_masked_rows_give_zero_output_and_gradients():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3)),
               rng.standard_normal((2, 5, 2)))
    mask = rng.random((2, 4, 5)) < 0.5
    mask[0, 1] = False
    mask[1, :, :] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, lse = attention_forward(q, k, v, mask)
        dq, dk, dv = attention_backward(np.ones_like(out), q, k, v, out, lse, mask)
    assert np.all(out[0, 1] == 0) and np.all(out[1] == 0)
    assert lse[0, 1] == -np.inf and np.all(lse[1] == -np.inf)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dq))
    assert np.all(dq[0, 1] == 0) and np.all(dq[1] == 0)
    assert np.all(dk[1] == 0) and np.all(dv[1] == 0)
    np.testing.assert_allclose(out, attention_reference(q, k, v, mask)[0], rtol=1e-12)


def test_no_keys_is_a_fully_masked_row():
    q, k, v = np.ones((2, 3, 4)), np.ones((2, 0, 4)), np.ones((2, 0, 5))
    out, lse = attention_forward(q, k, v)
    assert out.shape == (2, 3, 5) and not out.any() and np.all(lse == -np.inf)
    dq, dk, dv = attention_backward(np.ones_like(out), q, k, v, out, lse)
    assert not dq.any() and dk.shape == (2, 0, 4) and dv.shape == (2, 0, 5)


def test_causal_with_more_keys_than_queries():
    """Query i attends keys j <= i (top-left aligned, as PyTorch's is_causal)."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 2)), rng.standard_normal((5, 2)), rng.standard_normal((5, 4))
    out, _ = attention_forward(q, k, v, causal=True)
    np.testing.assert_allclose(out[0], v[0], rtol=1e-12)           # only key 0
    np.testing.assert_allclose(out, attention_reference(q, k, v, causal=True)[0], rtol=1e-12)


def test_large_scores_are_stable():
    rng = np.random.default_rng(0)
    q, k, v = (1e3 * rng.standard_normal((4, 8)), 1e3 * rng.standard_normal((6, 8)),
               rng.standard_normal((6, 3)))
    for dtype in (np.float32, np.float64):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out, lse = attention_forward(q.astype(dtype), k.astype(dtype), v.astype(dtype))
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(lse))
    np.testing.assert_allclose(out, attention_reference(q, k, v)[0], rtol=1e-8, atol=1e-10)


def test_masked_huge_scores_do_not_overflow():
    """A masked key may score far above the row's lse; it must contribute exactly nothing."""
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    k = np.array([[1.0, 0.0], [1e4, 0.0], [0.0, 1.0]])
    v = np.arange(6.0).reshape(3, 2)
    mask = np.array([True, False, True])
    for dtype in (np.float32, np.float64):
        a = [x.astype(dtype) for x in (q, k, v)]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out, lse = attention_forward(*a, mask)
            dq, dk, dv = attention_backward(np.ones_like(out), *a, out, lse, mask)
        ref = attention_reference(q, k[[0, 2]], v[[0, 2]])[0]
        np.testing.assert_allclose(out, ref, rtol=1e-6)
        assert np.all(dk[1] == 0) and np.all(dv[1] == 0) and np.all(np.isfinite(dq))


@pytest.mark.parametrize("budget", [2 * 13 * 9, 9 * 4, 1])
def test_tiles_give_the_same_result(monkeypatch, budget):
    """Tiles of two whole sequences, of 4 query rows, of 1 row: the same outputs and gradients
    as one tile, with keys shared over the first batch axis and a mask that varies over it."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((3, 2, 13, 4)), rng.standard_normal((1, 2, 9, 4)),
               rng.standard_normal((2, 9, 3)))
    mask = rng.random((3, 1, 13, 9)) < 0.8
    dout = rng.standard_normal((3, 2, 13, 3))
    out, lse = attention_forward(q, k, v, mask, causal=True)
    grads = attention_backward(dout, q, k, v, out, lse, mask, causal=True)
    monkeypatch.setattr(attention, "_BLOCK_ELEMENTS_CPU", budget)
    assert len(attention._tiles(0, 6, 13, 9, budget)) == {234: 3, 36: 24, 1: 78}[budget]
    out_b, lse_b = attention_forward(q, k, v, mask, causal=True)
    grads_b = attention_backward(dout, q, k, v, out_b, lse_b, mask, causal=True)
    np.testing.assert_allclose(out_b, out, rtol=1e-12)
    np.testing.assert_allclose(lse_b, lse, rtol=1e-12)
    for g_b, g in zip(grads_b, grads):
        np.testing.assert_allclose(g_b, g, rtol=1e-12, atol=1e-14)
    ref_out, ref_lse = attention_reference(q, k, v, mask, causal=True)
    np.testing.assert_allclose(out_b, ref_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lse_b, ref_lse, rtol=1e-10)


def test_float32_close_to_float64():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 16, 8)), rng.standard_normal((2, 3, 20, 8)),
               rng.standard_normal((2, 3, 20, 5)))
    dout = rng.standard_normal((2, 3, 16, 5))
    res64 = attention_forward(q, k, v, causal=True)
    grads64 = attention_backward(dout, q, k, v, *res64, causal=True)
    f32 = [a.astype(np.float32) for a in (q, k, v, dout)]
    res32 = attention_forward(*f32[:3], causal=True)
    grads32 = attention_backward(f32[3], *f32[:3], *res32, causal=True)
    for a32, a64 in zip(res32 + grads32, res64 + grads64):
        assert a32.dtype == np.float32
        scale = np.abs(a64).max()
        assert np.abs(a32 - a64).max() <= 1e-4 * scale


def test_errors_name_shapes():
    q, k, v = np.zeros((2, 3, 4)), np.zeros((2, 5, 4)), np.zeros((2, 5, 6))
    with pytest.raises(ValueError, match=r"q \(2, 3, 4\).*k \(2, 5, 3\)"):
        attention_forward(q, np.zeros((2, 5, 3)), v)
    with pytest.raises(ValueError, match=r"k \(2, 5, 4\).*v \(2, 6, 6\)"):
        attention_forward(q, k, np.zeros((2, 6, 6)))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 4\).*\(2, 3, 5\)"):
        attention_forward(q, k, v, mask=np.ones((3, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"mask of shape \(7, 2, 3, 5\)"):
        attention_forward(q, k, v, mask=np.ones((7, 2, 3, 5), dtype=bool))
    with pytest.raises(ValueError, match=r"q \(2, 3, 4\), k \(3, 5, 4\)"):
        attention_forward(q, np.zeros((3, 5, 4)), np.zeros((3, 5, 6)))
    with pytest.raises(TypeError, match="boolean"):
        attention_forward(q, k, v, mask=np.ones((3, 5)))
    with pytest.raises(TypeError, match="float32"):
        attention_forward(q.astype(np.float32), k, v)
    out, lse = attention_forward(q, k, v)
    with pytest.raises(ValueError, match=r"dout \(2, 3, 5\)"):
        attention_backward(np.zeros((2, 3, 5)), q, k, v, out, lse)


# --------------------------------------------------------------------------------------------
# CUDA path against the NumPy path
# --------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("path", ["flash", "cublas"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lq, lk, masked, causal", [
    (16, 16, False, False), (33, 300, True, False), (40, 17, True, True), (1, 1, False, True),
    (130, 70, True, True),
])
def test_cuda_matches_numpy(cupy, monkeypatch, lq, lk, masked, causal, dtype, path):
    """Both forward paths: the tiled kernel (here: query rows over several blocks, keys over
    several tiles) and the cuBLAS products with the fused softmax (taken above
    ``_FLASH_MAX_DIM`` features)."""
    if path == "cublas":
        monkeypatch.setattr(attention, "_FLASH_MAX_DIM", 0)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 3, lq, 8)).astype(dtype)
    k = rng.standard_normal((2, 3, lk, 8)).astype(dtype)
    v = rng.standard_normal((2, 3, lk, 5)).astype(dtype)
    dout = rng.standard_normal((2, 3, lq, 5)).astype(dtype)
    mask = None
    if masked:
        mask = rng.random((3, lq, lk)) < 0.6
        mask[0, 0] = False          # a fully masked row
    out, lse = attention_forward(q, k, v, mask, causal)
    grads = attention_backward(dout, q, k, v, out, lse, mask, causal)
    g = [cupy.asarray(a) for a in (q, k, v, dout)]
    mask_g = None if mask is None else cupy.asarray(mask)
    out_g, lse_g = attention_forward(*g[:3], mask_g, causal)
    grads_g = attention_backward(g[3], *g[:3], out_g, lse_g, mask_g, causal)
    np.testing.assert_array_equal(np.isneginf(cupy.asnumpy(lse_g)), np.isneginf(lse))
    finite = np.isfinite(lse)
    np.testing.assert_allclose(cupy.asnumpy(lse_g)[finite], lse[finite], rtol=1e-5, atol=1e-6)
    for a_g, a in zip((out_g,) + tuple(grads_g), (out,) + tuple(grads)):
        assert a_g.dtype == dtype
        err = np.abs(cupy.asnumpy(a_g) - a).max()
        assert err <= 1e-5 * max(np.abs(a).max(), 1.0)


@pytest.mark.cuda
def test_cuda_flash_forward_broadcasts_and_falls_back(cupy, monkeypatch):
    """Keys and values shared over the batch axis, a feature size above the tiled kernel's
    limit (the cuBLAS path), and no keys at all."""
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 70, 6))
    k, v = rng.standard_normal((1, 45, 6)), rng.standard_normal((1, 45, 3))
    out, lse = attention_forward(q, k, v, causal=True)
    out_g, lse_g = attention_forward(*(cupy.asarray(a) for a in (q, k, v)), causal=True)
    np.testing.assert_allclose(cupy.asnumpy(out_g), out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cupy.asnumpy(lse_g), lse, rtol=1e-10, atol=1e-12)

    def no_flash(*args):
        raise AssertionError("the tiled kernel ran above _FLASH_MAX_DIM features")

    monkeypatch.setattr(attention, "_flash_forward_cuda", no_flash)
    wide = rng.standard_normal((1, 4, attention._FLASH_MAX_DIM + 1))
    out_w, _ = attention_forward(*(cupy.asarray(wide) for _ in range(3)))
    np.testing.assert_allclose(cupy.asnumpy(out_w), attention_forward(wide, wide, wide)[0],
                               rtol=1e-10)
    monkeypatch.undo()
    empty_k, empty_v = np.zeros((2, 0, 6)), np.zeros((2, 0, 3))
    out_e, lse_e = attention_forward(cupy.asarray(q), cupy.asarray(empty_k),
                                     cupy.asarray(empty_v))
    assert not cupy.asnumpy(out_e).any() and np.isneginf(cupy.asnumpy(lse_e)).all()
