"""A tiny training problem for the loop's tests: an MLP with dropout on shuffled toy data."""
from __future__ import annotations

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import nn, optim
from scratchgen.data import ArrayDataset, DataLoader


class Setup:
    """Model, optimizer, scheduler, EMA, loader and train step, built the same way each time."""

    def __init__(self, seed: int = 0, n: int = 96, batch_size: int = 16, fail_at: int | None = None,
                 on_call=None) -> None:
        sg.manual_seed(seed)
        np.random.seed(seed)
        rng = np.random.default_rng(123)
        x = rng.standard_normal((n, 5)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
        self.model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
        self.opt = optim.Adam(self.model.parameters(), lr=1e-2)
        self.sched = optim.lr_scheduler.StepLR(self.opt, step_size=7, gamma=0.5)
        self.ema = optim.EMA(self.model, decay=0.9)
        self.loader = DataLoader(ArrayDataset(x, y), batch_size=batch_size, shuffle=True, seed=1,
                                 device="cpu")
        self.calls = 0
        self.fail_at = fail_at
        self.on_call = on_call

    def step(self, batch):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt
        xb, yb = batch
        # some randomness drawn by the step itself, besides dropout's
        noise = sg.tensor(sg.backend.generator().standard_normal(xb.shape).astype(np.float32))
        loss = F.cross_entropy(self.model(xb + 0.1 * noise), yb)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.ema.update()
        if self.on_call is not None:
            self.on_call(self.calls)
        return {"loss": loss.item(), "noise": float(np.random.standard_normal())}

    def trainer(self, out_dir, **kw):
        from scratchgen.train import Trainer

        kw.setdefault("progress", False)
        return Trainer(self.step, self.loader, out_dir, modules={"model": self.model},
                       optimizers={"opt": self.opt}, schedulers={"sched": self.sched},
                       extras={"ema": self.ema}, **kw)

    def weights(self):
        return {k: np.array(v) for k, v in self.model.state_dict().items()}


@pytest.fixture
def setup_factory():
    return Setup
