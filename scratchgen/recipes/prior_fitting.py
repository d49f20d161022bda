"""Fitting a PixelCNN prior over code maps with the Trainer, as the VQ-VAE recipes do it:
``PriorStep`` (one Adam step on a batch of codes, labels and conditioning rows),
``validation_nll`` (nats per code on held-out maps) and ``fit_prior`` (the whole run: cosine
learning rate, optional EMA of the weights, the best held-out epoch kept)."""
from __future__ import annotations

import pathlib
import time
from typing import Any

import numpy as np

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader
from scratchgen.models.pixelcnn import PixelCNN, PixelCNNTrainStep
from scratchgen.train import BestWeights, History, Trainer

__all__ = ["PriorStep", "fit_prior", "validation_nll"]


def validation_nll(prior: PixelCNN, codes: np.ndarray, labels: np.ndarray | None = None,
                   cond: np.ndarray | None = None, device: str = "cpu", batch: int = 500,
                   make_cond: Any = None) -> float:
    """Mean -log p(c_i | c_<i) over all positions of ``codes``, in nats per code. ``cond`` rows
    go through ``make_cond`` (when given) to become the conditioning map."""
    prior.eval()
    total = 0.0
    with sg.no_grad():
        for i in range(0, len(codes), batch):
            c = sg.tensor(codes[i:i + batch], device=device)
            y = labels[i:i + batch] if labels is not None else None
            s = sg.tensor(cond[i:i + batch], device=device) if cond is not None else None
            if s is not None and make_cond is not None:
                s = make_cond(s)
            total += F.cross_entropy(prior(c, y, s), c, reduction="sum").item()
    return total / codes.size


class PriorStep(PixelCNNTrainStep):
    """The step ``fit_prior``'s Trainer calls: one Adam step (``self.opt``) of ``prior`` on a
    batch ``(codes[, labels][, cond rows])``; ``labels`` / ``cond`` say which of the two the
    batches carry, and ``make_cond`` turns the cond rows into the conditioning map. Logs
    ``nll``, the loss in nats per code."""

    def __init__(self, prior: PixelCNN, lr: float, labels: bool = False, cond: bool = False,
                 make_cond: Any = None) -> None:
        super().__init__(prior, optim.Adam(prior.parameters(), lr=lr))
        self.prior, self.opt = prior, self.optimizer
        self.labels, self.cond, self.make_cond = labels, cond, make_cond

    def inputs(self, batch: Any) -> tuple[Any, ...]:
        c, rest = batch[0], list(batch[1:])
        y = rest.pop(0).numpy() if self.labels else None
        s = rest.pop(0) if self.cond else None
        if s is not None and self.make_cond is not None:
            s = self.make_cond(s)
        return c, y, s

    def step(self, batch: Any) -> dict[str, float]:
        return {"nll": super().step(batch)["loss"]}

    __call__ = step


