"""LeNet on MNIST: the whole toolbox (convolutions, layers, Adam, DataLoader, Trainer) against
a known target, >= 99.0% test accuracy in a few epochs; and the classifier whose features
later measure generated digits (the Frechet distance of ``scratchgen.metrics``).

    scratchgen bench lenet --data-dir DIR --epochs 3
    python -m scratchgen.benchmarks.lenet --data-dir DIR --epochs 3

The network (LeCun et al., 1998, with ReLU, max pooling and dropout as is usual today):

    x (1x28x28, in [0, 1]) -> normalize -> conv 5x5, 32 -> ReLU -> maxpool 2   (32x12x12)
      -> conv 5x5, 64 -> ReLU -> maxpool 2                                    (64x4x4 = 1024)
      -> linear 1024 -> 256 -> ReLU   = features(x)                           (256)
      -> dropout 0.5 -> linear 256 -> 10                                      (logits)

trained with cross-entropy and Adam (lr 1e-3, halved after every epoch). The command prints
the test accuracy and the seconds of training per epoch, and writes the classifier to
``runs/lenet/classifier.npz``; ``load_mnist_classifier(path)`` gives it back. The network and
its save / load live in ``scratchgen.metrics.classifier`` (with the copies shipped in the package)
and are re-exported here.
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
from scratchgen import optim
from scratchgen.kernels import memory
from scratchgen.metrics.classifier import (MNIST_MEAN, MNIST_STD, LeNet, load_mnist_classifier,
                                           save_mnist_classifier)

__all__ = ["LeNet", "load_mnist_classifier", "save_mnist_classifier", "evaluate", "train", "main",
           "MNIST_MEAN", "MNIST_STD"]


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
    memory.configure_malloc()  # reuse freed temporaries, as training does
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
