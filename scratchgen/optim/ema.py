"""Exponential moving average of a model's parameters, for evaluating GAN generators
(Yazici et al., 2019, "The Unusual Effectiveness of Averaging in GAN Training"; Karras et al.,
2018 use it for every reported result)."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from scratchgen import backend
from scratchgen.autograd import Tensor

__all__ = ["EMA"]


def _array(a: Any) -> Any:
    return a.data if isinstance(a, Tensor) else a


class EMA:
    """Keeps shadow copies of ``model``'s parameters,

        theta_ema <- decay * theta_ema + (1 - decay) * theta        (each ``update()``),

    and copies of its buffers (batch-norm running statistics are copied as they are, not
    averaged). ``copy_to(model)`` writes the averages into a model; inside
    ``with ema.average_parameters(model):`` the model temporarily holds them.

    With ``warmup=True`` the t-th update (t = 0, 1, ...) uses the decay

        min(decay, (1 + t) / (10 + t))

    (TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``): early on the average
    follows the recent weights instead of keeping ``decay**t`` of the random initialisation
    (still 18% after 1,700 updates at 0.999). The warm-up is long: (1 + t) / (10 + t) reaches
    ``decay`` only at t = (10 decay - 1) / (1 - decay), 8,990 updates for 0.999 and 17,990 for
    0.9995, and until then the average spans about t / 9 recent updates, whatever ``decay``.

    The model is duck-typed: anything with ``named_parameters()`` and ``named_buffers()``.
    """

    def __init__(self, model: Any, decay: float = 0.999, warmup: bool = False) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        self.model = model
        self.decay = decay
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow = {n: p.data.copy() for n, p in model.named_parameters()}
        self.buffers = {n: b.data.copy() for n, b in model.named_buffers()}

    @staticmethod
    def _like(a: Any, t: Any) -> Any:
        if a.dtype != t.dtype:
            a = a.astype(t.dtype)
        if backend.device_of(a) != t.device:
            a = backend.to_device(a, t.device)
        return a

    def update(self) -> None:
        """One averaging step after an optimizer step."""
        d = self.decay
        if self.warmup:
            d = min(d, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        for n, p in self.model.named_parameters():
            s = self._like(self.shadow[n], p)
            s *= d
            s += (1.0 - d) * p.data
            self.shadow[n] = s
        for n, b in self.model.named_buffers():
            self.buffers[n] = b.data.copy()
        self.num_updates += 1

    def copy_to(self, model: Any = None) -> None:
        """Write the averaged parameters (and the buffer copies) into ``model`` (default: the
        tracked model). Parameters keep their identity; their arrays are replaced."""
        model = self.model if model is None else model
        for n, p in model.named_parameters():
            p.data = self._like(self.shadow[n], p).copy()
        for n, b in model.named_buffers():
            if n in self.buffers:
                b.data = self._like(self.buffers[n], b).copy()

    @contextlib.contextmanager
    def average_parameters(self, model: Any = None) -> Iterator[Any]:
        """Swap the averages into ``model`` for the block, then restore its own values."""
        model = self.model if model is None else model
        saved_p = {n: p.data for n, p in model.named_parameters()}
        saved_b = {n: b.data for n, b in model.named_buffers()}
        self.copy_to(model)
        try:
            yield model
        finally:
            for n, p in model.named_parameters():
                p.data = saved_p[n]
            for n, b in model.named_buffers():
                if n in saved_b:
                    b.data = saved_b[n]

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {n: a.copy() for n, a in self.shadow.items()},
                "buffers": {n: a.copy() for n, a in self.buffers.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        missing = set(self.shadow) - set(state_dict["shadow"])
        unexpected = set(state_dict["shadow"]) - set(self.shadow)
        if missing or unexpected:
            raise RuntimeError(f"EMA state dict does not match the model: missing "
                               f"{sorted(missing)}, unexpected {sorted(unexpected)}")
        params = dict(self.model.named_parameters())
        for n, a in state_dict["shadow"].items():
            a = _array(a)
            if tuple(a.shape) != tuple(params[n].shape):
                raise RuntimeError(f"EMA state for {n}: expected shape {tuple(params[n].shape)}, "
                                   f"got {tuple(a.shape)}")
        self.decay = state_dict["decay"]
        self.warmup = bool(state_dict.get("warmup", False))
        self.num_updates = state_dict["num_updates"]
        self.shadow = {n: self._like(_array(a), params[n]).copy()
                       for n, a in state_dict["shadow"].items()}
        bufs = dict(self.model.named_buffers())
        self.buffers = {n: (self._like(_array(a), bufs[n]) if n in bufs
                            else _array(a)).copy()
                        for n, a in state_dict["buffers"].items()}
