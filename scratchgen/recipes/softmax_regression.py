"""Softmax regression on the embedded 8x8 digits, written with raw ops (the engine demo).

    scratchgen train softmax-regression [--epochs 30] [--device cpu] [--out runs/softmax-regression]

Prints the loss per epoch and the accuracies, and writes ``class_templates.png`` (each class's
learned weights seen as an 8x8 image: the template the model matches against),
``test_digits.png``, ``metrics.json`` and ``config.json`` to a new folder (it trains in a
fraction of a second, so there is no checkpoint and no ``--resume``).
"""
from __future__ import annotations

import argparse
import json
import time

from scratchgen.data import Digits
from scratchgen.models import softmax_regression
from scratchgen.train import prepare_run_folder
from scratchgen.train.images import save_image_grid
from scratchgen.train.options import (
    ArgumentParser, device, nonnegative_int, positive_float, positive_int,
)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> dict:
    p = ArgumentParser(prog="scratchgen train softmax-regression", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=positive_int, default=30)
    p.add_argument("--lr", type=positive_float, default=0.5)
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs/softmax-regression", help="the run's folder (a new one)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    args = p.parse_args(argv)

    out = prepare_run_folder(args.out, "softmax-regression", args, resume=False)
    train, test = Digits(train=True), Digits(train=False)
    print(f"softmax regression on the embedded 8x8 digits: {len(train)} train, {len(test)} test, "
          f"device {args.device}")
    start = time.perf_counter()
    result = softmax_regression.fit(
        train.images.reshape(len(train), -1), train.labels,
        test.images.reshape(len(test), -1), test.labels,
        epochs=args.epochs, lr=args.lr, device=args.device, seed=args.seed, log=print)
    seconds = time.perf_counter() - start
    print(f"train accuracy {result.train_accuracy:.4f}  test accuracy {result.test_accuracy:.4f}  "
          f"({seconds:.1f} s)")
    templates = result.W.numpy().T.reshape(10, 1, 8, 8)
    p1 = save_image_grid(templates, out / "class_templates.png", nrow=10, scale=8,
                         col_labels=[str(c) for c in range(10)],
                         caption="the weights of each class (column header: the digit), as "
                                 "8x8 pictures: bright pixels vote for the class, dark ones "
                                 "against it")
    p2 = save_image_grid(test.images[:40], out / "test_digits.png", nrow=10, scale=4,
                         value_range=(0.0, 1.0),
                         caption="the first 40 test digits, row by row: "
                                 + " ".join(str(int(c)) for c in test.labels[:40]))
    summary = {"train_accuracy": result.train_accuracy, "test_accuracy": result.test_accuracy,
               "losses": result.losses, "seconds": seconds}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {p1}, {p2} and {out / 'metrics.json'}")
    return summary


if __name__ == "__main__":
    main()
