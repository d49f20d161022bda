"""Softmax regression written with raw ops: the engine's smallest complete example.

For an image x (flattened) and class scores s = x W + b, the model is

    p(y = k | x) = softmax(s)_k = e^{s_k} / sum_j e^{s_j},

trained by gradient descent on the mean negative log-likelihood (cross-entropy)

    L(W, b) = -(1/N) sum_n log p(y_n | x_n) = (1/N) sum_n [logsumexp(s_n) - s_{n, y_n}].

Every step is visible: the forward pass builds a graph, ``backward`` fills ``W.grad`` and
``b.grad``, and the update is one line of arithmetic under ``no_grad``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy

import scratchgen as sg
import scratchgen.functional as F

__all__ = ["fit", "Result"]


@dataclass
class Result:
    W: sg.Tensor
    b: sg.Tensor
    losses: list[float]
    train_accuracy: float
    test_accuracy: float


def accuracy(W: sg.Tensor, b: sg.Tensor, x: sg.Tensor, y: numpy.ndarray) -> float:
    with sg.no_grad():
        pred = (x @ W + b).data.argmax(axis=1)
    return float((sg.backend.to_device(pred, "cpu") == y).mean())


def fit(x_train: numpy.ndarray, y_train: numpy.ndarray, x_test: numpy.ndarray,
        y_test: numpy.ndarray, n_classes: int = 10, epochs: int = 30, lr: float = 0.5,
        batch_size: int = 100, weight_decay: float = 1e-4, device: str = "cpu",
        seed: int = 0, log=None) -> Result:
    """Minibatch gradient descent on the cross-entropy, with L2 weight decay."""
    sg.manual_seed(seed)
    d = x_train.shape[1]
    W = sg.zeros(d, n_classes, device=device, requires_grad=True)
    b = sg.zeros(n_classes, device=device, requires_grad=True)
    xtr = sg.tensor(x_train, device=device)
    xte = sg.tensor(x_test, device=device)
    rng = numpy.random.default_rng(seed)
    losses = []
    n = len(x_train)
    for epoch in range(epochs):
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb, yb = xtr[idx], y_train[idx]
            loss = F.cross_entropy(xb @ W + b, yb) + weight_decay * 0.5 * (W * W).sum()
            W.grad = b.grad = None
            loss.backward()
            with sg.no_grad():  # plain gradient descent: theta <- theta - lr * dL/dtheta
                W.data -= lr * W.grad.data
                b.data -= lr * b.grad.data
            total += loss.item() * len(idx)
        losses.append(total / n)
        if log is not None:
            log(f"epoch {epoch + 1:3d}/{epochs}  loss {losses[-1]:.4f}")
    return Result(W, b, losses, accuracy(W, b, xtr, y_train), accuracy(W, b, xte, y_test))
