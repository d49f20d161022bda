"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019)."""
from __future__ import annotations

from typing import Any, Iterable

from scratchgen import backend
from scratchgen.autograd import no_grad
from scratchgen.kernels.optim import adam_update
from scratchgen.optim.optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


def _check(lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    if lr < 0.0:
        raise ValueError(f"invalid learning rate: {lr}")
    if eps < 0.0:
        raise ValueError(f"invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"invalid betas {betas}: each must be in [0, 1)")
    if weight_decay < 0.0:
        raise ValueError(f"invalid weight_decay value: {weight_decay}")


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015, Alg. 1), as PyTorch's algorithm box. With gradient g_t:

        g_t <- g_t + lambda theta_{t-1}                       (weight_decay lambda != 0: L2)
        m_t = beta1 m_{t-1} + (1 - beta1) g_t
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        v_max = max(v_max, v_t), used in place of v_t          (amsgrad; Reddi et al., 2018)
        theta_t = theta_{t-1} - lr / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)

    i.e. the bias-corrected m_hat = m_t / (1 - beta1^t), v_hat = v_t / (1 - beta2^t) with eps
    added to sqrt(v_hat), as PyTorch does. The update runs in ``kernels.optim.adam_update``
    (its formulas are ``kernels/reference/optim.py``).
    """

    decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        _check(lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad))

    @no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            wd, amsgrad = group["weight_decay"], group["amsgrad"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                xp = backend.get_array_module(p.data)
                state = self._state_arrays(p, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"))
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = xp.zeros_like(p.data)
                    state["exp_avg_sq"] = xp.zeros_like(p.data)
                    if amsgrad:
                        state["max_exp_avg_sq"] = xp.zeros_like(p.data)
                if amsgrad and "max_exp_avg_sq" not in state:
                    # amsgrad turned on after the first step: v_max starts from v, as max(0, v).
                    state["max_exp_avg_sq"] = xp.zeros_like(p.data)
                state["step"] += 1
                adam_update(
                    p.data, g, state["exp_avg"], state["exp_avg_sq"], lr=lr, beta1=b1,
                    beta2=b2, eps=eps, step=state["step"], weight_decay=wd,
                    decoupled=self.decoupled,
                    max_exp_avg_sq=state["max_exp_avg_sq"] if amsgrad else None)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019, Alg. 2), as PyTorch: weight decay decoupled from the
    gradient, applied to the parameter before the Adam step,

        theta_t <- theta_{t-1} (1 - lr lambda),  then Adam's update without the L2 term.
    """

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
