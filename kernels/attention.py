"""Scaled dot-product attention, forward and backward, on raw arrays.

For queries ``Q`` (``Lq x d``), keys ``K`` (``Lk x d``) and values ``V`` (``Lk x dv``), with any
leading batch/head axes (broadcast between ``q``, ``k`` and ``v`` as in ``matmul``):

    S   = scale * Q K^T                                  (Lq x Lk), scale = 1/sqrt(d) by default
    S_ij = -inf where query i may not attend key j       (boolean mask False, or j > i if causal)
    P   = softmax(S) row-wise:  P_ij = exp(S_ij - lse_i),  lse_i = log sum_j exp(S_ij)
    O   = P V                                            (Lq x dv)

The softmax is computed stably: with ``m_i = max_j S_ij``,
``lse_i = m_i + log sum_j exp(S_ij - m_i)``, so no exponent is positive. The forward pass returns
``lse`` (``Lq`` numbers per row) rather than ``P`` (``Lq x Lk``): the backward pass rebuilds
``P = exp(S - lse)`` from one more ``Q K^T``, which is what FlashAttention does to keep memory
linear in the sequence length.

Backward, given ``dO``:

    dV = P^T dO
    dP = dO V^T
    dS = P * (dP - D),   D_i = sum_j P_ij dP_ij = sum_c dO_ic O_ic     (softmax Jacobian)
    dQ = scale * dS K
    dK = scale * dS^T Q

(``D_i = rowsum(dO * O)`` because
``sum_j P_ij dP_ij = sum_j P_ij sum_c dO_ic V_jc = sum_c dO_ic O_ic``:
an ``Lq x dv`` product instead of an ``Lq x Lk`` one.)

A query row whose every key is masked has no softmax (PyTorch returns NaN there). Here its output
is 0, its ``lse`` is ``-inf``, and it receives and passes on zero gradient.

Queries are processed in blocks of rows so that the ``Lq x Lk`` score block of the whole batch
stays below a fixed number of elements; rows of a softmax are independent, so blocking is exact.
"""
from __future__ import annotations

import math

import numpy as np

from kernels import _cuda

# Score-block budget (elements of S held at once, for the whole batch). Every pass over a block
# (max, subtract, exp, sum, the products) streams it through the cache, so smaller blocks are
# faster until the products get too thin: for SAGAN's 64 x 256 x 256 scores, forward + backward
# took 40.7 ms with 2**22 (one block), 36.5 ms with 2**20 and 37.2 ms with 2**19 (2 cores).
_BLOCK_ELEMENTS_CPU = 1 << 20
_BLOCK_ELEMENTS_GPU = 1 << 27


def _broadcast_batch(q, k, v) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))
    except ValueError:
        raise ValueError(
            f"attention: leading (batch) dimensions of q {tuple(q.shape)}, k {tuple(k.shape)} "
            f"and v {tuple(v.shape)} do not broadcast"
        ) from None


def _check(q, k, v, mask):
    """Validate shapes and dtypes; return ``(batch_shape, Lq, Lk)``."""
    on_gpu = {_cuda.is_cupy_array(a) for a in (q, k, v, mask) if a is not None}
    if len(on_gpu) > 1:
        raise ValueError("attention: q, k, v and mask must all be NumPy arrays or all CuPy arrays")
    for name, a in (("q", q), ("k", k), ("v", v)):
        if a.ndim < 2:
            raise ValueError(f"attention: {name} must have shape (..., L, d), got {tuple(a.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"attention: q and k must have the same feature size d, got q {tuple(q.shape)} and "
            f"k {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"attention: k and v must have the same number of keys, got k {tuple(k.shape)} and "
            f"v {tuple(v.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"attention: q, k, v must all be float32 or all float64, got {q.dtype}, {k.dtype}, "
            f"{v.dtype}"
        )
    batch = _broadcast_batch(q, k, v)
    lq, lk = q.shape[-2], k.shape[-2]
    if mask is not None:
        if mask.dtype != np.bool_:
            raise TypeError(f"attention: mask must be boolean (True = attend), got {mask.dtype}")
        target = batch + (lq, lk)
        try:
            ok = tuple(np.broadcast_shapes(tuple(mask.shape), target)) == target
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"attention: mask of shape {tuple(mask.shape)} does not broadcast to the score "
                f"shape {target} (batch..., Lq, Lk) of q {tuple(q.shape)} and k {tuple(k.shape)}"
            )
    return batch, lq, lk


