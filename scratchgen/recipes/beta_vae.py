"""beta-VAE (Higgins et al. 2017) and its capacity-annealed variant (Burgess et al. 2018).

    scratchgen train beta-vae                          # beta = 4 on the embedded digits
    scratchgen train beta-vae --variant capacity       # gamma |KL - C|, C: 0 -> 15 nats
    scratchgen train beta-vae --data mnist --data-dir DIR --epochs 10 \\
        --beta 4 --out runs/beta-vae-mnist               # on MNIST
    scratchgen train beta-vae --beta 1 ...             # the plain VAE, to compare with

Same networks as scratchgen/recipes/vae_mnist.py (``--arch fc`` 784-400-z or ``--arch conv``), z = 10.
With beta > 1 the KL budget is spent on fewer latent units, and the units that stay active
tend to each control one factor of the digits (width, slant, stroke thickness...): see the
traversal. The capacity variant opens the channel gradually: C grows linearly from 0 to
``--c-max`` nats over the first ``--capacity-fraction`` of training, and gamma (1000, as the
paper) keeps the KL close to C, so units switch on one after another (``kl_per_unit`` in
``summary.json``, per epoch).

Measured on MNIST (the third command, seed 0, 10 epochs, z = 10, beta = 4): test -ELBO
121.45 nats (reconstruction 112.15, KL 9.30; the beta = 1 VAE with z = 20 reaches 105.8 with a
KL of 25.7); KL per unit 1.43 1.29 1.08 1.06 0.99 0.99 0.62 0.60 0.47 0.37 nats.

Writes to ``--out`` (a new folder; ``--resume`` continues the run in it): ``config.json``, the
Trainer's ``metrics.jsonl`` / ``checkpoint.npz``, ``traversal.png`` (one row per latent unit,
most informative first, each swept over [-3, 3] from the prior mean; the row order is in
``summary.json``), ``samples.png``, ``reconstructions.png`` (pairs), and ``summary.json`` (per
epoch: test -ELBO, reconstruction, KL, KL per unit, seconds). ``scratchgen sample RUN`` draws
new images from a run (``sample``).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time
from typing import Any, Callable

import numpy as np

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, image_shape, load_image_arrays
from scratchgen.models import vae_tools
from scratchgen.models.beta_vae import BetaVAE, CapacityVAE
from scratchgen.models.steps import TrainStep
from scratchgen.train import (
    History, Trainer, given_options, isolated_rng, load_run_state, prepare_run_folder,
    read_run_config, save_image_grid, save_interpolation_strip,
)
from scratchgen.train.options import (
    ArgumentParser, add_run_options, data_errors, device, nonnegative_float, nonnegative_int,
    positive_float, positive_int, unit_interval,
)

__all__ = ["main", "parser", "build_model", "load_images", "vae_parser", "prepare", "fit",
           "save_samples_and_pairs", "sample_run", "sample", "evaluate_run", "evaluate"]


load_images = load_image_arrays  # (train x, train y, test x, test y) in [0, 1]


def vae_parser(doc: str, out: str, z_dim: int) -> argparse.ArgumentParser:
    """The options every VAE-variant example shares (data, size, epochs, batch, lr, arch, z,
    device, out, seed, resume, checkpoint-every, allow-nonfinite); the example adds its own."""
    p = ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=["digits", "mnist"], default="digits")
    p.add_argument("--data-dir", default=None, help="folder with the four MNIST files")
    p.add_argument("--size", type=positive_int, default=28,
                   help="side of the digits images (digits only)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="default 10 (MNIST) or 60 (digits)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--arch", choices=["fc", "conv"], default="fc")
    p.add_argument("--z-dim", type=positive_int, default=z_dim)
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default=out, help="the run's folder (a new one)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_run_options(p)
    return p


def prepare(args: argparse.Namespace, model: str, given: set[str] | None = None
            ) -> tuple[int, pathlib.Path, tuple[np.ndarray, ...]]:
    """Start (or, with ``--resume``, check and continue) the run of ``model`` in ``args.out``
    (``prepare_run_folder``; ``given``: the options set on the command line), then give the
    run's epochs (default 10 on MNIST, 60 on the digits), its folder and the images (train x,
    train y, test x, test y); seeds the generators first."""
    out = prepare_run_folder(args.out, model, args, args.resume, given=given)
    epochs = args.epochs if args.epochs is not None else (10 if args.data == "mnist" else 60)
    sg.manual_seed(args.seed)
    with data_errors(args.data, args.data_dir):
        return epochs, out, load_images(args.data, args.data_dir, args.size)


def fit(model: Any, opt: optim.Adam, args: argparse.Namespace, xtr: np.ndarray,
        xte: np.ndarray, out: pathlib.Path, epochs: int,
        epoch_end: Callable[[dict[str, float]], tuple[dict[str, Any], dict[str, float]]]
        ) -> list[dict[str, Any]]:
    """Train ``model`` (``TrainStep(model, opt)``) with the Trainer (checkpoints and ``--resume`` in
    ``out``). After each epoch the test loss terms (``vae_tools.evaluate_loss``) go to
    ``epoch_end``, which returns (more fields for the history row, the Trainer's log row).
    Returns the history: per epoch, its number, training seconds, test terms and those fields;
    it is checkpointed with the run, so a resumed run's history holds every epoch."""
    loader = DataLoader(ArrayDataset(xtr), batch_size=args.batch_size, shuffle=True,
                        seed=args.seed, device=args.device)
    test_batches = [xte[i:i + 500] for i in range(0, len(xte), 500)]
    history = History()
    clock = {"start": time.perf_counter()}

    def end_of_epoch(trainer: Trainer) -> dict[str, float]:
        seconds = time.perf_counter() - clock["start"]
        test = vae_tools.evaluate_loss(model, test_batches)
        extra, row = epoch_end(test)
        history.append({"epoch": trainer.epoch, "seconds": seconds, **test, **extra})
        clock["start"] = time.perf_counter()
        return row

    Trainer(TrainStep(model, opt), loader, out, epochs=epochs, modules={"model": model},
            optimizers={"adam": opt}, extras={"history": history}, log_every=50,
            checkpoint_every=1000, checkpoint_seconds=args.checkpoint_every, allow_nonfinite=args.allow_nonfinite,
            on_epoch_end=end_of_epoch, resume=args.resume, seed=args.seed).fit()
    model.eval()
    return list(history)


def sample_run(run: str | pathlib.Path, name: str, build: Callable[[argparse.Namespace,
               tuple[int, ...]], Any], n: int, label: int | None, seed: int,
               device: str) -> np.ndarray:
    """n images of the run of ``name`` in ``run`` (a run of ``fit``: its module is checkpointed
    as ``"model"``): ``build(options, image shape)`` makes the model, the newest checkpoint
    fills it, then z ~ N(0, I) drawn from ``seed`` is decoded to E[x | z]; float32
    (n, C, H, W) clipped to [0, 1]. These VAEs are unconditional: ``label`` must be None."""
    if label is not None:
        raise ValueError(f"--label {label}: the {name} model is unconditional (it has no "
                         "classes)")
    opts = argparse.Namespace(**read_run_config(run, name)["options"])
    opts.device = device
    model = build(opts, image_shape(opts.data, opts.size))
    model.load_state_dict(load_run_state(run, device)["modules"]["model"])
    model.eval()
    with sg.no_grad(), isolated_rng(seed):
        x = model.sample(n).numpy()
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def evaluate_run(run: str | pathlib.Path, name: str, build: Callable[[argparse.Namespace,
                 tuple[int, ...]], Any], device: str, k: int, images: int, seed: int
                 ) -> dict[str, Any]:
    """The test bounds of the run of ``name`` in ``run`` (a run of ``fit``): ``build(options,
    image shape)`` makes the model, the newest checkpoint fills it; then, on the first
    ``images`` test images of the run's data, ``"iwae"`` (L_k, ``k`` importance samples per
    image drawn from ``seed``) and ``"elbo"`` from the same samples, in nats per image
    (``vae_tools.evaluate_bounds``), with ``"k"``, ``"images"``, ``"data"`` and ``"step"``
    (the checkpoint's training step)."""
    if k < 1:
        raise ValueError(f"--k {k}: the bound needs at least one importance sample")
    if images < 1:
        raise ValueError(f"--images {images}: must be at least 1")
    opts = argparse.Namespace(**read_run_config(run, name)["options"])
    opts.device = device
    state = load_run_state(run, device)
    with data_errors(opts.data, opts.data_dir):
        _, _, xte, _ = load_images(opts.data, opts.data_dir, opts.size)
    model = build(opts, tuple(xte.shape[1:]))
    model.load_state_dict(state["modules"]["model"])
    xte = xte[:images]
    batches = [xte[i:i + 100] for i in range(0, len(xte), 100)]
    with isolated_rng(seed):
        bounds = vae_tools.evaluate_bounds(model, batches, k=k, chunk=16)
    return {**bounds, "k": k, "data": opts.data, "step": int(state["step"])}


def save_samples_and_pairs(model: Any, xte: np.ndarray, out: pathlib.Path, seed: int,
                           scale: int) -> None:
    """samples.png (64 draws from the prior) and reconstructions.png (32 test images, each
    followed by its reconstruction)."""
    sg.manual_seed(seed)
    save_image_grid(model.sample(64), out / "samples.png", nrow=8, value_range=(0.0, 1.0),
                    scale=scale, caption="64 samples: z ~ N(0, I) decoded to E[x | z]")
    rec = model.reconstruct(xte[:32]).numpy()
    pairs = np.stack([xte[:32], rec], axis=1).reshape((-1,) + xte.shape[1:])
    save_image_grid(pairs, out / "reconstructions.png", nrow=16, value_range=(0.0, 1.0),
                    scale=scale, col_labels=["test", "recon."] * 8,
                    caption="odd columns: the first 32 test images; even columns: their "
                            "reconstructions E[x | z = mu(x)]")


def parser() -> argparse.ArgumentParser:
    """This script's command line."""
    p = vae_parser(__doc__, "runs/beta-vae", z_dim=10)
    p.add_argument("--variant", choices=["beta", "capacity"], default="beta")
    p.add_argument("--beta", type=nonnegative_float, default=4.0,
                   help="KL weight (Higgins et al., eq. 4)")
    p.add_argument("--gamma", type=nonnegative_float, default=1000.0,
                   help="capacity variant: |KL - C| weight")
    p.add_argument("--c-max", type=nonnegative_float, default=15.0,
                   help="capacity variant: final C, nats")
    p.add_argument("--capacity-fraction", type=unit_interval, default=0.8,
                   help="capacity variant: share of the training steps over which C grows")
    return p


def build_model(args: argparse.Namespace, shape: tuple[int, ...], total_steps: int
                ) -> tuple[BetaVAE | CapacityVAE, optim.Adam, str]:
    """The model that ``args`` (this script's options) asks for, for images of ``shape``
    (C, H, W), on ``args.device``, and its optimizer: (model, Adam, a description).
    ``total_steps``: the length of the run, over whose first ``args.capacity_fraction`` the
    capacity variant opens its channel."""
    if args.variant == "beta":
        model = BetaVAE(shape, z_dim=args.z_dim, beta=args.beta, arch=args.arch)
        what = f"beta-VAE (beta = {args.beta})"
    else:
        steps = max(1, int(args.capacity_fraction * total_steps))
        model = CapacityVAE(shape, z_dim=args.z_dim, gamma=args.gamma, c_max=args.c_max,
                            capacity_steps=steps, arch=args.arch)
        what = f"capacity-annealed beta-VAE (gamma = {args.gamma}, C: 0 -> {args.c_max} nats " \
               f"over {steps} steps)"
    model.to(args.device)
    return model, optim.Adam(model.parameters(), lr=args.lr), what


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser()
    args = p.parse_args(argv)
    epochs, out, (xtr, ytr, xte, yte) = prepare(args, "beta-vae", given_options(p, argv))
    shape = tuple(xtr.shape[1:])
    model, opt, what = build_model(args, shape, epochs * -(-len(xtr) // args.batch_size))
    print(f"{what}, {args.arch}, z = {args.z_dim}, on {args.data} ({len(xtr)} images of "
          f"{shape[1]}x{shape[2]}), device {args.device}")

    def epoch_end(test: dict[str, float]) -> tuple[dict[str, Any], dict[str, float]]:
        per_unit = vae_tools.kl_per_unit(model, xte[:2000])
        row = {"test_neg_elbo": test["neg_elbo"], "test_recon": test["recon"],
               "test_kl": test["kl"], "units_over_0.5_nats": float((per_unit > 0.5).sum())}
        if "capacity" in test:
            row["capacity"] = test["capacity"]
        return {"kl_per_unit": [round(float(v), 3) for v in per_unit]}, row

    history = fit(model, opt, args, xtr, xte, out, epochs, epoch_end)

    scale = max(1, 56 // shape[1])
    per_unit = vae_tools.kl_per_unit(model, xte[:2000])
    order = [int(i) for i in np.argsort(-per_unit)]
    grid = vae_tools.latent_traversal(model, dims=order, steps=11, limit=3.0)
    save_interpolation_strip(
        grid, out / "traversal.png", value_range=(0.0, 1.0), scale=scale,
        row_labels=[f"z{i}: {per_unit[i]:.2f}" for i in order],
        col_labels=[f"{v:g}" for v in np.linspace(-3.0, 3.0, 11)],
        caption="rows: every latent unit, most informative first (label: unit and its KL in "
                "nats), swept from -3 to 3 (column headers) with the others at 0, the prior "
                "mean")
    save_samples_and_pairs(model, xte, out, args.seed + 1, scale)
    summary = {"command": "scratchgen train beta-vae " + " ".join(argv or []),
               "model": repr(model).split("\n")[0], "epochs": history,
               "traversal_rows": order, "kl_per_unit": [round(float(v), 3) for v in per_unit]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if history:
        h = history[-1]
        print(f"test: -ELBO {h['neg_elbo']:.2f}, recon {h['recon']:.2f}, KL {h['kl']:.2f} nats; "
              f"KL per unit (traversal rows) " + " ".join(f"{per_unit[i]:.2f}" for i in order))
    print(f"wrote {out}/ (traversal.png, samples.png, reconstructions.png, summary.json)")
    return summary


def sample(run: str | pathlib.Path, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """n images of a ``beta-vae`` run: z ~ N(0, I), decoded to E[x | z]; float32
    (n, 1, H, W) in [0, 1] (``sample_run``)."""
    return sample_run(run, "beta-vae", lambda opts, shape: build_model(opts, shape, 1)[0],
                      n, label, seed, device)


def evaluate(run: str | pathlib.Path, device: str = "cpu", k: int = 64, images: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """The test log-likelihood bounds of a ``beta-vae`` run's newest checkpoint, in nats per
    image (higher is better): ``"iwae"``, the importance-weighted bound L_k <= log p(x) (Burda
    et al. 2016, eq. 8), and ``"elbo"``, the ELBO with beta = 1 from the same samples
    (``evaluate_run``) -- whatever beta the model was trained with, so that runs compare.

    Args:
        k: importance samples per image (the bound tightens as k grows)
        images: test images to average over (the first ones)
        seed: seed of the importance samples
    """
    return evaluate_run(run, "beta-vae", lambda opts, shape: build_model(opts, shape, 1)[0],
                        device, k, images, seed)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
