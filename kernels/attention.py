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

On the CPU the work is cut into tiles whose ``Lq x Lk`` scores stay below a fixed number of
elements, so that the passes over them run in the cache: several whole sequences per tile when
one score matrix fits, else blocks of query rows (rows of a softmax are independent, so
tiling is exact). The sequences of a batch are split across threads (``kernels.threads``): each
thread owns its sequences' rows of the outputs and their dK, dV.

On a GPU the forward pass is one tiled kernel that never stores the scores at all: each query
row streams through the keys and values with the *online* softmax (a running maximum ``m``, sum
``l`` and unnormalised output, rescaled by ``exp(m_old - m_new)`` whenever the maximum grows),
as FlashAttention does; see ``cuda/attention.cu``.
"""
from __future__ import annotations

import math

import numpy as np

from . import _cuda
from . import reference
from .threads import parallel_for

# Score-tile budget (elements of S held at once). Every pass over a tile (max, subtract, exp,
# sum, the products) streams it through the cache, so smaller tiles are faster until the
# products get too thin: for SAGAN's 64 x 256 x 256 scores (float32, 2 cores), forward +
# backward took 45.2 ms with 2**22 (one tile), 31.9 ms with 2**20, 29.1 ms with 2**18 (four
# sequences per tile) and 30.0 ms with 2**17.
_BLOCK_ELEMENTS_CPU = 1 << 18
_BLOCK_ELEMENTS_GPU = 1 << 27
# The CPU path takes its exponentials in base 2: e^x = 2^(x log2(e)), and ln(2) takes lse back.
_LOG2_E = 1.0 / math.log(2.0)
_LN_2 = math.log(2.0)


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


def _sum_to(a, shape):
    """Sum a broadcast gradient back to the ``shape`` of the input it was broadcast from."""
    if a.shape == tuple(shape):
        return a
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a


def _flat_size(batch) -> int:
    return int(np.prod(batch, dtype=np.int64))


def _flatten(a, batch, nb: int):
    """``a`` (..., L, d) broadcast to the batch shape and viewed as (nb, L, d) (a copy only
    where the batch axes were broadcast)."""
    xp = _cuda.get_array_module(a)
    return xp.broadcast_to(a, batch + a.shape[-2:]).reshape((nb,) + a.shape[-2:])


def _append_column(a, value):
    """(nb, L, d) -> (nb, L, d + 1) with ``value`` in the new last column."""
    return np.concatenate([a, np.full(a.shape[:-1] + (1,), value, dtype=a.dtype)], axis=-1)


def _flat_bias(mask, batch, nb: int, lq: int, lk: int, dtype):
    """The boolean mask as an additive score bias, 0 where allowed and -inf where not (adding
    it is branch-free, where ``where(mask, S, -inf)`` branches on every score): (Lq, Lk) when
    the mask is the same for every sequence, else (nb, Lq, Lk); None without a mask."""
    if mask is None:
        return None
    bias = np.where(mask, dtype.type(0), dtype.type(-np.inf))
    if all(n == 1 for n in bias.shape[:-2]):
        return np.broadcast_to(bias.reshape(bias.shape[-2:]), (lq, lk))
    return np.broadcast_to(bias, batch + (lq, lk)).reshape(nb, lq, lk)


def _tiles(lo: int, hi: int, lq: int, lk: int, budget: int):
    """``(b0, b1, r0, r1)``: sequences b0:b1 of lo:hi, query rows r0:r1, with at most
    ``budget`` scores per tile. Whole sequences, several per tile, while one Lq x Lk score
    matrix fits (so the products stay large and dK, dV are written once); otherwise blocks of
    query rows of one sequence (rows of a softmax are independent, so blocking is exact)."""
    per_seq = max(1, lq * lk)
    if per_seq <= budget:
        step = budget // per_seq
        return [(b0, min(b0 + step, hi), 0, lq) for b0 in range(lo, hi, step)]
    rows = max(1, budget // max(lk, 1))
    return [(b, b + 1, r0, min(r0 + rows, lq)) for b in range(lo, hi) for r0 in range(0, lq, rows)]


def _traffic(nb: int, lq: int, lk: int, dtype) -> int:
    """Bytes of scores a pass over every sequence writes (for ``parallel_for``)."""
    return nb * lq * lk * np.dtype(dtype).itemsize


def _mask_tile(s, bias, causal: bool, b0: int, b1: int, r0: int, r1: int) -> None:
    """Set the scores of tile (b0:b1, r0:r1) that a query may not attend to -inf, in place."""
    if bias is not None:
        s += bias[r0:r1] if bias.ndim == 2 else bias[b0:b1, r0:r1]
    if causal:
        # Query i attends keys j <= i: a (rows x Lk) bias, broadcast over the sequences.
        future = np.arange(r0, r1)[:, None] < np.arange(s.shape[-1])[None, :]
        s += np.where(future, s.dtype.type(-np.inf), s.dtype.type(0))


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
    if reference.enabled():
        return reference.attention.attention_forward(q, k, v, mask, causal, scale)
    batch, lq, lk = _check(q, k, v, mask)
    scale = _scale(scale, q.shape[-1])
    if _cuda.is_cupy_array(q):
        return _attention_forward_cuda(q, k, v, mask, causal, scale, batch, lq, lk)
    dtype = q.dtype
    nb = _flat_size(batch)
    # The scores are kept in base 2, S2 = log2(e) S, so that the softmax's exponential is
    # exp(S - m) = 2^(S2 - m2), which NumPy computes faster than e^x (0.58 against 0.83 ms for
    # 32 x 256 x 256 float32 numbers); FlashAttention-2's kernels do the same. Both factors go
    # into the (Lq x d) operand: log2(e) scale Q K^T costs d/Lk of a pass over S.
    qs = _flatten(q * dtype.type(scale * _LOG2_E), batch, nb)
    # BLAS runs Q K^T with d = 8 faster from a contiguous K^T than from K's transposed view:
    # 34 against 58 us for four 256 x 256 score matrices; SAGAN's attention (64 x 256 x 256,
    # one thread), forward 8.9 -> 8.7 ms, backward 14.7 -> 14.3 ms
    kt = np.ascontiguousarray(np.swapaxes(_flatten(k, batch, nb), -1, -2))
    vf = _flatten(v, batch, nb)
    bias = _flat_bias(mask, batch, nb, lq, lk, dtype)
    out = np.empty((nb, lq, v.shape[-1]), dtype=dtype)
    lse = np.empty((nb, lq), dtype=dtype)
    neg_inf = dtype.type(-np.inf)
    one = dtype.type(1)
    ln_2 = dtype.type(_LN_2)

    def sequences(lo: int, hi: int) -> None:
        for b0, b1, r0, r1 in _tiles(lo, hi, lq, lk, _BLOCK_ELEMENTS_CPU):
            s = np.matmul(qs[b0:b1, r0:r1], kt[b0:b1])             # S2 = log2(e) scale Q K^T
            _mask_tile(s, bias, causal, b0, b1, r0, r1)            # -inf where not allowed
            m = s.max(axis=-1, keepdims=True, initial=neg_inf)     # (Lk = 0: all masked)
            # A fully masked row has m = -inf; shifting by 0 instead makes 2^(-inf - 0) = 0
            # rather than 2^(-inf + inf) = NaN.
            m[m == neg_inf] = 0
            s -= m
            p = np.exp2(s, out=s)                 # unnormalised probabilities, entries <= 1
            l = p.sum(axis=-1, keepdims=True)     # >= 1 unless the row is fully masked (0)
            empty = l == 0
            l_safe = np.where(empty, one, l)
            # Normalising after P V divides an (Lq x dv) block instead of the (Lq x Lk) one.
            o = np.matmul(p, vf[b0:b1], out=out[b0:b1, r0:r1])
            o /= l_safe
            # lse = log sum_j e^S_ij = ln(2) m2 + ln(l)
            lse[b0:b1, r0:r1] = np.where(empty, neg_inf, ln_2 * m + np.log(l_safe))[..., 0]

    parallel_for(nb, sequences, _traffic(nb, lq, lk, dtype))
    return out.reshape(batch + out.shape[1:]), lse.reshape(batch + (lq,))


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
    if reference.enabled():
        return reference.attention.attention_backward(dout, q, k, v, out, lse, mask, causal, scale)
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
    dtype = q.dtype
    nb = _flat_size(batch)
    bias = _flat_bias(mask, batch, nb, lq, lk, dtype)
    # The scale is folded into the small operands: S = (scale Q) K^T, dQ = dS (scale K),
    # dK = dS^T (scale Q), so no pass over an (Lq x Lk) array is spent multiplying by it.
    qs = _flatten(q * dtype.type(scale), batch, nb)
    ks = _flatten(k * dtype.type(scale), batch, nb)
    do = _flatten(dout, batch, nb)
    # Two subtractions ride along in the products, one column more each, instead of costing a
    # pass over an (Lq x Lk) block (the first in base 2, as in the forward pass):
    #     log2(e) (S - lse 1^T) = [log2(e) scale Q, -log2(e) lse] [K, 1]^T
    #     dP - D 1^T            = [dO, D] [V, -1]^T,        D_i = rowsum(dO * O)
    # A fully masked row has lse = -inf, and every one of its scores is set to -inf by the mask
    # below, so P = 0 there whatever is subtracted: 0 keeps infinities out of the products.
    lse_safe = np.where(lse == -np.inf, dtype.type(0), lse).reshape(nb, lq, 1)
    delta = np.sum(dout * out, axis=-1, keepdims=True).reshape(nb, lq, 1)
    qa = np.concatenate([qs, -lse_safe], axis=-1) * dtype.type(_LOG2_E)
    doa = np.concatenate([do, delta], axis=-1)
    # BLAS runs both score products faster from contiguous K^T and V^T (as in the forward pass)
    kat = np.ascontiguousarray(np.swapaxes(_append_column(_flatten(k, batch, nb), 1), -1, -2))
    vat = np.ascontiguousarray(np.swapaxes(_append_column(_flatten(v, batch, nb), -1), -1, -2))
    dq = np.empty(qs.shape, dtype=dtype)
    dk = np.zeros(ks.shape, dtype=dtype)
    dv = np.zeros((nb, lk, v.shape[-1]), dtype=dtype)

    def sequences(lo: int, hi: int) -> None:
        for b0, b1, r0, r1 in _tiles(lo, hi, lq, lk, _BLOCK_ELEMENTS_CPU):
            s = np.matmul(qa[b0:b1, r0:r1], kat[b0:b1])            # log2(e) (S - lse)
            # Mask before the exp, as in the forward pass: a masked score may exceed lse by
            # any amount, and its exp could overflow.
            _mask_tile(s, bias, causal, b0, b1, r0, r1)
            p = np.exp2(s, out=s)                                   # P = exp(S - lse)
            do_t = do[b0:b1, r0:r1]
            dv[b0:b1] += np.matmul(np.swapaxes(p, -1, -2), do_t)   # dV = P^T dO
            dp = np.matmul(doa[b0:b1, r0:r1], vat[b0:b1])          # dP - D
            ds = np.multiply(p, dp, out=dp)                         # dS = P * (dP - D)
            np.matmul(ds, ks[b0:b1], out=dq[b0:b1, r0:r1])         # dQ = scale * dS K
            dk[b0:b1] += np.matmul(np.swapaxes(ds, -1, -2), qs[b0:b1, r0:r1])  # scale dS^T Q

    parallel_for(nb, sequences, 2 * _traffic(nb, lq, lk, dtype))
    return (_sum_to(dq.reshape(batch + q.shape[-2:]), q.shape),
            _sum_to(dk.reshape(batch + k.shape[-2:]), k.shape),
            _sum_to(dv.reshape(batch + v.shape[-2:]), v.shape))


# --------------------------------------------------------------------------------------------
# CUDA path. The forward is one tiled kernel (FlashAttention's online softmax) for feature sizes
# up to _FLASH_MAX_DIM; beyond that, and for the backward, the matmuls run in cuBLAS
# (cupy.matmul) and the masked, numerically stable softmax (and its backward) are fused
# elementwise/row kernels, all in kernels/cuda/attention.cu.
# --------------------------------------------------------------------------------------------


def _cuda_mask(cupy, mask, batch, lq, lk):
    """The mask as a contiguous ``(B, Lq, Lk)`` bool array (a 1-element dummy if None)."""
    if mask is None:
        return cupy.ones((1,), dtype=cupy.bool_), 0
    return cupy.ascontiguousarray(cupy.broadcast_to(mask, batch + (lq, lk))), 1


# The tiled forward keeps a query row and its output in registers: up to this many features.
_FLASH_MAX_DIM = 128
_FLASH_ROWS = 64  # query rows per block: the block's threads


def _flash_forward_cuda(q, k, v, mask, causal, scale, batch, lq, lk):
    """The forward pass as one tiled kernel (``attention_flash_forward`` in attention.cu):
    O(Lq + Lk) memory per sequence instead of the (Lq x Lk) scores."""
    import cupy

    dtype = q.dtype
    nb = int(np.prod(batch, dtype=np.int64))
    d, dv = q.shape[-1], v.shape[-1]

    def flat(a):
        return cupy.ascontiguousarray(_flatten(a, batch, nb))

    mask_arr, has_mask = _cuda_mask(cupy, mask, batch, lq, lk)
    out = cupy.empty((nb, lq, dv), dtype=dtype)
    lse = cupy.empty((nb, lq), dtype=dtype)
    if nb * lq > 0:
        kernel = _cuda.function("attention.cu",
                                f"attention_flash_forward_{_cuda.dtype_suffix(dtype)}")
        blocks = nb * (-(-lq // _FLASH_ROWS))
        kernel((blocks,), (_FLASH_ROWS,),
               (flat(q), flat(k), flat(v), out, lse, mask_arr,
                np.int32(has_mask), np.int32(bool(causal)), dtype.type(scale), np.int64(lq),
                np.int64(lk), np.int64(d), np.int64(dv)))
    return out.reshape(batch + (lq, dv)), lse.reshape(batch + (lq,))


def _attention_forward_cuda(q, k, v, mask, causal, scale, batch, lq, lk):
    import cupy

    if q.shape[-1] <= _FLASH_MAX_DIM and v.shape[-1] <= _FLASH_MAX_DIM:
        return _flash_forward_cuda(q, k, v, mask, causal, scale, batch, lq, lk)
    dtype = q.dtype
    nb = int(np.prod(batch, dtype=np.int64))
    mask_arr, has_mask = _cuda_mask(cupy, mask, batch, lq, lk)
    kt = cupy.swapaxes(k, -1, -2)
    out = cupy.empty(batch + (lq, v.shape[-1]), dtype=dtype)
    lse = cupy.empty(batch + (lq,), dtype=dtype)
    suffix = _cuda.dtype_suffix(dtype)
    softmax = _cuda.function("attention.cu", f"attention_softmax_forward_{suffix}")
    threads = 32   # a power of two <= 256 (the kernel's reduction) near Lk, one warp at least
    while threads < min(lk, 256):
        threads *= 2
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
