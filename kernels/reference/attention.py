r"""Scaled dot-product attention, the textbook way: the whole score matrix, a full softmax.

For queries Q (Lq x d), keys K (Lk x d) and values V (Lk x dv), with any leading batch axes
broadcast as in ``matmul``:

    S = scale Q K^T,                  scale = 1 / sqrt(d) unless given
    S_ij = -inf where query i may not attend key j (mask False, or j > i when causal)
    P = softmax(S) row by row,        P_ij = exp(S_ij - lse_i),  lse_i = log sum_j exp(S_ij)
    O = P V

and, given dO = dL/dO, the backward pass (the softmax's Jacobian folded into dS):

    dV = P^T dO
    dP = dO V^T
    dS = P * (dP - rowsum(dO * O))
    dQ = scale dS K
    dK = scale dS^T Q

A query that may attend to no key has no softmax: its output is 0, its lse -inf, and it
passes on no gradient. Gradients of inputs broadcast over batch axes are summed back.
"""
from __future__ import annotations

from .. import _cuda


def _scores(q, k, mask, causal, scale):
    """S = scale Q K^T, -inf where not allowed; and the scale used."""
    xp = _cuda.get_array_module(q)
    scale = 1.0 / q.shape[-1] ** 0.5 if scale is None else float(scale)
    s = (q @ xp.swapaxes(k, -1, -2)) * q.dtype.type(scale)
    allowed = xp.ones(s.shape[-2:], dtype=bool)
    if causal:
        allowed = xp.tril(allowed)                       # query i attends keys j <= i
    if mask is not None:
        allowed = allowed & mask
    return xp.where(allowed, s, -xp.inf), scale


def _softmax(s):
    """(P, lse) row by row, shifted by the row maximum so no exponent is positive; a row of
    -inf only gives P = 0 and lse = -inf."""
    xp = _cuda.get_array_module(s)
    m = s.max(axis=-1, keepdims=True)
    m = xp.where(xp.isinf(m), 0, m)
    e = xp.exp(s - m)
    total = e.sum(axis=-1, keepdims=True)
    p = e / xp.where(total == 0, 1, total)
    with_key = total[..., 0] > 0
    lse = xp.where(with_key, (m + xp.log(xp.where(total == 0, 1, total)))[..., 0], -xp.inf)
    return p, lse


def _sum_to(a, shape):
    """Sum a gradient computed at the broadcast shape back to the input's ``shape``."""
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a


def attention_forward(q, k, v, mask=None, causal=False, scale=None):
    """(O, lse): O = softmax(scale Q K^T, masked) V and the rows' log-sum-exp."""
    s, _ = _scores(q, k, mask, causal, scale)
    p, lse = _softmax(s)
    return (p @ v).astype(q.dtype), lse.astype(q.dtype)


def attention_backward(dout, q, k, v, out, lse, mask=None, causal=False, scale=None):
    """(dQ, dK, dV) of :func:`attention_forward` (see the module docstring)."""
    xp = _cuda.get_array_module(q)
    s, scale = _scores(q, k, mask, causal, scale)
    p, _ = _softmax(s)
    dv = xp.swapaxes(p, -1, -2) @ dout
    dp = dout @ xp.swapaxes(v, -1, -2)
    ds = p * (dp - (dout * out).sum(axis=-1, keepdims=True))
    dq = (ds @ k) * q.dtype.type(scale)
    dk = (xp.swapaxes(ds, -1, -2) @ q) * q.dtype.type(scale)
    return _sum_to(dq, q.shape), _sum_to(dk, k.shape), _sum_to(dv, v.shape)
