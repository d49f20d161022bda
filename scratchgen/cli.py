"""Command line: ``scratchgen train MODEL``, ``scratchgen bench NAME`` (also ``python -m scratchgen``).

    scratchgen train softmax-regression --out runs/softmax   # the engine demo on embedded digits
    scratchgen bench engine                                  # autograd overhead vs raw NumPy
    scratchgen bench kernels                                 # convolution/attention GFLOP/s
    scratchgen bench lenet --data-dir DIR --epochs 3         # LeNet on MNIST: accuracy, s/epoch
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

__all__ = ["main"]


def _train_softmax_regression(args: argparse.Namespace) -> int:
    from scratchgen.data import Digits
    from scratchgen.models import softmax_regression
    from scratchgen.train.images import save_image_grid

    out = pathlib.Path(args.out or "runs/softmax-regression")
    out.mkdir(parents=True, exist_ok=True)
    train, test = Digits(train=True), Digits(train=False)
    xtr = train.images.reshape(len(train), -1)
    xte = test.images.reshape(len(test), -1)
    print(f"softmax regression on the embedded 8x8 digits: {len(train)} train, {len(test)} test, "
          f"device {args.device}")
    start = time.perf_counter()
    result = softmax_regression.fit(xtr, train.labels, xte, test.labels,
                                    epochs=args.epochs or 30, device=args.device,
                                    seed=args.seed, log=print)
    seconds = time.perf_counter() - start
    print(f"train accuracy {result.train_accuracy:.4f}  test accuracy {result.test_accuracy:.4f}  "
          f"({seconds:.1f} s)")
    # each class's weight vector, seen as an 8x8 image: the template the model matches against
    templates = result.W.numpy().T.reshape(10, 1, 8, 8)
    p1 = save_image_grid(templates, out / "class_templates.png", nrow=10, scale=8)
    p2 = save_image_grid(test.images[:40], out / "test_digits.png", nrow=10, scale=4,
                         value_range=(0.0, 1.0))
    metrics = {"train_accuracy": result.train_accuracy, "test_accuracy": result.test_accuracy,
               "losses": result.losses, "seconds": seconds}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"wrote {p1}, {p2} and {out / 'metrics.json'}")
    return 0


def _train_lenet(args: argparse.Namespace) -> int:
    from scratchgen.benchmarks import lenet

    # MNIST comes from $SCRATCHGEN_DATA/mnist (e.g. SCRATCHGEN_DATA=../shared/data) or a download
    return lenet.main(["--out", args.out or "runs/lenet", "--device", args.device,
                       "--epochs", str(args.epochs or 3), "--seed", str(args.seed)])


TRAINERS = {"softmax-regression": _train_softmax_regression, "lenet": _train_lenet}


def _bench(args: argparse.Namespace, rest: list[str]) -> int:
    if args.name == "engine":
        from scratchgen.benchmarks import engine

        engine.main(rest)
    elif args.name == "kernels":
        from kernels import bench

        bench.main(rest)
    elif args.name == "lenet":
        from scratchgen.benchmarks import lenet

        return lenet.main(rest)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scratchgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train a model and write its pictures")
    tr.add_argument("model", choices=sorted(TRAINERS))
    tr.add_argument("--out", help="output folder (default runs/MODEL)")
    tr.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    tr.add_argument("--epochs", type=int, default=None)
    tr.add_argument("--seed", type=int, default=0)
    be = sub.add_parser("bench", help="run a benchmark (extra arguments go to it)")
    be.add_argument("name", choices=["engine", "kernels", "lenet"])
    args, rest = parser.parse_known_args(argv)
    if args.command == "train":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return TRAINERS[args.model](args)
    return _bench(args, rest)


if __name__ == "__main__":
    sys.exit(main())
