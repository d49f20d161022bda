"""Optimizers, learning-rate schedules, gradient clipping and parameter averaging.

    opt = sg.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
"""
from scratchgen.optim.optimizer import Optimizer  # noqa: F401
from scratchgen.optim.sgd import SGD  # noqa: F401
from scratchgen.optim.adam import Adam, AdamW  # noqa: F401
from scratchgen.optim.rmsprop import RMSprop  # noqa: F401
from scratchgen.optim.clip import clip_grad_norm_, clip_grad_value_  # noqa: F401
from scratchgen.optim.ema import EMA  # noqa: F401
from scratchgen.optim import lr_scheduler  # noqa: F401
