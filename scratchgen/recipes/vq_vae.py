"""Train a VQ-VAE (van den Oord et al., 2017) and look at its reconstructions and codebook.

    scratchgen train vq-vae                                  # embedded digits 28x28, no download
    scratchgen train vq-vae --data mnist --data-dir DIR --no-ema --epochs 40 \\
        --out runs/vq-vae-mnist                                 # measured run A (see below)
    scratchgen train pixelcnn-prior --vqvae runs/vq-vae-mnist/vqvae.npz \\
        --data mnist --data-dir DIR --epochs 20 --dropout 0.2 \\
        --out runs/vq-vae-mnist/prior
                                                                # then a PixelCNN prior on its codes
    scratchgen train vq-vae --data mnist --data-dir DIR --epochs 15 \\
        --out runs/vq-vae-mnist-ema                             # measured run B: EMA codebook

The network is the Keras VQ-VAE example's (two stride-2 convolutions to 7 x 7 latents of D = 16,
K = 128 codes, beta = 0.25, Adam 1e-3, batch 128), with images scaled to [-0.5, 0.5] and the
reconstruction error divided by the training set's variance (the normalised MSE reported below:
1.0 = predicting the mean pixel).

Measured on MNIST (seed 0, a shared 2-core CPU, 55-90 s per epoch):

    run A, codebook loss (--no-ema), 40 epochs
        after epoch                 1      5     10     20     30     40
        test normalised MSE     0.192  0.088  0.063  0.049  0.043  0.0403
        perplexity / dead codes 4/110   9/89  11/71  13/61  14/53  15.1/48
        PixelCNN prior on its codes, 20 epochs: 1.032 nats per code on the test maps with
        --dropout 0.2, 1.041 without; 1.0262 with --refit (the epoch count chosen on
        held-out training maps, then all maps fitted; pixelcnn_prior.py)
    run B, EMA codebook (the default), 15 epochs
        test normalised MSE 0.0330, perplexity 18.9, no dead codes

The codebook update is a trade between reconstruction and predictability. Run A learns the
codebook with the codebook term of the paper's eq. 3 (as the Keras example does): about a third
of the codes are never chosen. Run B's EMA updates keep every code in use and reconstruct
better, but its codes carry more information: the entropy of the code at each of the 49
positions, over the training maps, averages 2.31 nats against 1.84 for run A. A prior's
cross-entropy on them is higher accordingly (1.41 nats per code after 2 of 10 epochs, where run
A's prior had 1.15), so the two cross-entropies do not compare priors, only codes.

Writes to ``--out`` (a new folder; ``--resume`` continues the run in it): ``config.json``,
``metrics.jsonl`` and ``checkpoint.npz`` (the Trainer's), ``vqvae.npz`` (the model and its
configuration, read by pixelcnn_prior.py), ``codes.npz`` (the code maps of the training and test
images), ``reconstructions.png`` (rows of test images, each followed by its reconstruction),
``codebook_use.png`` and ``summary.json`` (per epoch: test normalised MSE, codebook perplexity,
dead codes, seconds). A VQ-VAE has no prior of its own to sample from: ``scratchgen sample``
draws from the ``pixelcnn-prior`` run trained on its codes.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any, Callable

import numpy as np

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.losses import vq as vql
from scratchgen.models.steps import TrainStep
from scratchgen.models.vq_vae import VQVAE
from scratchgen.serialization import load, save
from scratchgen.train import (
    History, Trainer, bar_chart, given_options, load_run_state, prepare_run_folder,
    read_run_config, save_image_grid,
)
from scratchgen.train.options import (
    ArgumentParser, add_run_options, data_errors, device, nonnegative_float, nonnegative_int,
    positive_float, positive_int,
)

__all__ = ["main", "parser", "build_model", "fit_vq", "load_images", "load_vqvae",
           "add_common_arguments", "save_codebook_use", "sample", "evaluate"]


def add_common_arguments(p: argparse.ArgumentParser, out: str, epochs: int) -> None:
    """The options the VQ recipes share: data, size, epochs, batch, device, out, seed,
    ``--checkpoint-every`` and ``--allow-nonfinite``."""
    p.add_argument("--data", choices=["digits", "mnist"], default="digits",
                   help="embedded digits (no download) or MNIST")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST files")
    p.add_argument("--size", type=positive_int, default=28,
                   help="side of the digits images (digits only)")
    p.add_argument("--epochs", type=positive_int, default=epochs)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default=out, help="the run's folder (a new one)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    add_run_options(p)


def load_images(data: str, data_dir: str | None = None, size: int = 28
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels), images float32 (N, 1, H, W)
    in [-0.5, 0.5] (the Keras example's scaling)."""
    with data_errors(data, data_dir):
        xtr, ytr, xte, yte = load_image_arrays(data, data_dir, size)
    return xtr - 0.5, ytr, xte - 0.5, yte


