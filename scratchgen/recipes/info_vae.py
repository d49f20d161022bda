"""InfoVAE / MMD-VAE (Zhao, Song, Ermon 2019): reconstruction + lambda * MMD(q(z), p(z)).

    scratchgen train info-vae                         # MMD-VAE, IMQ kernel, embedded digits
    scratchgen train info-vae --kernel rbf            # the Gaussian kernel instead
    scratchgen train info-vae --alpha 0 --lambda 1000 # the general form: KL weight 1 - alpha
    scratchgen train info-vae --alpha 0 --lambda 1    # = the plain VAE, for comparison
    scratchgen train info-vae --data mnist --data-dir DIR --epochs 10 \\
        --out runs/mmd-vae-mnist                        # on MNIST

The MMD-VAE does not charge for the information the code carries about x (alpha = 1: no
per-image KL); it only asks the codes of all the data together, the aggregate posterior
q(z) = E_x q(z|x), to look like the prior N(0, I) -- measured by the maximum mean discrepancy
between a batch of codes and as many prior draws. So codes stay informative (sharper
reconstructions than a VAE of the same size) while prior samples still land where the decoder
was trained.

Measured on MNIST (the fifth command: alpha = 1, lambda = 1000, IMQ, z = 20, seed 0, 10
epochs): test reconstruction 78.57 nats per image (the VAE of scratchgen/recipes/vae_mnist.py: 80.08),
KL 95.26 (unpenalized, so -ELBO 173.83 is not what this model optimizes), MMD^2 between 2000
test codes and 2000 prior draws 0.0037 (the VAE's: 0.0067), 20 of 20 units active.

Printed and in ``summary.json``: per epoch the test reconstruction, KL and MMD terms; at the
end, MMD^2 between 2000 test codes and 2000 prior draws (how well q(z) matches p(z): 0 when
it does, up to the estimator's noise, a standard deviation of about 0.0001 for 2000 + 2000
draws in 20 dimensions) and the number of active units.
Pictures in ``--out``: ``samples.png``, ``reconstructions.png`` (pairs), ``traversal.png``,
``latent.png`` (with ``--z-dim 2``: the test codes coloured by class over prior draws), beside
``config.json`` and the Trainer's ``metrics.jsonl`` / ``checkpoint.npz`` (``--resume``
continues the run). ``scratchgen sample RUN`` draws new images from a run (``sample``).
"""
from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any

import numpy as np

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import load_image_arrays
from scratchgen.losses.mmd import mmd_unbiased
from scratchgen.models import vae_tools
from scratchgen.models.info_vae import InfoVAE
from scratchgen.train import given_options, save_interpolation_strip, scatter_2d
from scratchgen.train.options import finite_float

from scratchgen.recipes.beta_vae import (
    evaluate_run, fit, prepare, sample_run, save_samples_and_pairs, vae_parser,
)

__all__ = ["main", "parser", "build_model", "load_images", "aggregate_mmd", "sample", "evaluate"]


load_images = load_image_arrays  # (train x, train y, test x, test y) in [0, 1]


def aggregate_mmd(model: Any, x: np.ndarray, kernel: str, seed: int) -> float:
    """MMD_u^2 between samples of q(z) (one z ~ q(z|x) per image of x) and as many of N(0, I)."""
    sg.manual_seed(seed)
    with vae_tools.evaluating(model):
        t = model.elbo_terms(vae_tools.as_input(model, x))
        z = t["z"].to("float64")
        zp = sg.randn(z.shape, dtype="float64", device=z.device)
        return float(mmd_unbiased(z, zp, kernel).item())


def parser() -> argparse.ArgumentParser:
    """This script's command line."""
    p = vae_parser(__doc__, "runs/info-vae", z_dim=20)
    p.add_argument("--alpha", type=finite_float, default=1.0, help="KL weight is 1 - alpha")
    p.add_argument("--lambda", dest="lambda_", type=finite_float, default=None,
                   help="MMD weight is alpha + lambda - 1 (default 1000, or 10 for z = 2: see "
                        "models/info_vae.py on choosing it)")
    p.add_argument("--kernel", choices=["imq", "rbf"], default="imq")
    return p


