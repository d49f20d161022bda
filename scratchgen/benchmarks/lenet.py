"""LeNet on MNIST: the whole toolbox (convolutions, layers, Adam, DataLoader, Trainer) against
a known target, >= 99.0% test accuracy in a few epochs; and the classifier whose features
later measure generated digits (the Frechet distance of ``scratchgen.metrics``).

    scratchgen bench lenet --data-dir ../shared/data/mnist --epochs 3
    python -m scratchgen.benchmarks.lenet --data-dir ../shared/data/mnist --epochs 3

The network (LeCun et al., 1998, with ReLU, max pooling and dropout as is usual today):

    x (1x28x28, in [0, 1]) -> normalize -> conv 5x5, 32 -> ReLU -> maxpool 2   (32x12x12)
      -> conv 5x5, 64 -> ReLU -> maxpool 2                                    (64x4x4 = 1024)
      -> linear 1024 -> 256 -> ReLU   = features(x)                           (256)
      -> dropout 0.5 -> linear 256 -> 10                                      (logits)

trained with cross-entropy and Adam (lr 1e-3, halved after every epoch). The command prints
the test accuracy and the seconds of training per epoch, and writes the classifier to
``runs/lenet/classifier.npz``; ``load_mnist_classifier(path)`` gives it back.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from typing import Any

import numpy

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import nn, optim
from scratchgen.serialization import load, save

__all__ = ["LeNet", "load_mnist_classifier", "save_mnist_classifier", "evaluate", "train", "main",
           "MNIST_MEAN", "MNIST_STD"]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the training images' pixels, scaled to [0, 1]
_FORMAT = "scratchgen-mnist-classifier"


class LeNet(nn.Module):
    """A LeNet-5-style classifier of 28x28 grey images given in [0, 1].

    ``forward(x)`` gives the 10 class logits; ``features(x)`` the 256-dimensional penultimate
    activations, the space in which generated and real digits are compared. The input is
    standardised inside (``(x - 0.1307) / 0.3081``), so callers pass plain [0, 1] pixels.
    """

    def __init__(self, channels: tuple[int, int] = (32, 64), hidden: int = 256,
                 num_classes: int = 10, dropout: float = 0.5) -> None:
        super().__init__()
        c1, c2 = channels
        self.config = {"channels": [c1, c2], "hidden": hidden, "num_classes": num_classes,
                       "dropout": dropout}
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(c2 * 4 * 4, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def features(self, x: Any) -> sg.Tensor:
        """Penultimate activations relu(fc1(...)) of images (N, 1, 28, 28) in [0, 1]."""
        if not isinstance(x, sg.Tensor):
            x = sg.tensor(x, device=self.conv1.weight.device, dtype=self.conv1.weight.dtype)
        h = (x - MNIST_MEAN) * (1.0 / MNIST_STD)
        h = self.pool(F.relu(self.conv1(h)))
        h = self.pool(F.relu(self.conv2(h)))
        return F.relu(self.fc1(F.reshape(h, (h.shape[0], -1))))

    def forward(self, x: Any) -> sg.Tensor:
        return self.fc2(self.drop(self.features(x)))


def save_mnist_classifier(model: LeNet, path: str | os.PathLike, **info: Any) -> pathlib.Path:
    """Write the classifier's configuration and weights (and ``info``, e.g. its accuracy)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save({"format": _FORMAT, "config": model.config, "state_dict": model.state_dict(),
          "info": info}, path)
    return path


def load_mnist_classifier(path: str | os.PathLike, device: Any = "cpu") -> LeNet:
    """The classifier saved by ``scratchgen bench lenet`` (``runs/lenet/classifier.npz``), in
    evaluation mode with frozen parameters; ``model.info`` holds what was saved with it
    (test accuracy, epochs...). ``model.features(x)`` gives the 256-d features."""
    state = load(path, device)
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ValueError(f"{path} is not an MNIST classifier saved by save_mnist_classifier")
    cfg = state["config"]
    model = LeNet(tuple(cfg["channels"]), cfg["hidden"], cfg["num_classes"], cfg["dropout"])
    model.load_state_dict(state["state_dict"])
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    model.info = dict(state.get("info", {}))
    return model


