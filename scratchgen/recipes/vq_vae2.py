"""Train a two-level VQ-VAE-2 (Razavi et al., 2019), then its two PixelCNN priors (top codes;
bottom codes given the top codes), and sample images through the hierarchy.

    scratchgen train vq-vae2                                 # embedded digits 28x28, no download
    scratchgen train vq-vae2 --data mnist --data-dir DIR --epochs 3 \\
        --prior-epochs 2 --out runs/vq-vae2-mnist

For 28 x 28 images the bottom code map is 14 x 14 and the top one 7 x 7 (K codes each). Stage 1
trains the autoencoder (EMA codebooks, as in the paper); stage 2 fits a PixelCNN to the top maps
and a PixelCNN to the bottom maps conditioned on the (one-hot, upsampled) top map; sampling draws
a top map, then a bottom map given it, and decodes both.

Measured on MNIST (the second command, K = 64 codes per level, seed 0, a shared 2-core CPU):

    stage 1, after epoch         1        2        3
    test normalised MSE       0.0218   0.0141   0.0108
    top perplexity / dead       6.0/51  14.7/30  36.1/2
    bottom perplexity / dead   22.5/0   26.0/0   27.4/0      about 215 s per epoch

    top prior (7 x 7):        2.77 then 2.66 nats per code after epochs 1 and 2 (~195 s each)
    bottom prior (14 x 14):   0.83 nats per code after its first epoch (~1000 s per epoch)

Per image that is about 49 x 2.66 = 130 nats for the top map and 196 x 0.83 = 163 nats for the
bottom map given the top one. (The run stopped after the bottom prior's first epoch.)

Writes to ``--out`` (a new folder; ``--resume`` continues the run in it): ``config.json``,
``metrics.jsonl`` / ``checkpoint.npz`` (the Trainer's, stage 1),
``vqvae2.npz``, ``reconstructions.png`` (test images, each followed by its reconstruction),
``priors.npz``, ``top_prior/`` and ``bottom_prior/`` (each prior's Trainer folder),
``samples.png`` (images drawn through both priors) and ``summary.json`` (per epoch: test
normalised MSE, perplexity and dead codes of each level; each prior's validation nats per code).
``scratchgen sample RUN`` draws new images from a finished run (``sample``).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

import numpy as np

import scratchgen as sg
from scratchgen import optim
from scratchgen.models.pixelcnn import PixelCNN
from scratchgen.models.vq_vae2 import VQVAE2
from scratchgen.serialization import load, save
from scratchgen.train import MAY_CHANGE, given_options, isolated_rng, load_run_state
from scratchgen.train import prepare_run_folder
from scratchgen.train import read_run_config, save_image_grid
from scratchgen.train.options import ArgumentParser, positive_float, positive_int

from scratchgen.recipes.prior_fitting import fit_prior, validation_nll
from scratchgen.recipes.vq_vae import add_common_arguments, batched, fit_vq, load_images

__all__ = ["main", "parser", "build_model", "build_priors", "PRIOR_LR", "sample", "evaluate"]

PRIOR_LR = 1e-3  # Adam's learning rate for both priors (cosine-decayed to 0 over their epochs)


def parser() -> argparse.ArgumentParser:
    """This script's command line."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p, "runs/vq-vae2", epochs=10)
    p.add_argument("--num-embeddings", type=positive_int, default=64, help="K per level")
    p.add_argument("--embedding-dim", type=positive_int, default=16)
    p.add_argument("--hidden", type=positive_int, default=64)
    p.add_argument("--restart-dead-codes", action=argparse.BooleanOptionalAction, default=False,
                   help="move codes unused for a while onto encoder outputs (Jukebox): more "
                        "codes in use, so lower MSE but harder priors")
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--prior-epochs", type=positive_int, default=10)
    p.add_argument("--prior-channels", type=positive_int, default=64)
    p.add_argument("--prior-layers", type=positive_int, default=8)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    return p


def build_model(args: argparse.Namespace, variance: float
                ) -> tuple[VQVAE2, optim.Adam, dict[str, Any]]:
    """The VQ-VAE-2 that ``args`` (this script's options) asks for, on ``args.device``, with
    reconstruction errors divided by ``variance`` (the training images'), and its optimizer:
    (model, Adam, the model's config)."""
    config = {"in_channels": 1, "hidden": args.hidden, "res_channels": args.hidden // 2,
              "num_res_blocks": 1, "num_embeddings": args.num_embeddings,
              "embedding_dim": args.embedding_dim, "ema": True,
              "restart_dead_codes": args.restart_dead_codes, "data_variance": variance}
    model = VQVAE2(**config).to(args.device)
    return model, optim.Adam(model.parameters(), lr=args.lr), config