def fit_prior(prior: PixelCNN, codes: np.ndarray, val_codes: np.ndarray, out: pathlib.Path,
              epochs: int, lr: float, batch_size: int, device: str, seed: int,
              labels: np.ndarray | None = None, val_labels: np.ndarray | None = None,
              cond: np.ndarray | None = None, val_cond: np.ndarray | None = None,
              make_cond: Any = None, resume: bool = False, name: str = "prior",
              cosine: bool = True, ema_decay: float | None = None, ema_warmup: bool = False,
              test_codes: np.ndarray | None = None, test_labels: np.ndarray | None = None,
              keep_best: bool = False, stop_after: int | None = None,
              checkpoint_seconds: float | None = 60.0, allow_nonfinite: bool = False
              ) -> list[dict[str, float]]:
    """Train ``prior`` with the Trainer; returns one row per epoch (validation nats per code,
    training seconds). ``labels`` / ``cond`` (and their validation versions) condition it;
    ``make_cond`` turns a batch of ``cond`` rows into the conditioning map (VQ-VAE-2 keeps the
    small top code maps and expands them batch by batch). ``cosine``: the learning rate follows
    a cosine from ``lr`` down to 0 over all the steps (else it stays at ``lr``). ``ema_decay``:
    also keep an exponential moving average of the weights (Polyak averaging, as PixelCNN++),
    validate with it (the raw weights' figure is logged beside it as ``val_nats_per_code_raw``)
    and leave the averages in ``prior`` at the end (``ema_warmup``: the EMA's warm-up of
    its decay). ``test_codes`` (and ``test_labels``): also
    log the figure on these maps after each epoch, as ``test_nats_per_code``. ``keep_best``:
    leave in ``prior`` the (averaged) weights of the epoch with the lowest validation figure
    rather than the last epoch's (``val_codes`` must then be held-out training maps, not the
    test maps, for the test figure of those weights to stay a test figure). ``stop_after``:
    stop after this many of the ``epochs`` (the learning-rate schedule still spans all
    ``epochs``). ``checkpoint_seconds``, ``allow_nonfinite``: the Trainer's. The rows are
    checkpointed with the run, so a resumed run returns those of every epoch."""
    if stop_after is not None and not 1 <= stop_after <= epochs:
        raise ValueError(f"fit_prior: stop_after must be in 1..{epochs}, got {stop_after}")
    if test_codes is not None and cond is not None:
        raise ValueError("fit_prior: test_codes are only for priors without a conditioning map")
    step = PriorStep(prior, lr, labels is not None, cond is not None, make_cond)
    opt = step.opt
    ema = optim.EMA(prior, ema_decay, ema_warmup) if ema_decay is not None else None
    best = BestWeights(prior) if keep_best else None
    history = History()
    extras = {k: v for k, v in (("ema", ema), ("best", best), ("history", history))
              if v is not None}
    arrays = [codes] + [a for a in (labels, cond) if a is not None]
    loader = DataLoader(ArrayDataset(*arrays), batch_size=batch_size, shuffle=True, seed=seed,
                        device=device)
    schedulers = {}
    if cosine:
        schedulers["cosine"] = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
    clock = {"train": 0.0}  # seconds inside train steps this epoch (no evaluation)

    def train_step(batch: Any) -> dict[str, float]:
        start = time.perf_counter()
        out = step(batch)
        if ema is not None:
            ema.update()
        clock["train"] += time.perf_counter() - start
        return out

    def val_nll() -> float:
        return validation_nll(prior, val_codes, val_labels, val_cond, device,
                              make_cond=make_cond)

    def evaluate(row: dict[str, float], trainer: Trainer) -> None:
        row["val_nats_per_code"] = val_nll()
        if test_codes is not None:
            row["test_nats_per_code"] = validation_nll(prior, test_codes, test_labels, None,
                                                       device)
        if best is not None:
            best.offer(row["val_nats_per_code"], trainer.epoch)
            row["best_epoch"] = best.epoch

    def end_of_epoch(trainer: Trainer) -> dict[str, float]:
        row: dict[str, float] = {"epoch": trainer.epoch}
        if ema is not None:
            with ema.average_parameters(prior):
                evaluate(row, trainer)
            row["val_nats_per_code_raw"] = val_nll()
        else:
            evaluate(row, trainer)
        row["seconds"] = clock["train"]
        clock["train"] = 0.0
        history.append(row)
        return row

    trainer = Trainer(train_step, loader, out, epochs=stop_after or epochs, modules={name: prior},
                      optimizers={"adam": opt}, schedulers=schedulers,
                      extras=extras, log_every=50, checkpoint_every=500,
                      checkpoint_seconds=checkpoint_seconds, allow_nonfinite=allow_nonfinite,
                      on_epoch_end=end_of_epoch, resume=resume, seed=seed)
    trainer.fit()
    if best is not None and best.value is not None:
        best.restore()
    elif ema is not None:
        ema.copy_to(prior)
    prior.eval()
    return list(history)