def evaluate(model: LeNet, images: numpy.ndarray, labels: numpy.ndarray, batch_size: int = 1000,
             device: Any = "cpu") -> float:
    """Accuracy of ``model`` (in eval mode, without gradients) on uint8 or [0, 1] images."""
    was_training = model.training
    model.eval()
    correct = 0
    scale = 1.0 / 255.0 if images.dtype == numpy.uint8 else 1.0
    with sg.no_grad():
        for i in range(0, len(images), batch_size):
            x = sg.tensor(images[i:i + batch_size].astype(numpy.float32) * numpy.float32(scale),
                          device=device)
            pred = model(x).numpy().argmax(axis=1)
            correct += int((pred == labels[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(images), 1)


def train(data_dir: str | os.PathLike | None = None, out: str | os.PathLike = "runs/lenet",
          epochs: int = 3, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
          device: str = "cpu", limit: int | None = None, resume: bool = False,
          progress: bool = True, log_every: int = 50, stream: Any = None,
          lr_decay: float = 0.5) -> dict[str, Any]:
    """Train LeNet on MNIST with the ``Trainer``; return accuracy and timings.

    ``data_dir``: a folder with the four MNIST files (else the download cache). ``limit``
    trains on the first ``limit`` training images and tests on the first ``limit // 6`` test
    images (a quick smoke run). The classifier goes to ``out/classifier.npz`` and the numbers
    to ``out/result.json``.
    """
    from scratchgen.data import MNIST, DataLoader, Subset, ToFloat
    from scratchgen.train import Trainer

    stream = stream if stream is not None else sys.stderr
    sg.manual_seed(seed)
    kw = {"data_dir": data_dir} if data_dir is not None else {}
    train_set, test_set = MNIST(train=True, **kw), MNIST(train=False, **kw)
    test_images, test_labels = test_set.images, test_set.labels
    if limit is not None:
        train_set = Subset(train_set, numpy.arange(min(limit, len(train_set))))
        n_test = max(limit // 6, 1)
        test_images, test_labels = test_images[:n_test], test_labels[:n_test]
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, seed=seed,
                        transform=ToFloat(), device=device)

    model = LeNet().to(device)
    opt = optim.Adam(model.parameters(), lr=lr)
    sched = optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay)  # lr * decay^epoch

    def train_step(batch: Any) -> dict[str, float]:
        x, y = batch
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        acc = float((logits.numpy().argmax(axis=1) == y.numpy()).mean())
        return {"loss": loss.item(), "acc": acc}

    epoch_seconds: list[float] = []
    clock = {"start": time.perf_counter()}

    def on_epoch_end(trainer: Trainer) -> dict[str, float]:
        epoch_seconds.append(time.perf_counter() - clock["start"])
        accuracy = evaluate(model, test_images, test_labels, device=device)
        clock["start"] = time.perf_counter()  # the next epoch's clock starts after the test
        return {"test_accuracy": accuracy, "epoch_seconds": epoch_seconds[-1]}

    trainer = Trainer(train_step, loader, out, epochs=epochs, modules={"model": model},
                      optimizers={"adam": opt}, schedulers={"lr": sched},
                      scheduler_interval="epoch", log_every=log_every,
                      checkpoint_every=max(len(loader) // 2, 1), on_epoch_end=on_epoch_end,
                      resume=resume, progress=progress, stream=stream)
    clock["start"] = time.perf_counter()
    result = trainer.fit()
    evals = [rec["eval"] for rec in result.history if "eval" in rec]
    accuracy = evals[-1]["test_accuracy"] if evals else evaluate(model, test_images, test_labels,
                                                                 device=device)
    summary = {
        "test_accuracy": accuracy, "epochs": trainer.epoch, "steps": trainer.step,
        "epoch_seconds": epoch_seconds, "train_images": len(train_set),
        "test_images": int(len(test_images)), "batch_size": batch_size, "device": device,
        "per_epoch_test_accuracy": [e["test_accuracy"] for e in evals],
    }
    path = save_mnist_classifier(model, pathlib.Path(out) / "classifier.npz",
                                 test_accuracy=accuracy, epochs=trainer.epoch,
                                 train_images=len(train_set))
    summary["classifier"] = str(path)
    (pathlib.Path(out) / "result.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scratchgen bench lenet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None,
                        help="folder with the four MNIST files (default: the download cache)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-decay", type=float, default=0.5,
                        help="learning rate factor per epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/lenet")
    parser.add_argument("--limit", type=int, default=None,
                        help="train on this many images only (a quick check)")
    parser.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    args = parser.parse_args(argv)
    try:
        s = train(args.data_dir, args.out, args.epochs, args.batch_size, args.lr, args.seed,
                  args.device, args.limit, args.resume, lr_decay=args.lr_decay)
    except KeyboardInterrupt:
        print("interrupted: run the same command with --resume to continue", file=sys.stderr)
        return 130
    times = s["epoch_seconds"]
    print(f"LeNet on MNIST ({s['train_images']} training images, batch {s['batch_size']}, "
          f"{s['device']}): test accuracy {100 * s['test_accuracy']:.2f}% after {s['epochs']} "
          f"epoch(s)")
    if times:
        print("seconds per epoch (training only): " + ", ".join(f"{t:.1f}" for t in times)
              + f"  (mean {sum(times) / len(times):.1f})")
    print(f"classifier saved to {s['classifier']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