def _scale(scale: float | None, d: int) -> float:
    return 1.0 / math.sqrt(d) if scale is None else float(scale)


def _row_blocks(batch, lq: int, lk: int, budget: int):
    """``(r0, r1)`` query-row blocks with ``prod(batch) * (r1 - r0) * Lk <= budget`` (at least 1
    row per block)."""
    per_row = max(1, int(np.prod(batch, dtype=np.int64)) * max(lk, 1))
    rows = max(1, min(lq, budget // per_row))
    return [(r0, min(r0 + rows, lq)) for r0 in range(0, lq, rows)]


def _mask_bias(xp, mask, batch, lq: int, lk: int, dtype):
    """The boolean mask as an additive score bias, 0 where allowed and -inf where not, broadcast
    (as a view) to ``(batch..., Lq, Lk)``; None without a mask.

    Adding the bias is branch-free, where ``where(mask, S, -inf)`` branches on every score.
    It is built from the mask's own (usually much smaller) shape.
    """
    if mask is None:
        return None
    bias = xp.where(mask, dtype.type(0), dtype.type(-np.inf))
    return xp.broadcast_to(bias, batch + (lq, lk))


def _mask_scores(xp, s, bias, causal: bool, r0: int, r1: int, lk: int):
    """Set the scores of block rows ``r0:r1`` that a query may not attend to -inf, in place."""
    if bias is not None:
        s += bias[..., r0:r1, :]
    if causal:
        # Query i attends keys j <= i: a (rows x Lk) bias, broadcast over the batch.
        future = xp.arange(r0, r1)[:, None] < xp.arange(lk)[None, :]
        s += xp.where(future, s.dtype.type(-np.inf), s.dtype.type(0))
    return s


def _sum_to(a, shape):
    """Sum a broadcast gradient back to the ``shape`` of the input it was broadcast from."""
    if a.shape == tuple(shape):
        return a
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a


def attention_forward(q, k, v, mask=None, causal: bool = False, scale: float | None = None):
    """Scaled dot-product attention ``O = softmax(scale * Q K^T, masked) V``.

    Args:
        q: ``(..., Lq, d)``; k: ``(..., Lk, d)``; v: ``(..., Lk, dv)``, all float32 or all float64.
        mask: optional boolean array broadcastable to ``(..., Lq, Lk)``; True = may attend.
        causal: query ``i`` attends only keys ``j <= i`` (combined with ``mask`` by AND).
        scale: score scale, ``1/sqrt(d)`` if None.

    Returns:
        ``(out, lse)``: ``out`` of shape ``(..., Lq, dv)`` and ``lse = log sum_j exp(S_ij)``
        of shape ``(..., Lq)`` (``-inf`` for a fully masked row, whose output is 0).
    """
    batch, lq, lk = _check(q, k, v, mask)
    scale = _scale(scale, q.shape[-1])
    if _cuda.is_cupy_array(q):
        return _attention_forward_cuda(q, k, v, mask, causal, scale, batch, lq, lk)
    xp = np
    dtype = q.dtype
    bias = _mask_bias(xp, mask, batch, lq, lk, dtype)
    # scale * (Q K^T) = (scale * Q) K^T: scaling the (Lq x d) operand costs d/Lk of a pass over S.
    qs = q * dtype.type(scale)
    kt = xp.swapaxes(k, -1, -2)
    out = xp.empty(batch + (lq, v.shape[-1]), dtype=dtype)
    lse = xp.empty(batch + (lq,), dtype=dtype)
    neg_inf = dtype.type(-np.inf)
    one = dtype.type(1)
    for r0, r1 in _row_blocks(batch, lq, lk, _BLOCK_ELEMENTS_CPU):
        s = xp.matmul(qs[..., r0:r1, :], kt)                   # S = scale * Q K^T
        _mask_scores(xp, s, bias, causal, r0, r1, lk)           # -inf where not allowed
        m = s.max(axis=-1, keepdims=True, initial=neg_inf)     # (Lk = 0 counts as all masked)
        # A fully masked row has m = -inf; shifting by 0 instead makes exp(-inf - 0) = 0 rather
        # than exp(-inf + inf) = NaN.
        m[m == neg_inf] = 0
        s -= m
        p = xp.exp(s, out=s)                      # unnormalised probabilities, entries <= 1
        l = p.sum(axis=-1, keepdims=True)         # >= 1 unless the row is fully masked (0)
        empty = l == 0
        l_safe = xp.where(empty, one, l)
        # Normalising after P V divides an (Lq x dv) block instead of the (Lq x Lk) one.
        o = xp.matmul(p, v)
        o /= l_safe
        out[..., r0:r1, :] = o
        lse[..., r0:r1] = xp.where(empty, neg_inf, m + xp.log(l_safe))[..., 0]
    return out, lse


def attention_backward(dout, q, k, v, out, lse, mask=None, causal: bool = False,
                       scale: float | None = None):
    """Gradients ``(dq, dk, dv)`` of :func:`attention_forward` given ``dout = dL/dO``:

        P  = exp(S - lse)                (masked entries 0; rebuilt, not stored)
        dV = P^T dO
        dP = dO V^T
        dS = P * (dP - rowsum(dO * O))
        dQ = scale * dS K
        dK = scale * dS^T Q

    Gradients of inputs that were broadcast over batch axes are summed back to their shapes.
    """
    batch, lq, lk = _check(q, k, v, mask)
    expect = batch + (lq, v.shape[-1])
    if tuple(dout.shape) != expect or tuple(out.shape) != expect:
        raise ValueError(
            f"attention_backward: dout {tuple(dout.shape)} and out {tuple(out.shape)} must have "
            f"the output shape {expect}"
        )
    if tuple(lse.shape) != batch + (lq,):
        raise ValueError(
            f"attention_backward: lse of shape {tuple(lse.shape)} should be {batch + (lq,)}"
        )
    scale = _scale(scale, q.shape[-1])
    if _cuda.is_cupy_array(q):
        return _attention_backward_cuda(dout, q, k, v, out, lse, mask, causal, scale, batch,
                                        lq, lk)
    xp = np
    dtype = q.dtype
    bias = _mask_bias(xp, mask, batch, lq, lk, dtype)
    # The scale is folded into the small operands: S = (scale Q) K^T, dQ = dS (scale K),
    # dK = dS^T (scale Q), so no pass over an (Lq x Lk) array is spent multiplying by it.
    qs = q * dtype.type(scale)
    ks = k * dtype.type(scale)
    kt = xp.swapaxes(k, -1, -2)
    vt = xp.ascontiguousarray(xp.swapaxes(v, -1, -2))    # BLAS runs dO V^T faster from this
    # A fully masked row has lse = -inf; using +inf there makes P = exp(S - inf) = 0 for the
    # whole row without a NaN.
    lse_safe = xp.where(lse == -np.inf, dtype.type(np.inf), lse)[..., None]
    delta = xp.sum(dout * out, axis=-1, keepdims=True)        # D_i = rowsum(dO * O)
    dq = xp.empty(batch + q.shape[-2:], dtype=dtype)
    dk = xp.zeros(batch + k.shape[-2:], dtype=dtype)
    dv = xp.zeros(batch + v.shape[-2:], dtype=dtype)
    for r0, r1 in _row_blocks(batch, lq, lk, _BLOCK_ELEMENTS_CPU):
        qs_b, do_b = qs[..., r0:r1, :], dout[..., r0:r1, :]
        s = xp.matmul(qs_b, kt)                                # S = scale * Q K^T
        # Mask before the exp, as in the forward pass: a masked score may exceed lse by any
        # amount, and its exp could overflow.
        _mask_scores(xp, s, bias, causal, r0, r1, lk)
        s -= lse_safe[..., r0:r1, :]
        p = xp.exp(s, out=s)                                   # P = exp(S - lse), masked 0
        dv += xp.matmul(xp.swapaxes(p, -1, -2), do_b)          # dV = P^T dO
        dp = xp.matmul(do_b, vt)                               # dP = dO V^T
        dp -= delta[..., r0:r1, :]
        ds = xp.multiply(p, dp, out=dp)                        # dS = P * (dP - D)
        dq[..., r0:r1, :] = xp.matmul(ds, ks)                  # dQ = scale * dS K
        dk += xp.matmul(xp.swapaxes(ds, -1, -2), qs_b)         # dK = scale * dS^T Q
    return _sum_to(dq, q.shape), _sum_to(dk, k.shape), _sum_to(dv, v.shape)


# --------------------------------------------------------------------------------------------
# CUDA path: matmuls through cuBLAS (cupy.matmul); the masked, numerically stable softmax (and
# its backward) are fused elementwise/row kernels in kernels/cuda/attention.cu.
# --------------------------------------------------------------------------------------------


def _cuda_mask(cupy, mask, batch, lq, lk):
    """The mask as a contiguous ``(B, Lq, Lk)`` bool array (a 1-element dummy if None)."""
    if mask is None:
        return cupy.ones((1,), dtype=cupy.bool_), 0
    return cupy.ascontiguousarray(cupy.broadcast_to(mask, batch + (lq, lk))), 1


def _attention_forward_cuda(q, k, v, mask, causal, scale, batch, lq, lk):
    import cupy

    dtype = q.dtype
    nb = int(np.prod(batch, dtype=np.int64))
    mask_arr, has_mask = _cuda_mask(cupy, mask, batch, lq, lk)
    kt = cupy.swapaxes(k, -1, -2)
    out = cupy.empty(batch + (lq, v.shape[-1]), dtype=dtype)
    lse = cupy.empty(batch + (lq,), dtype=dtype)
    suffix = _cuda.dtype_suffix(dtype)
    softmax = _cuda.function("attention.cu", f"attention_softmax_forward_{suffix}")
    threads = 256 if lk > 128 else (128 if lk > 64 else 64)
    for r0, r1 in _row_blocks(batch, lq, lk, _BLOCK_ELEMENTS_GPU):
        rows = r1 - r0
        s = cupy.ascontiguousarray(cupy.matmul(q[..., r0:r1, :], kt))   # (batch..., rows, Lk)
        lse_b = cupy.full(batch + (rows,), -np.inf, dtype=dtype)   # stays -inf if Lk = 0
        if nb * rows > 0 and lk > 0:
            softmax((nb * rows,), (threads,),
                    (s, lse_b, mask_arr, np.int32(has_mask), np.int32(bool(causal)),
                     dtype.type(scale), np.int64(rows), np.int64(r0), np.int64(lq),
                     np.int64(lk)))
        out[..., r0:r1, :] = cupy.matmul(s, v)        # s now holds the normalised P
        lse[..., r0:r1] = lse_b
    return out, lse


def _attention_backward_cuda(dout, q, k, v, out, lse, mask, causal, scale, batch, lq, lk):
    import cupy

    dtype = q.dtype
    nb = int(np.prod(batch, dtype=np.int64))
    mask_arr, has_mask = _cuda_mask(cupy, mask, batch, lq, lk)
    kt = cupy.swapaxes(k, -1, -2)
    vt = cupy.swapaxes(v, -1, -2)
    lse = cupy.ascontiguousarray(cupy.broadcast_to(lse, batch + (lq,)))
    delta = cupy.ascontiguousarray(cupy.sum(dout * out, axis=-1))       # (batch..., Lq)
    dq = cupy.empty(batch + q.shape[-2:], dtype=dtype)
    dk = cupy.zeros(batch + k.shape[-2:], dtype=dtype)
    dv = cupy.zeros(batch + v.shape[-2:], dtype=dtype)
    kernel = _cuda.function("attention.cu",
                            f"attention_softmax_backward_{_cuda.dtype_suffix(dtype)}")
    for r0, r1 in _row_blocks(batch, lq, lk, _BLOCK_ELEMENTS_GPU):
        rows = r1 - r0
        q_b, do_b = q[..., r0:r1, :], dout[..., r0:r1, :]
        s = cupy.ascontiguousarray(cupy.matmul(q_b, kt))       # raw Q K^T -> overwritten by P
        dp = cupy.ascontiguousarray(cupy.matmul(do_b, vt))     # dO V^T -> overwritten by scale*dS
        lse_b = cupy.ascontiguousarray(lse[..., r0:r1])
        delta_b = cupy.ascontiguousarray(delta[..., r0:r1])
        _cuda.launch_1d(kernel, nb * rows * lk,
                        (s, dp, lse_b, delta_b, mask_arr, np.int32(has_mask),
                         np.int32(bool(causal)), dtype.type(scale), np.int64(nb * rows * lk),
                         np.int64(rows), np.int64(r0), np.int64(lq), np.int64(lk)))
        dv += cupy.matmul(cupy.swapaxes(s, -1, -2), do_b)
        dq[..., r0:r1, :] = cupy.matmul(dp, k)
        dk += cupy.matmul(cupy.swapaxes(dp, -1, -2), q_b)
    return _sum_to(dq, q.shape), _sum_to(dk, k.shape), _sum_to(dv, v.shape)
