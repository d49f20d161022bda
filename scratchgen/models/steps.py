"""A model's training step: the one convention every model follows, and what the steps share.

A training step is an object that owns the model's optimizers:

* ``step(batch)`` (also ``__call__``) makes one update and returns what to log, as floats;
* ``state_dict()`` / ``load_state_dict()`` hold what a checkpoint needs beyond the networks'
  weights (optimizer moments, counters, an EMA), so that training resumes exactly.

``Trainer(step, loader, ...)`` runs it. A model trained on one loss uses ``TrainStep``: the model
defines ``loss(x)`` (a dict of terms holding ``"loss"``, or a Tensor) and the step is
``zero_grad``, ``backward``, ``step``. Models with several players, each with its own loss and
optimizer, have their own step class beside the model (``GANTrainStep``, ``IntroVAETrainStep``,
``CycleGANTrainStep``, ...), built from the helpers below.
"""
from __future__ import annotations

from typing import Any

import scratchgen as sg
import scratchgen.nn as nn
from scratchgen.autograd import Tensor
from scratchgen.models.vae_tools import as_input

__all__ = ["TrainStep", "split_batch", "step_optimizers", "step_with_frozen", "as_floats"]


def split_batch(batch: Any, like: Tensor) -> tuple[Tensor, Tensor | None]:
    """(x, y) of a batch given as x or (x, y): x as a detached tensor of ``like``'s dtype and
    device, y (labels) as a tensor or None."""
    y = None
    if isinstance(batch, (tuple, list)):
        x = batch[0]
        y = batch[1] if len(batch) > 1 else None
    else:
        x = batch
    if not isinstance(x, Tensor):
        x = sg.tensor(x, dtype=like.dtype, device=like.device)
    if x.dtype != like.dtype:
        x = x.to(dtype=like.dtype)
    if y is not None and not isinstance(y, Tensor):
        y = sg.tensor(y, device=like.device)
    return x.detach(), y


def step_optimizers(loss: Tensor, *optimizers: Any) -> None:
    """One step of every optimizer on ``loss``: zero their gradients, backpropagate, update."""
    for opt in optimizers:
        opt.zero_grad()
    loss.backward()
    for opt in optimizers:
        opt.step()


def step_with_frozen(loss_fn: Any, opt: Any, trained: nn.Module, frozen: nn.Module
                     ) -> tuple[Tensor, dict[str, Any]]:
    """One step of ``opt`` (the optimizer of ``trained``) on ``loss, parts = loss_fn()``, with
    ``frozen``'s parameters held fixed: their requires_grad is off during the forward and
    backward passes, so no gradient is computed for them and their ``.grad`` stays None."""
    trained.requires_grad_(True)
    frozen.requires_grad_(False)
    try:
        loss, parts = loss_fn()
        frozen.zero_grad()  # no stale gradient from an earlier update stays on it either
        step_optimizers(loss, opt)
    finally:
        frozen.requires_grad_(True)
    return loss, parts


def as_floats(terms: dict[str, Any]) -> dict[str, Any]:
    """Each one-element Tensor of ``terms`` as a float; anything else (code indices) as it is."""
    return {k: v.item() if isinstance(v, Tensor) and v.size == 1 else v for k, v in terms.items()}


class TrainStep:
    """One optimizer step on ``model.loss(x)`` per call, the model in training mode.

    Args:
        model: a module whose ``loss(*inputs)`` returns a dict of terms holding ``"loss"`` (the
            objective minimised) or the objective itself as a Tensor.
        optimizer: the optimizer of the model's parameters.

    ``step(batch)`` returns every one-element term as a float (other values, such as a
    VQ-VAE's code indices, as they are), after calling ``model.after_step()`` where the model
    has one (``CapacityVAE`` counts steps for its capacity schedule). ``inputs(batch)`` turns a batch into the loss's
    arguments: by default the images (the first item of an (x, y) batch) as a tensor of the
    model's device and dtype; a subclass changes it for other inputs.
    """

    def __init__(self, model: nn.Module, optimizer: Any) -> None:
        self.model, self.optimizer = model, optimizer

    def inputs(self, batch: Any) -> tuple[Any, ...]:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return (as_input(self.model, x),)

    def step(self, batch: Any) -> dict[str, Any]:
        self.model.train()
        terms = self.model.loss(*self.inputs(batch))
        if isinstance(terms, Tensor):
            terms = {"loss": terms}
        step_optimizers(terms["loss"], self.optimizer)
        after_step = getattr(self.model, "after_step", None)
        if after_step is not None:
            after_step()
        return as_floats(terms)

    __call__ = step

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