def load_vqvae(path: str | pathlib.Path, device: str = "cpu") -> tuple[VQVAE, dict[str, Any]]:
    """A VQ-VAE saved by this script: (model in eval mode, its saved configuration)."""
    blob = load(path)
    model = VQVAE(**blob["config"])
    model.load_state_dict(blob["state"])
    return model.to(device).eval(), blob


def batched(fn: Any, x: np.ndarray, device: str, batch: int = 1000) -> np.ndarray:
    """fn over x in batches (no gradients), results stacked as a NumPy array."""
    out = []
    with sg.no_grad():
        for i in range(0, len(x), batch):
            r = fn(sg.tensor(x[i:i + batch], device=device))
            out.append(sg.backend.to_device(getattr(r, "data", r), "cpu"))
    return np.concatenate(out)


def save_codebook_use(counts: np.ndarray, path: str | pathlib.Path, what: str = "test set",
                      title: str = "How often each code is chosen") -> None:
    """A bar chart: one bar per code k, its number of uses (``counts[k]``: how many latent
    positions of the ``what`` images chose code k) on a log scale -- the background code is
    chosen far more often than any other, so a linear scale would show nothing else -- and a
    red mark for each code never chosen."""
    counts = np.asarray(counts)
    dead = int((counts == 0).sum())
    note = (f"{int(counts.sum())} latent positions; {len(counts) - dead} of {len(counts)} "
            f"codes used, perplexity {vql.codebook_perplexity(counts):.1f}"
            + (f"; red marks: the {dead} codes never used" if dead else ""))
    bar_chart(counts, path, title=title, xlabel="code index k",
              ylabel=f"uses on the {what} (count, log scale)", log_y=True, note=note)