def build_priors(args: argparse.Namespace, num_codes: int
                 ) -> tuple[PixelCNN, PixelCNN, dict[str, int]]:
    """The two PixelCNN priors of stage 2, on ``args.device``: (p(c_top), p(c_bottom | c_top)
    with the one-hot top map as its conditioning input, their shared config)."""
    prior_kw = {"channels": args.prior_channels, "num_layers": args.prior_layers}
    top_prior = PixelCNN(num_codes, **prior_kw).to(args.device)
    bottom_prior = PixelCNN(num_codes, cond_channels=num_codes, **prior_kw).to(args.device)
    return top_prior, bottom_prior, prior_kw


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    # the priors' epochs, like the first stage's, may change on resume
    out = prepare_run_folder(args.out, "vq-vae2", args, args.resume,
                             may_change=MAY_CHANGE + ("prior_epochs",),
                             given=given_options(p, argv))
    sg.manual_seed(args.seed)

    xtr, ytr, xte, yte = load_images(args.data, args.data_dir, args.size)
    variance = float(xtr.var())
    (th, tw), (bh, bw) = VQVAE2.latent_shapes(xtr.shape[2:])
    print(f"VQ-VAE-2 on {args.data}: {len(xtr)} train / {len(xte)} test images, top codes "
          f"{th}x{tw}, bottom codes {bh}x{bw}, K = {args.num_embeddings}, device {args.device}")
    model, opt, config = build_model(args, variance)
    history, test_mse = fit_vq(model, opt, args, xtr, xte, variance, out, "vqvae2",
                               {"top_": "top_indices", "bottom_": "bottom_indices"})
    K = model.num_embeddings
    save({"config": config, "state": model.state_dict()}, out / "vqvae2.npz")

    n = 32
    rec = batched(model.reconstruct, xte[:n], args.device)
    pairs = np.stack([xte[:n], rec], axis=1).reshape(2 * n, *xte.shape[1:])
    save_image_grid(pairs, out / "reconstructions.png", nrow=16, value_range=(-0.5, 0.5),
                    scale=2, col_labels=["test", "recon."] * 8,
                    caption=f"odd columns: the first {n} test images; even columns: their "
                            "reconstructions from the top and bottom code maps")

    # stage 2: the code maps of every image, then the two priors
    def encode_all(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tops, bottoms = [], []
        for i in range(0, len(x), 500):
            t, b = model.encode(sg.tensor(x[i:i + 500], device=args.device))
            tops.append(sg.backend.to_device(t, "cpu"))
            bottoms.append(sg.backend.to_device(b, "cpu"))
        return np.concatenate(tops), np.concatenate(bottoms)

    top_tr, bot_tr = encode_all(xtr)
    top_te, bot_te = encode_all(xte)
    top_prior, bottom_prior, prior_kw = build_priors(args, K)
    common = dict(epochs=args.prior_epochs, lr=PRIOR_LR, batch_size=args.batch_size,
                  device=args.device, seed=args.seed, resume=args.resume,
                  checkpoint_seconds=args.checkpoint_every, allow_nonfinite=args.allow_nonfinite)
    print("stage 2: the top prior p(c_top)")
    top_hist = fit_prior(top_prior, top_tr, top_te, out / "top_prior", name="top_prior", **common)
    print("stage 2: the bottom prior p(c_bottom | c_top)")
    bot_hist = fit_prior(bottom_prior, bot_tr, bot_te, out / "bottom_prior", cond=top_tr,
                         val_cond=top_te, make_cond=model.bottom_condition,
                         name="bottom_prior", **common)
    save({"top": top_prior.state_dict(), "bottom": bottom_prior.state_dict(), "config": prior_kw,
          "num_codes": K}, out / "priors.npz")

    sg.manual_seed(args.seed + 1)
    images = model.sample(top_prior, bottom_prior, 64, xtr.shape[2:])
    save_image_grid(images, out / "samples.png", nrow=8, value_range=(-0.5, 0.5), scale=2,
                    caption="64 samples: top code maps drawn from the top prior, bottom maps "
                            "from the bottom prior given them, decoded")
    summary = {"config": config, "epochs": history, "test_normalized_mse": test_mse(),
               "top_prior": top_hist, "bottom_prior": bot_hist,
               "command": " ".join(["python", "-m", "scratchgen.recipes.vq_vae2"]
                                   + list(sys.argv[1:] if argv is None else argv))}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"test normalised MSE {summary['test_normalized_mse']:.4f}; prior validation "
          f"cross-entropy: top {top_hist[-1]['val_nats_per_code']:.4f}, bottom "
          f"{bot_hist[-1]['val_nats_per_code']:.4f} nats per code; wrote {out}/")
    return 0


