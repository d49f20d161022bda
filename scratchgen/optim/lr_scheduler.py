"""Learning-rate schedules, as ``torch.optim.lr_scheduler``.

Each scheduler sets every group's ``lr`` from a closed form in the epoch (or step) counter
``last_epoch``: ``lr_e = f(base_lr, e)``. Construction applies e = 0; each ``step()`` advances
e by one. Call ``scheduler.step()`` after ``optimizer.step()``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from scratchgen.optim.optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR",
           "LinearWarmup", "LinearDecayLR"]


class LRScheduler:
    """Base class: subclasses define ``lr_at(base_lr, epoch)``."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"])
        else:
            for i, g in enumerate(optimizer.param_groups):
                if "initial_lr" not in g:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   "when resuming an optimizer")
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        """The learning rates of the current epoch."""
        return [self.lr_at(b, self.last_epoch) for b in self.base_lrs]

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last ``step()``."""
        return list(self._last_lr)

    def step(self, epoch: int | None = None) -> None:
        """Advance to the next epoch (or jump to ``epoch``) and set the groups' learning rates."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        self._apply(self.get_lr())

    def _apply(self, lrs: Sequence[float]) -> None:
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (and any function, which cannot be saved)."""
        return {k: v for k, v in self.__dict__.items()
                if k != "optimizer" and not callable(v) and not isinstance(v, LRScheduler)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "optimizer"})
        self._apply(self._last_lr)


class StepLR(LRScheduler):
    """lr_e = base_lr * gamma^floor(e / step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """lr_e = base_lr * gamma^e."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """SGDR's cosine annealing without restarts (Loshchilov & Hutter, 2017, eq. 5), the
    closed form of PyTorch's scheduler:

        lr_e = eta_min + (base_lr - eta_min) (1 + cos(pi e / T_max)) / 2.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LambdaLR(LRScheduler):
    """lr_e = base_lr * lr_lambda(e) (one function, or one per group). The functions are not
    part of the state dict."""

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float] | list,
                 last_epoch: int = -1) -> None:
        n = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"expected {n} lr_lambdas, got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [b * f(self.last_epoch) for b, f in zip(self.base_lrs, self.lr_lambdas)]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "lr_lambdas"}


class LinearWarmup(LRScheduler):
    """Linear warm-up (Goyal et al., 2017), optionally followed by another schedule:

        lr_e = base_lr * (e + 1) / warmup_steps             for e < warmup_steps,
        lr_e = after's lr at epoch e - warmup_steps        afterwards (base_lr if no ``after``).

    ``after`` is a scheduler built on the same optimizer; this one drives it.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int,
                 after: LRScheduler | None = None, last_epoch: int = -1) -> None:
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be at least 1, got {warmup_steps}")
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("the scheduler to follow the warm-up must use the same optimizer")
        self.warmup_steps = warmup_steps
        self.after = after
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        e = self.last_epoch
        if e < self.warmup_steps:
            return [b * (e + 1) / self.warmup_steps for b in self.base_lrs]
        if self.after is None:
            return list(self.base_lrs)
        self.after.last_epoch = e - self.warmup_steps
        return self.after.get_lr()

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        if self.after is not None:
            sd["after"] = self.after.state_dict()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        sd = dict(state_dict)
        after = sd.pop("after", None)
        if after is not None and self.after is not None:
            self.after.load_state_dict(after)
        super().load_state_dict(sd)


class LinearDecayLR(LRScheduler):
    """CycleGAN's schedule (Zhu et al., 2017, Sec. 7.1; ``lambda_rule`` of the authors' code,
    with epochs counted from 0): the base rate for ``n_epochs_constant`` epochs, then linear
    decay over ``n_epochs_decay`` epochs,

        lr_e = base_lr * (1 - max(0, e + 1 - n_epochs_constant) / (n_epochs_decay + 1)),

    which reaches 0 at e = n_epochs_constant + n_epochs_decay, the epoch after training ends, and
    stays 0 from there (the authors' rule would turn negative).
    """

    def __init__(self, optimizer: Optimizer, n_epochs_constant: int, n_epochs_decay: int,
                 last_epoch: int = -1) -> None:
        self.n_epochs_constant, self.n_epochs_decay = n_epochs_constant, n_epochs_decay
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        decayed = max(0, epoch + 1 - self.n_epochs_constant) / float(self.n_epochs_decay + 1)
        return base_lr * max(0.0, 1.0 - decayed)