def build_model(args: argparse.Namespace, shape: tuple[int, ...]) -> tuple[InfoVAE, optim.Adam]:
    """The InfoVAE that ``args`` (this script's options) asks for, for images of ``shape``
    (C, H, W), on ``args.device``, and its optimizer. An unset ``args.lambda_`` is filled in
    with its default (10 for z_dim <= 2, else 1000)."""
    if args.lambda_ is None:
        args.lambda_ = 10.0 if args.z_dim <= 2 else 1000.0
    model = InfoVAE(shape, z_dim=args.z_dim, alpha=args.alpha, lambda_=args.lambda_,
                    kernel=args.kernel, arch=args.arch).to(args.device)
    return model, optim.Adam(model.parameters(), lr=args.lr)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser()
    args = p.parse_args(argv)
    epochs, out, (xtr, ytr, xte, yte) = prepare(args, "info-vae", given_options(p, argv))
    shape = tuple(xtr.shape[1:])
    model, opt = build_model(args, shape)
    print(f"InfoVAE (alpha = {args.alpha}, lambda = {args.lambda_}: KL weight "
          f"{model.kl_weight:g}, MMD weight {model.mmd_weight:g}, {args.kernel} kernel), "
          f"{args.arch}, z = {args.z_dim}, on {args.data} ({len(xtr)} images), "
          f"device {args.device}")

    def epoch_end(test: dict[str, float]) -> tuple[dict[str, Any], dict[str, float]]:
        return {}, {"test_recon": test["recon"], "test_kl": test["kl"], "test_mmd": test["mmd"]}

    history = fit(model, opt, args, xtr, xte, out, epochs, epoch_end)

    scale = max(1, 56 // shape[1])
    n = min(2000, len(xte))
    mmd = aggregate_mmd(model, xte[:n], args.kernel, args.seed + 3)
    activity = vae_tools.unit_activity(model, xte[:n])
    save_samples_and_pairs(model, xte, out, args.seed + 1, scale)
    order = [int(i) for i in np.argsort(-activity)[:min(10, args.z_dim)]]
    grid = vae_tools.latent_traversal(model, dims=order, steps=11)
    save_interpolation_strip(
        grid, out / "traversal.png", value_range=(0.0, 1.0), scale=scale,
        row_labels=[f"z{i}" for i in order],
        col_labels=[f"{v:g}" for v in np.linspace(-3.0, 3.0, 11)],
        caption=f"rows: the {len(order)} most active latent units (largest variance of E[z|x] "
                "over test images), each swept from -3 to 3 (column headers) with the others "
                "at 0, the prior mean")
    if args.z_dim == 2:
        z = vae_tools.latent_code(model, xte[:n]).numpy()
        prior = np.random.default_rng(args.seed).standard_normal((n, 2))
        points = np.concatenate([prior, z])
        labels = np.concatenate([np.full(n, 10), yte[:n]])
        scatter_2d(points, labels, out / "latent.png",
                   class_names=[str(c) for c in range(10)] + ["prior draw"],
                   title="test codes E[z|x] by class, over draws of p(z)")
    summary = {"command": "scratchgen train info-vae " + " ".join(argv or []),
               "model": repr(model).split("\n")[0], "epochs": history,
               "aggregate_mmd_test": mmd, "active_units": int((activity > 0.01).sum()),
               "unit_activity": [round(float(v), 4) for v in activity]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if history:
        h = history[-1]
        print(f"test: recon {h['recon']:.2f}, KL {h['kl']:.2f}, -ELBO {h['neg_elbo']:.2f} nats per "
              f"image; MMD^2(q(z), p(z)) on {n} test codes {mmd:.5f}; "
              f"{summary['active_units']} active units of {args.z_dim}")
    print(f"wrote {out}/")
    return summary


def sample(run: str | pathlib.Path, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """n images of an ``info-vae`` run: z ~ N(0, I), decoded to E[x | z]; float32
    (n, 1, H, W) in [0, 1] (``sample_run``)."""
    return sample_run(run, "info-vae", lambda opts, shape: build_model(opts, shape)[0],
                      n, label, seed, device)


def evaluate(run: str | pathlib.Path, device: str = "cpu", k: int = 64, images: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """The test log-likelihood bounds of an ``info-vae`` run's newest checkpoint, in nats per
    image (higher is better): ``"iwae"``, the importance-weighted bound L_k <= log p(x) (Burda
    et al. 2016, eq. 8), and ``"elbo"``, the plain ELBO from the same samples
    (``beta_vae.evaluate_run``; the MMD-VAE does not optimise the ELBO, but its decoder and
    encoder still define both).

    Args:
        k: importance samples per image (the bound tightens as k grows)
        images: test images to average over (the first ones)
        seed: seed of the importance samples
    """
    return evaluate_run(run, "info-vae", lambda opts, shape: build_model(opts, shape)[0],
                        device, k, images, seed)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
