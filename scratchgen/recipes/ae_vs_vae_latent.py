"""The latent spaces of a plain autoencoder and of a VAE, side by side (2-D codes).

    scratchgen train ae-vs-vae                 # embedded digits at 28x28, no download
    scratchgen train ae-vs-vae --data mnist --data-dir DIR \\
        --epochs 10 --out runs/ae-vs-vae                # the MNIST version

Both models have the same networks (FC 784-400-2-400-784, Bernoulli decoder) and are trained
the same way (Adam 1e-3, batch 128); the VAE adds the noise z ~ q(z|x) and the KL term.

What to look for:

* ``latent_ae.png`` / ``latent_vae.png``: the test images' codes coloured by digit. The AE's
  clusters sit anywhere, at any scale, stretched along thin curves with empty space between
  them; the VAE's fill a round region around 0 of about the prior's size, N(0, I).
* ``manifold_ae.png`` / ``manifold_vae.png``: decodes of an evenly spaced 15x15 grid over each
  model's code region (the VAE: [-3, 3]^2, the AE: where 98% of its codes lie). The VAE's grid
  morphs smoothly from digit to digit everywhere; the AE's holds smears where no code fell.
* ``samples_ae.png`` / ``samples_vae.png``: decodes of z ~ N(0, I). For the VAE these are
  samples of the model; for the AE the same recipe is meaningless -- nothing told its codes
  to follow N(0, I) -- so it is not a generative model.

The scatter plots are drawn by ``train.plots.scatter_2d``. ``summary.json`` records both
models' test reconstruction loss (the VAE's also its -ELBO) and their code statistics. Each
model's Trainer folder (``ae/``, ``vae/``: log and checkpoint) is inside ``--out``, beside
``config.json``; ``--resume`` continues both.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time
from typing import Any

import numpy as np

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.models import vae_tools
from scratchgen.models.autoencoder import Autoencoder
from scratchgen.models.steps import TrainStep
from scratchgen.models.vae import VAE
from scratchgen.train import (
    Trainer, given_options, prepare_run_folder, save_image_grid, scatter_2d,
)
from scratchgen.train.options import (
    ArgumentParser, add_run_options, data_errors, device, nonnegative_int, positive_float,
    positive_int,
)

__all__ = ["main", "load_images", "train"]


load_images = load_image_arrays  # (train x, train y, test x, test y) in [0, 1]


def train(model: Any, xtr: np.ndarray, args: argparse.Namespace, out: pathlib.Path,
          epochs: int) -> float:
    """Train with the Trainer (checkpoints and logs in ``out``); returns seconds."""
    opt = optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(ArrayDataset(xtr), batch_size=args.batch_size, shuffle=True,
                        seed=args.seed, device=args.device)

    start = time.perf_counter()
    Trainer(TrainStep(model, opt), loader, out, epochs=epochs, modules={"model": model},
            optimizers={"adam": opt}, log_every=100, checkpoint_seconds=args.checkpoint_every,
            allow_nonfinite=args.allow_nonfinite, resume=args.resume, seed=args.seed).fit()
    return time.perf_counter() - start


def _rounded(v: np.ndarray, digits: int) -> list[float]:
    return [round(float(a), digits) for a in v]


def codes_of(model: Any, x: np.ndarray) -> np.ndarray:
    return np.concatenate([vae_tools.latent_code(model, x[i:i + 1000]).numpy()
                           for i in range(0, len(x), 1000)])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=["digits", "mnist"], default="digits")
    p.add_argument("--data-dir", default=None, help="folder with the four MNIST files")
    p.add_argument("--size", type=positive_int, default=28,
                   help="side of the digits images (digits only)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="default 10 (MNIST) or 100 (digits)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs/ae-vs-vae", help="the run's folder (a new one)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_run_options(p)
    args = p.parse_args(argv)
    out = prepare_run_folder(args.out, "ae-vs-vae", args, args.resume,
                             given=given_options(p, argv))
    epochs = args.epochs if args.epochs is not None else (10 if args.data == "mnist" else 100)

    with data_errors(args.data, args.data_dir):
        xtr, ytr, xte, yte = load_images(args.data, args.data_dir, args.size)
    shape = tuple(xtr.shape[1:])
    scale = max(1, 56 // shape[1])
    summary: dict[str, Any] = {"command": "scratchgen train ae-vs-vae "
                               + " ".join(argv or []), "models": {}}
    models: dict[str, Any] = {}
    for name in ("ae", "vae"):
        sg.manual_seed(args.seed)
        cls = Autoencoder if name == "ae" else VAE
        model = cls(shape, z_dim=2).to(args.device)
        print(f"training the {name.upper()} ({epochs} epochs on {args.data})")
        seconds = train(model, xtr, args, out / name, epochs)
        model.eval()
        models[name] = model
        sg.manual_seed(args.seed + 1)
        test = vae_tools.evaluate_loss(model, [xte[i:i + 500] for i in range(0, len(xte), 500)])
        z = codes_of(model, xte)
        summary["models"][name] = {
            "train_seconds": round(seconds, 1), "test": test,
            "code_mean": _rounded(z.mean(0), 3), "code_std": _rounded(z.std(0), 3),
            "code_range": [_rounded(z.min(0), 2), _rounded(z.max(0), 2)]}
        # the latent space, coloured by class
        label = "AE codes z = f(x)" if name == "ae" else "VAE posterior means E[z|x]"
        scatter_2d(z, yte, out / f"latent_{name}.png", class_names=[str(c) for c in range(10)],
                   title=f"{label}, {len(z)} test digits")
        # a grid over the region the codes occupy, decoded
        if name == "vae":
            lo, hi = np.array([-3.0, -3.0]), np.array([3.0, 3.0])
        else:
            lo, hi = np.percentile(z, 1, axis=0), np.percentile(z, 99, axis=0)
        gx, gy = np.linspace(lo[0], hi[0], 15), np.linspace(lo[1], hi[1], 15)
        grid = np.array([[u, v] for v in gy[::-1] for u in gx], dtype=np.float32)
        with sg.no_grad():
            imgs = model.decode(vae_tools.as_input(model, grid))
        what = "the middle 98% of the codes" if name == "ae" else "[-3, 3] x [-3, 3]"
        save_image_grid(imgs, out / f"manifold_{name}.png", nrow=15, value_range=(0.0, 1.0),
                        scale=scale, col_labels=[f"{u:.1f}" for u in gx],
                        row_labels=[f"{v:.1f}" for v in gy[::-1]],
                        caption=f"{name.upper()} decoder over a 15 x 15 grid of {what}: z1 "
                                "left to right (column headers), z2 top to bottom (row labels)")
        # decodes of N(0, I) draws: samples for the VAE, not for the AE
        sg.manual_seed(args.seed + 2)
        zs = sg.randn((64, 2), device=args.device)
        with sg.no_grad():
            imgs = model.decode(zs)
        save_image_grid(imgs, out / f"samples_{name}.png", nrow=8, value_range=(0.0, 1.0),
                        scale=scale,
                        caption=f"64 draws z ~ N(0, I) through the {name.upper()} decoder"
                                + (" (the AE's codes do not follow N(0, I): these are not "
                                   "samples of a model)" if name == "ae" else ""))
        s = summary["models"][name]
        print(f"  {name.upper()}: test recon {test['recon']:.2f} nats/image"
              + (f", -ELBO {test['loss']:.2f}" if name == "vae" else "")
              + f"; codes mean {s['code_mean']}, std {s['code_std']}, "
              f"range {s['code_range'][0]} .. {s['code_range'][1]}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out}/ (latent_*.png, manifold_*.png, samples_*.png, summary.json)")
    return summary


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