def parser() -> argparse.ArgumentParser:
    """This script's command line."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p, "runs/vq-vae", epochs=10)
    p.add_argument("--num-embeddings", type=positive_int, default=128,
                   help="K, the codebook size")
    p.add_argument("--embedding-dim", type=positive_int, default=16,
                   help="D, the code vector size")
    p.add_argument("--beta", type=nonnegative_float, default=0.25,
                   help="commitment weight (eq. 3)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                   help="EMA codebook updates (decay 0.99; paper App. A.1); --no-ema learns the "
                        "codebook with the codebook loss of eq. 3 instead")
    p.add_argument("--restart-dead-codes", action=argparse.BooleanOptionalAction, default=False,
                   help="move codes unused for a while onto encoder outputs (Jukebox): lower "
                        "MSE early, but more codes in use, so a harder prior")
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--limit", type=positive_int, default=None,
                   help="use only this many training images")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    return p


def fit_vq(model: Any, opt: optim.Adam, args: argparse.Namespace, xtr: np.ndarray,
           xte: np.ndarray, variance: float, out: pathlib.Path, name: str,
           levels: dict[str, str]) -> tuple[list[dict[str, float]], Callable[[], float]]:
    """Train a VQ model (``TrainStep(model, opt)``) with the Trainer in ``out``, under
    ``name``. ``levels`` maps a metric prefix to the key of the step's code-index map (``{"":
    "indices"}``; VQ-VAE-2: ``{"top_": "top_indices", "bottom_": "bottom_indices"}``). After
    each epoch: test normalised MSE, each level's codebook perplexity and dead codes over the
    epoch's training batches, and the seconds spent in train steps. Returns that history (of
    every epoch of the run: it is checkpointed, so it survives ``--resume``) and the test-MSE
    function."""
    loader = DataLoader(ArrayDataset(xtr), batch_size=args.batch_size, shuffle=True,
                        seed=args.seed, device=args.device)
    K = model.num_embeddings
    counts = {prefix: np.zeros(K, np.int64) for prefix in levels}  # codes chosen this epoch
    history = History()
    clock = {"train": 0.0}  # seconds inside train steps this epoch (no evaluation)

    vq_step = TrainStep(model, opt)

    def train_step(batch: Any) -> dict[str, float]:
        start = time.perf_counter()
        r = vq_step(batch)
        clock["train"] += time.perf_counter() - start
        for prefix, key in levels.items():
            counts[prefix] += vql.code_counts(r.pop(key), K)
        return r

    def test_mse() -> float:
        model.eval()
        rec = batched(model.reconstruct, xte, args.device, batch=500)
        return float(((rec - xte) ** 2).mean() / variance)

    def end_of_epoch(trainer: Trainer) -> dict[str, float]:
        row = {"epoch": trainer.epoch, "test_normalized_mse": test_mse()}
        for prefix, c in counts.items():
            row[prefix + "perplexity"] = vql.codebook_perplexity(c)
            row[prefix + "dead_codes"] = vql.dead_codes(c)
            c[:] = 0
        row["seconds"] = clock["train"]
        clock["train"] = 0.0
        history.append(row)
        return row

    Trainer(train_step, loader, out, epochs=args.epochs, modules={name: model},
            optimizers={"adam": opt}, extras={"history": history}, log_every=50,
            checkpoint_every=500, checkpoint_seconds=args.checkpoint_every,
            allow_nonfinite=args.allow_nonfinite, on_epoch_end=end_of_epoch,
            resume=args.resume, seed=args.seed).fit()
    model.eval()
    return list(history), test_mse


def build_model(args: argparse.Namespace, variance: float
                ) -> tuple[VQVAE, optim.Adam, dict[str, Any]]:
    """The VQ-VAE that ``args`` (this script's options) asks for, on ``args.device``, with
    reconstruction errors divided by ``variance`` (the training images'), and its optimizer:
    (model, Adam, the model's config)."""
    config = {"in_channels": 1, "num_embeddings": args.num_embeddings,
              "embedding_dim": args.embedding_dim, "beta": args.beta, "ema": args.ema,
              "restart_dead_codes": args.restart_dead_codes, "data_variance": variance}
    model = VQVAE(**config).to(args.device)
    return model, optim.Adam(model.parameters(), lr=args.lr), config


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    out = prepare_run_folder(args.out, "vq-vae", args, args.resume, given=given_options(p, argv))

    sg.manual_seed(args.seed)
    xtr, ytr, xte, yte = load_images(args.data, args.data_dir, args.size)
    if args.limit:
        xtr, ytr = xtr[:args.limit], ytr[:args.limit]
    variance = float(xtr.var())
    print(f"VQ-VAE on {args.data}: {len(xtr)} train / {len(xte)} test images of "
          f"{xtr.shape[2]}x{xtr.shape[3]}, Var(x) = {variance:.5f}, device {args.device}")
    model, opt, config = build_model(args, variance)
    history, test_mse = fit_vq(model, opt, args, xtr, xte, variance, out, "vqvae",
                               {"": "indices"})
    K = model.num_embeddings

    save({"config": config, "state": model.state_dict(), "data": args.data, "size": args.size},
         out / "vqvae.npz")
    codes_tr = batched(model.encode, xtr, args.device)
    codes_te = batched(model.encode, xte, args.device)
    np.savez_compressed(out / "codes.npz", train=codes_tr, test=codes_te, train_labels=ytr,
                        test_labels=yte)

    n = 32
    rec = batched(model.reconstruct, xte[:n], args.device)
    pairs = np.stack([xte[:n], rec], axis=1).reshape(2 * n, *xte.shape[1:])  # image, recon, ...
    save_image_grid(pairs, out / "reconstructions.png", nrow=16, value_range=(-0.5, 0.5),
                    scale=2, col_labels=["test", "recon."] * 8,
                    caption=f"odd columns: the first {n} test images; even columns: their "
                            "reconstructions, decoded from their nearest codes")
    use = vql.code_counts(codes_te, K)
    save_codebook_use(use, out / "codebook_use.png")

    summary = {"config": config, "epochs": history,
               "test_normalized_mse": test_mse(),
               "test_perplexity": vql.codebook_perplexity(use),
               "test_dead_codes": vql.dead_codes(use),
               "command": " ".join(["python", "-m", "scratchgen.recipes.vq_vae"]
                                   + list(sys.argv[1:] if argv is None else argv))}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"test normalised MSE {summary['test_normalized_mse']:.4f}, codebook perplexity "
          f"{summary['test_perplexity']:.1f} of {K}, {summary['test_dead_codes']} codes unused "
          f"on the test set; wrote {out}/")
    return 0


def sample(run: str | pathlib.Path, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """Refused with a ``ValueError`` that says what to do: a VQ-VAE alone has no prior over its
    codes to draw from (a ``pixelcnn-prior`` run trained on them has)."""
    read_run_config(run, "vq-vae")
    raise ValueError(f"{run}: a VQ-VAE has no prior of its own to sample from; train one on "
                     f"its codes with `scratchgen train pixelcnn-prior --vqvae "
                     f"{pathlib.Path(run) / 'vqvae.npz'} --out RUN` and sample RUN")


def evaluate(run: str | pathlib.Path, device: str = "cpu", images: int = 10000
             ) -> dict[str, Any]:
    """Test figures of a ``vq-vae`` run's newest checkpoint on the first ``images`` test images
    of its data: ``"test_normalized_mse"`` (the squared reconstruction error per pixel divided
    by the variance of the training images, as the paper's Keras example reports it),
    ``"test_perplexity"`` (exp of the entropy of the codes' frequencies: how many codes are in
    effective use, at most ``"codebook_size"``) and ``"test_dead_codes"`` (codes never chosen),
    with ``"images"``, ``"data"`` and ``"step"``. Deterministic: nothing is sampled.

    Args:
        images: test images to measure on (the first ones)
    """
    if images < 1:
        raise ValueError(f"--images {images}: must be at least 1")
    opts = argparse.Namespace(**read_run_config(run, "vq-vae")["options"])
    opts.device = device
    state = load_run_state(run, device)
    xtr, _, xte, _ = load_images(opts.data, opts.data_dir, opts.size)
    variance = float(xtr[:opts.limit].var())  # the training run's normaliser (--limit too)
    model, _, _ = build_model(opts, variance)
    model.load_state_dict(state["modules"]["vqvae"])
    model.eval()
    xte = xte[:images]
    rec = batched(model.reconstruct, xte, device, batch=500)
    use = vql.code_counts(batched(model.encode, xte, device), model.num_embeddings)
    return {"test_normalized_mse": float(((rec - xte) ** 2).mean() / variance),
            "test_perplexity": vql.codebook_perplexity(use),
            "test_dead_codes": vql.dead_codes(use), "codebook_size": model.num_embeddings,
            "images": len(xte), "data": opts.data, "step": int(state["step"])}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