def sample(run: str | pathlib.Path, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """n images of a finished ``vq-vae2`` run (its ``vqvae2.npz`` and ``priors.npz``): top
    code maps from the top prior, bottom maps from the bottom prior given them, decoded;
    float32 (n, 1, H, W) in [0, 1]. The model is unconditional: ``label`` must be None."""
    if label is not None:
        raise ValueError(f"--label {label}: the VQ-VAE-2 is unconditional (it has no classes)")
    run = pathlib.Path(run)
    opts = argparse.Namespace(**read_run_config(run, "vq-vae2")["options"])
    opts.device = device
    for name in ("vqvae2.npz", "priors.npz"):
        if not (run / name).exists():
            raise ValueError(f"{run}: no {name} yet (it is written when the run has trained "
                             "both stages)")
    blob = load(run / "vqvae2.npz")
    model = VQVAE2(**blob["config"])
    model.load_state_dict(blob["state"])
    model.to(device).eval()
    priors = load(run / "priors.npz")
    top_prior, bottom_prior, _ = build_priors(opts, priors["num_codes"])
    top_prior.load_state_dict(priors["top"])
    bottom_prior.load_state_dict(priors["bottom"])
    top_prior.eval()
    bottom_prior.eval()
    size = 28 if opts.data == "mnist" else opts.size
    with isolated_rng(seed):
        images = model.sample(top_prior, bottom_prior, n, (size, size))
    images = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    return np.clip(images + 0.5, 0.0, 1.0).astype(np.float32)


def evaluate(run: str | pathlib.Path, device: str = "cpu", images: int = 10000
             ) -> dict[str, Any]:
    """Test figures of a finished ``vq-vae2`` run (its ``vqvae2.npz`` and ``priors.npz``) on
    the first ``images`` test images, as its summary.json reports them:
    ``"test_normalized_mse"`` (squared reconstruction error per pixel over the training images'
    variance), ``"top_nats_per_code"`` (the top prior's -log p(c_top) per code of the test top
    maps) and ``"bottom_nats_per_code"`` (the bottom prior's -log p(c_bottom | c_top) per code
    of the test bottom maps, given their top maps), with ``"num_codes"``, ``"images"``,
    ``"data"`` and ``"step"`` (the first stage's). Deterministic: nothing is sampled.

    Args:
        images: test images to measure on (the first ones)
    """
    if images < 1:
        raise ValueError(f"--images {images}: must be at least 1")
    run = pathlib.Path(run)
    opts = argparse.Namespace(**read_run_config(run, "vq-vae2")["options"])
    opts.device = device
    for name in ("vqvae2.npz", "priors.npz"):
        if not (run / name).exists():
            raise ValueError(f"{run}: no {name} yet (it is written when the run has trained "
                             "both stages)")
    state = load_run_state(run, device)
    blob = load(run / "vqvae2.npz")
    model = VQVAE2(**blob["config"])
    model.load_state_dict(blob["state"])
    model.to(device).eval()
    priors = load(run / "priors.npz")
    top_prior, bottom_prior, _ = build_priors(opts, priors["num_codes"])
    top_prior.load_state_dict(priors["top"])
    bottom_prior.load_state_dict(priors["bottom"])
    _, _, xte, _ = load_images(opts.data, opts.data_dir, opts.size)
    xte = xte[:images]
    variance = float(blob["config"]["data_variance"])
    rec = batched(model.reconstruct, xte, device, batch=500)
    tops, bottoms = [], []
    with sg.no_grad():
        for i in range(0, len(xte), 500):
            t, b = model.encode(sg.tensor(xte[i:i + 500], device=device))
            tops.append(sg.backend.to_device(t, "cpu"))
            bottoms.append(sg.backend.to_device(b, "cpu"))
    top_te, bot_te = np.concatenate(tops), np.concatenate(bottoms)
    return {"test_normalized_mse": float(((rec - xte) ** 2).mean() / variance),
            "top_nats_per_code": validation_nll(top_prior, top_te, device=device),
            "bottom_nats_per_code": validation_nll(bottom_prior, bot_te, cond=top_te,
                                                   device=device,
                                                   make_cond=model.bottom_condition),
            "num_codes": int(priors["num_codes"]), "images": len(xte), "data": opts.data,
            "step": int(state["step"])}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
