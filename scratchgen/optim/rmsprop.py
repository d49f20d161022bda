"""RMSprop (Hinton, Lecture 6e of "Neural Networks for Machine Learning", 2012; the centered
variant of Graves, 2013)."""
from __future__ import annotations

from typing import Any, Iterable

from scratchgen import backend
from scratchgen.autograd import no_grad
from scratchgen.optim.optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop, as PyTorch's algorithm box. With gradient g_t:

        g_t <- g_t + lambda theta_{t-1}                     (weight_decay lambda != 0)
        v_t = alpha v_{t-1} + (1 - alpha) g_t^2
        centered:  a_t = alpha a_{t-1} + (1 - alpha) g_t,   v~_t = v_t - a_t^2
        otherwise: v~_t = v_t
        momentum mu > 0:  b_t = mu b_{t-1} + g_t / (sqrt(v~_t) + eps),
                          theta_t = theta_{t-1} - lr b_t
        otherwise:        theta_t = theta_{t-1} - lr g_t / (sqrt(v~_t) + eps)

    (WGAN, Arjovsky et al. 2017, trains with RMSprop at lr 5e-5.)
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        if lr < 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"invalid epsilon value: {eps}")
        if not 0.0 <= alpha:
            raise ValueError(f"invalid alpha value: {alpha}")
        if momentum < 0.0:
            raise ValueError(f"invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    @no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            wd, mu, centered = group["weight_decay"], group["momentum"], group["centered"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                xp = backend.get_array_module(p.data)
                state = self._state_arrays(p, ("square_avg", "grad_avg", "momentum_buffer"))
                if not state:
                    state["step"] = 0
                    state["square_avg"] = xp.zeros_like(p.data)
                    if mu > 0:
                        state["momentum_buffer"] = xp.zeros_like(p.data)
                    if centered:
                        state["grad_avg"] = xp.zeros_like(p.data)
                state["step"] += 1
                if wd != 0:
                    g = g + wd * p.data
                sq = state["square_avg"]
                sq *= alpha
                sq += (1.0 - alpha) * (g * g)
                if centered:
                    ga = state.get("grad_avg")
                    if ga is None:
                        ga = state["grad_avg"] = xp.zeros_like(p.data)
                    ga *= alpha
                    ga += (1.0 - alpha) * g
                    avg = xp.sqrt(sq - ga * ga) + eps
                else:
                    avg = xp.sqrt(sq) + eps
                if mu > 0:
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = xp.zeros_like(p.data)
                    buf *= mu
                    buf += g / avg
                    p.data -= lr * buf
                else:
                    p.data -= lr * (g / avg)
