"""Scaled dot-product attention as a differentiable op, on the kernels of ``kernels.attention``.

    O = softmax(scale Q K^T + M) V,   M_ij = 0 where query i may attend key j, else -inf

over the last two axes, with the leading (batch, head) axes broadcast as in ``matmul``.
"""
from __future__ import annotations

from typing import Any

from scratchgen.kernels import attention as _attn
from scratchgen.autograd import Function, Tensor
from scratchgen.functional.piecewise import where
from scratchgen.functional.linalg import matmul, transpose_last
from scratchgen.functional.reduction import softmax, sum
from scratchgen.functional.registry import register
from scratchgen.functional.shape import sum_to

__all__ = ["scaled_dot_product_attention"]


class Attention(Function):
    """O = softmax(scale Q K^T + mask) V over the last two axes.

    The array backward rebuilds P from the saved row log-sum-exp (kernels.attention); the
    Tensor backward writes the same equations with ops so it can be differentiated again:

        P = softmax(S),  dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),
        dQ = scale dS K,  dK = scale dS^T Q.
    """

    def __init__(self, mask: Any, causal: bool, scale: float | None) -> None:
        self.mask, self.causal, self.scale = mask, causal, scale

    def forward(self, q, k, v):
        out, self.lse = _attn.attention_forward(q, k, v, self.mask, self.causal, self.scale)
        return out

    def backward_arrays(self, g):
        q, k, v = (t.data for t in self.inputs)
        return _attn.attention_backward(g, q, k, v, self._outputs[0], self.lse, self.mask,
                                        self.causal, self.scale)

    def _allowed(self, lq: int, lk: int, xp):
        """Boolean (.., Lq, Lk) array of the pairs that may attend, or None for all."""
        allowed = None if self.mask is None else xp.asarray(self.mask, dtype=bool)
        if self.causal:
            tri = xp.tril(xp.ones((lq, lk), dtype=bool))
            allowed = tri if allowed is None else allowed & tri
        return allowed

    def backward(self, g):
        q, k, v = self.inputs
        out = self.output()
        d = q.shape[-1]
        scale = self.scale if self.scale is not None else 1.0 / d ** 0.5
        s = matmul(q, transpose_last(k)) * scale
        allowed = self._allowed(q.shape[-2], k.shape[-2], q.xp)
        if allowed is not None:
            xp = q.xp
            full = xp.broadcast_to(allowed, s.shape)
            s = where(full, s, -1e30)  # finite, so fully masked rows give no NaN
            any_row = full.any(axis=-1, keepdims=True).astype(q.dtype)
        p = softmax(s, -1)
        if allowed is not None:
            p = p * Tensor(full.astype(q.dtype) * any_row)
        need_q, need_k, need_v = self.needs_input_grad
        dv = sum_to(matmul(transpose_last(p), g), v.shape) if need_v else None
        if not (need_q or need_k):
            return None, None, dv
        dp = matmul(g, transpose_last(v))
        ds = p * (dp - sum(g * out, -1, keepdims=True))
        dq = sum_to(matmul(ds, k) * scale, q.shape) if need_q else None
        dk = sum_to(matmul(transpose_last(ds), q) * scale, k.shape) if need_k else None
        return dq, dk, dv


@register()
def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor,
                                 attn_mask: Any = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None) -> Tensor:
    """``torch.nn.functional.scaled_dot_product_attention`` for (..., L, d) tensors:

        O = softmax(scale Q K^T + M) V,   scale = 1/sqrt(d) unless given,

    with M_ij = -inf where query i may not attend key j. ``attn_mask`` is boolean, True = may
    attend, broadcastable to (..., Lq, Lk). ``is_causal`` is PyTorch's lower-triangular mask,
    aligned to the top-left corner: query i attends keys j <= i, also when Lq != Lk. Unlike
    PyTorch, ``attn_mask`` and ``is_causal`` may be given together (the pairs both allow).
    A query that may attend to nothing gets output 0 (PyTorch gives NaN).

    Float (additive) masks and attention dropout are not supported.
    """
    q, k, v = query, key, value
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(
            f"attention needs (..., L, d) tensors, got {q.shape}, {k.shape}, {v.shape}")
    if dropout_p != 0.0:
        raise NotImplementedError(
            f"scaled_dot_product_attention: dropout_p={dropout_p} is not supported (attention "
            "dropout is not implemented); pass dropout_p=0.0")
    m = attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask
    if m is not None and getattr(m, "dtype", None) != bool:
        raise TypeError(
            "scaled_dot_product_attention: attn_mask must be boolean (True = may attend); "
            f"float (additive) masks are not supported, got dtype {getattr(m, 'dtype', type(m))}")
    return Attention.apply(q, k, v, mask=m, causal=bool(is_causal), scale=scale)
