"""Train the two classifiers shipped in scratchgen/metrics/weights/ and write their weights.

    python scripts/train_classifiers.py --data-dir ../shared/data/mnist            # both
    python scripts/train_classifiers.py --only digits                              # no MNIST needed

- mnist_lenet.npz: LeNet (32, 64, 256) on the 60,000 MNIST training images, 3 epochs of Adam
  (lr 1e-3, halved every epoch, batch 128). Written only if the 10,000 test images reach 99%.
- digits_lenet.npz: LeNet (16, 32, 128) on the 1,500 training images of the embedded digits
  resampled to 28x28, each batch shifted by up to 2 pixels (a translation the 8x8 scans do not
  vary enough in), 120 epochs of Adam with the lr decayed from 1e-3 to 1e-5, batch 64.

Both are trained in float32 with dropout 0.5 and a fixed seed; the test accuracy is printed and
stored in the file's ``info``.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import optim
from scratchgen.data import MNIST, Digits, PadAndRandomCrop
from scratchgen.metrics.classifier import PRETRAINED, LeNet, save_classifier
from scratchgen.metrics.features import class_accuracy

WEIGHTS = pathlib.Path(__file__).resolve().parents[1] / "scratchgen" / "metrics" / "weights"
MNIST_MIN_ACCURACY = 0.99


def fit(model: LeNet, images: np.ndarray, labels: np.ndarray, epochs: int, batch_size: int,
        lr: float, final_lr: float, seed: int, shift: int, device: str) -> None:
    """Cross-entropy with Adam; the lr falls geometrically from ``lr`` to ``final_lr``."""
    rng = np.random.default_rng(seed)
    crop = PadAndRandomCrop(shift, seed=seed) if shift else None
    opt = optim.Adam(model.parameters(), lr=lr)
    gamma = (final_lr / lr) ** (1.0 / max(epochs - 1, 1))
    sched = optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    model.train()
    for epoch in range(epochs):
        start, total, seen = time.perf_counter(), 0.0, 0
        order = rng.permutation(len(images))
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x = images[idx] if crop is None else crop(images[idx])
            logits = model(sg.tensor(x, device=device))
            loss = F.cross_entropy(logits, sg.tensor(labels[idx], device=device, dtype="int64"))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, seen = total + loss.item() * len(idx), seen + len(idx)
        sched.step()
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / seen:.4f} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)


def train_mnist(data_dir: str, epochs: int, seed: int, device: str) -> tuple[LeNet, dict]:
    train, test = MNIST(train=True, data_dir=data_dir), MNIST(train=False, data_dir=data_dir)
    x = train.images.astype(np.float32) / np.float32(255.0)
    sg.manual_seed(seed)
    model = LeNet((32, 64), 256).to(device)
    fit(model, x, train.labels, epochs, 128, 1e-3, 1e-3 * 0.5 ** (epochs - 1), seed, 0, device)
    acc = class_accuracy(test.images, test.labels, model)
    return model, {"dataset": "mnist", "test_accuracy": acc, "test_images": len(test),
                   "train_images": len(train), "epochs": epochs, "seed": seed}


def train_digits(epochs: int, seed: int, device: str) -> tuple[LeNet, dict]:
    train, test = Digits(train=True, size=28), Digits(train=False, size=28)
    sg.manual_seed(seed)
    model = LeNet((16, 32), 128).to(device)
    fit(model, train.images, train.labels, epochs, 64, 1e-3, 1e-5, seed, 2, device)
    acc = class_accuracy(test.images, test.labels, model)
    return model, {"dataset": "digits", "test_accuracy": acc, "test_images": len(test),
                   "train_images": len(train), "epochs": epochs, "seed": seed,
                   "image_size": 28}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="folder with the four MNIST IDX files")
    p.add_argument("--only", choices=["mnist", "digits"], default=None)
    p.add_argument("--out-dir", default=str(WEIGHTS))
    p.add_argument("--mnist-epochs", type=int, default=3)
    p.add_argument("--digits-epochs", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out_dir)
    status = 0
    if args.only in (None, "digits"):
        print("digits LeNet:", flush=True)
        model, info = train_digits(args.digits_epochs, args.seed, args.device)
        print(f"digits test accuracy {100 * info['test_accuracy']:.2f}% "
              f"({info['test_images']} images)")
        path = save_classifier(model.to("cpu"), out / PRETRAINED["digits"], **info)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    if args.only in (None, "mnist"):
        if args.data_dir is None:
            p.error("--data-dir is needed to train the MNIST classifier (or use --only digits)")
        print("MNIST LeNet:", flush=True)
        model, info = train_mnist(args.data_dir, args.mnist_epochs, args.seed, args.device)
        print(f"MNIST test accuracy {100 * info['test_accuracy']:.2f}% "
              f"({info['test_images']} images)")
        if info["test_accuracy"] < MNIST_MIN_ACCURACY:
            print(f"not written: below {100 * MNIST_MIN_ACCURACY:.0f}%", file=sys.stderr)
            status = 1
        else:
            path = save_classifier(model.to("cpu"), out / PRETRAINED["mnist"], **info)
            print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return status


if __name__ == "__main__":
    sys.exit(main())
