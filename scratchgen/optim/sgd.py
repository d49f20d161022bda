"""Stochastic gradient descent with momentum (Polyak, 1964; Sutskever et al., 2013)."""
from __future__ import annotations

from typing import Any, Iterable

from scratchgen.autograd import no_grad
from scratchgen.optim.optimizer import Optimizer, required

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD, as PyTorch's algorithm box. For each parameter theta with gradient g_t:

        g_t <- g_t + lambda theta_{t-1}                     (weight_decay lambda != 0)
        b_t <- g_t                                          (first step, momentum mu != 0)
        b_t <- mu b_{t-1} + (1 - tau) g_t                   (later steps; dampening tau)
        g_t <- g_t + mu b_t   (nesterov)   or   g_t <- b_t  (otherwise)
        theta_t <- theta_{t-1} - lr g_t

    Nesterov momentum needs mu > 0 and tau = 0.
    """

    def __init__(self, params: Iterable[Any], lr: float = required, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        if lr is not required and lr < 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    @no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
            wd, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                if wd != 0:
                    g = g + wd * p.data
                if mu != 0:
                    state = self._state_arrays(p, ("momentum_buffer",))
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = g.copy()
                    else:
                        buf *= mu
                        buf += (1.0 - tau) * g
                    state["momentum_buffer"] = buf
                    g = g + mu * buf if nesterov else buf
                p.data -= lr * g
