"""Soft-IntroVAE on images: the embedded digits by default, MNIST with ``--data mnist``.

    # the measured run: 8x8 digits, 30 epochs of 47 steps (batch 32), 134 s in all
    scratchgen train soft-intro-vae --out runs/soft_intro_vae

    # MNIST at 28x28 with the official network (channels 64,128), batch 128, 200 epochs
    scratchgen train soft-intro-vae --data mnist --data-dir DIR \\
        --out runs/soft_intro_vae_mnist
    # its cost per step, timed (5 steps, no epoch ends)
    scratchgen train soft-intro-vae --data mnist --data-dir DIR --steps 5 \\
        --out runs/soft_intro_vae_mnist_timing

Measured (2-core shared CPU, OPENBLAS_NUM_THREADS=1, seed 0):

    digits, default settings, after epoch    1        10       20       30
      test_rec_mse (per pixel)             0.0357   0.0191   0.0169   0.0161
      kl_real (nats)                       17.9     15.0     12.2     12.8
      kl_rec                               17.6     14.5     11.6     12.7
      kl_fake                               8.9     11.5     10.8     11.3
      4.4 s per epoch (training steps only, 47 steps of 32 images; 107,073 parameters).
      Reconstructions keep each digit's shape and slant; the samples are digit-like and
      varied but noisy, and kl_fake stays 1.5 nats below kl_real: in 1,410 steps the encoder
      has not yet learnt to give its decoder's samples a higher KL than data (the official
      MNIST run takes 200 epochs of 469 steps).
    MNIST 28x28, official network (1,625,537 parameters), batch 128: 15.8 s per step (median
      of 20, ``OPENBLAS_NUM_THREADS=1 scratchgen bench models --models soft-intro-vae``), so
      about 7,400 s (2 hours) per epoch of 469 steps on one core -- an extrapolation, no whole
      MNIST epoch was run; 200 epochs are a GPU job (--device cuda).

Hyperparameters: the official code's MNIST setting (github.com/taldatech/soft-intro-vae-pytorch,
``soft_intro_vae/train_soft_intro_vae.py``, its README table and main.py): beta_kl 1,
beta_rec 1, beta_neg 256, gamma_r 1e-8, z_dim 32, Adam lr 2e-4 for encoder and decoder, no
plain-VAE warm-up (``num_vae`` 0), 200 epochs, batch 128 (main.py's generic default is 32; the
table gives 128 for MNIST), channels (64, 128) at 28x28, Gaussian decoder (squared error).
``--data mnist`` takes them all. The digits deviate, to train in minutes on a CPU:

* 8x8 images and one stage of channels (32): 0.1 s per step of 32 images, against 16 s per
  step of 128 for the official network at 28x28;
* batch 32 (1,500 training images make 12 steps per epoch at 128), 30 epochs, lr 1e-3;
* beta_kl and beta_neg scaled by the values per image, (C H W) / 784: 0.082 and 20.9 at 8x8.
  The losses sum the squared error over pixels, so on 64 pixels a nat of KL weighs 12 times
  more against the reconstruction than on MNIST's 784; the scaled weights make the loss that
  of the 8x8 images blown up to 28x28 (nearest neighbour) with the MNIST weights. With every
  MNIST value at 8x8 (``--beta-kl 1 --beta-neg 256 --lr 2e-4``) the posterior collapses:
  after 30 epochs kl_real 1.3 nats, kl_fake 1.0, test_rec_mse 0.047, every reconstruction a
  blurred average digit. With the scaled weights and the official lr 2e-4: test_rec_mse
  0.0171, kl_real 14.4, kl_fake 11.2 after 30 epochs, the samples noisier than at 1e-3.

Metrics, per epoch on the first ``--eval-images`` test images, in eval mode (BatchNorm on its
running statistics): ``test_rec_mse``, the mean over images and pixels of (G(mu(x)) - x)^2;
``kl_real`` = KL(q(z|x) || N(0, I)) of the test images, ``kl_rec`` that of their
reconstructions G(mu(x)), ``kl_fake`` that of as many generated images G(z), z ~ N(0, I) (nats,
averaged over images); ``seconds`` / ``cpu_seconds``, wall-clock and process CPU time spent in
the epoch's training steps (no evaluation, no pictures; for an epoch split by ``--resume``,
the resumed session's steps only). The code's advice: kl_fake and kl_rec
should end at or above kl_real (the encoder tells the decoder's images from data).

Writes to --out (a new folder): samples.png (64 images G(z), the same z all run long),
reconstructions.png (rows of test images, each followed by G(mu(x))), samples/step_*.png after
every epoch, metrics.json (settings, the per-epoch rows above, seconds per epoch), config.json
and the Trainer's metrics.jsonl / checkpoint.npz (``--resume`` continues the run; the
per-epoch rows come back from metrics.jsonl). ``scratchgen sample RUN`` draws new images from a
run (``sample``).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any

import numpy as np

import scratchgen as sg
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.recipes.intro_vae import (
    channel_widths, evaluate_model, image_statistics, sample_grid_hook, sample_model,
    save_samples_and_reconstructions, widths,
)
from scratchgen.recipes.vq_vae import batched
from scratchgen.models.soft_intro_vae import SoftIntroVAE, SoftIntroVAETrainStep
from scratchgen.train import (
    Trainer, given_options, prepare_run_folder, read_metrics, read_run_config,
)
from scratchgen.train.options import (
    ArgumentParser, add_run_options, data_errors, device, nonnegative_float, nonnegative_int,
    positive_float, positive_int,
)

__all__ = ["main", "parser", "build_model", "loss_weights", "image_statistics", "DEFAULTS",
           "fill_defaults", "sample", "evaluate"]

#: Per-data-set defaults of the options left unset (``None``) on the command line.
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"size": 8, "channels": "32", "batch_size": 32, "epochs": 30, "lr": 1e-3},
    "mnist": {"size": 28, "channels": "64,128", "batch_size": 128, "epochs": 200, "lr": 2e-4},
}
#: The official MNIST weights of the KL terms, for 28 x 28 = 784 values per image.
MNIST_BETA_KL, MNIST_BETA_NEG, MNIST_VALUES = 1.0, 256.0, 784


def _epoch_rows(metrics_jsonl: pathlib.Path) -> list[dict[str, float]]:
    """The per-epoch evaluation records of the whole run (all sessions) from metrics.jsonl."""
    series = read_metrics(metrics_jsonl, sections=("eval",))
    names = [k.split("/", 1)[1] for k in series]
    n = min((len(v) for v in series.values()), default=0)
    return [{name: series[f"eval/{name}"][i][1] for name in names} for i in range(n)]


def parser() -> argparse.ArgumentParser:
    """This script's command line (options left ``None`` take ``DEFAULTS[--data]``)."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=list(DEFAULTS), default="digits",
                   help="embedded digits (no download) or MNIST")
    p.add_argument("--data-dir", default=None, help="folder with the four MNIST files")
    p.add_argument("--size", type=positive_int, default=None,
                   help="side of the digits images (default 8; MNIST is 28)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="train on the first N images only")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="default 30 (digits), 200 (mnist)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="stop after this many steps")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="default 32 (digits), 128 (mnist)")
    p.add_argument("--channels", type=widths, default=None,
                   help="encoder widths, e.g. 32 or 64,128 (default 32 digits, 64,128 mnist)")
    p.add_argument("--z-dim", type=positive_int, default=32)
    p.add_argument("--beta-kl", type=nonnegative_float, default=None,
                   help="default 1 x (C H W) / 784: 1 on MNIST, 0.082 on 8x8 digits")
    p.add_argument("--beta-rec", type=nonnegative_float, default=1.0)
    p.add_argument("--beta-neg", type=nonnegative_float, default=None,
                   help="default 256 x (C H W) / 784: 256 on MNIST, 20.9 on 8x8 digits")
    p.add_argument("--gamma-r", type=nonnegative_float, default=1e-8)
    p.add_argument("--lr", type=positive_float, default=None,
                   help="Adam, encoder and decoder (default 1e-3 digits, 2e-4 mnist)")
    p.add_argument("--vae-warmup-epochs", type=nonnegative_int, default=0,
                   help="plain-VAE epochs first")
    p.add_argument("--eval-images", type=positive_int, default=1000,
                   help="test images for the per-epoch metrics")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs/soft_intro_vae", help="the run's folder (a new one)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_run_options(p)
    return p


def fill_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Set the options left ``None`` to ``DEFAULTS[args.data]``, in place; returns ``args``."""
    for k, v in DEFAULTS[args.data].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


def loss_weights(args: argparse.Namespace) -> dict[str, float]:
    """beta_kl, beta_rec, beta_neg, gamma_r of ``args``; an unset beta_kl / beta_neg is the
    MNIST value times (C H W) / 784 for the ``args.size`` x ``args.size`` grey images."""
    values = args.size * args.size / MNIST_VALUES
    return {"beta_kl": MNIST_BETA_KL * values if args.beta_kl is None else args.beta_kl,
            "beta_rec": args.beta_rec,
            "beta_neg": MNIST_BETA_NEG * values if args.beta_neg is None else args.beta_neg,
            "gamma_r": args.gamma_r}


def build_model(args: argparse.Namespace, steps_per_epoch: int
                ) -> tuple[SoftIntroVAE, SoftIntroVAETrainStep]:
    """The Soft-IntroVAE that ``args`` (this script's options, defaults filled in) asks for, on
    ``args.device``, and the train step the Trainer calls (its two Adams;
    ``args.vae_warmup_epochs`` epochs of ``steps_per_epoch`` plain-VAE steps first)."""
    model = SoftIntroVAE(1, args.z_dim, channel_widths(args), args.size).to(args.device)
    step = SoftIntroVAETrainStep(model, lr_e=args.lr, lr_d=args.lr,
                                 vae_warmup_steps=args.vae_warmup_epochs * steps_per_epoch,
                                 **loss_weights(args))
    return model, step


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    p = parser()
    args = p.parse_args(argv)
    if args.data == "mnist" and args.size not in (None, 28):
        p.error(f"argument --size: MNIST images are 28x28, not {args.size}x{args.size}")
    # the options as given (None: the data set's default) are the run's config
    out = prepare_run_folder(args.out, "soft-intro-vae", args, args.resume,
                             given=given_options(p, argv))
    fill_defaults(args)

    sg.manual_seed(args.seed)
    with data_errors(args.data, args.data_dir):
        train, _, test, _ = load_image_arrays(args.data, args.data_dir, args.size)
    train = train[:args.limit]
    test = test[:args.eval_images]
    size = args.size
    loader = DataLoader(ArrayDataset(train), batch_size=args.batch_size, shuffle=True,
                        seed=args.seed, device=args.device)
    model, step = build_model(args, len(loader))
    channels = channel_widths(args)
    hp = loss_weights(args)
    print(f"Soft-IntroVAE on {args.data} {size}x{size}: {len(train)} train images, "
          f"{model.num_parameters():,} parameters, channels {channels}, z_dim {args.z_dim}, "
          f"{hp}, batch {args.batch_size}, lr {args.lr}, device {args.device}")
    fixed_z = sg.randn(64, args.z_dim, device=args.device)
    clock = {"wall": 0.0, "cpu": 0.0}  # time inside this epoch's train steps

    def train_step(batch: Any) -> dict[str, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        losses = step(batch)
        clock["wall"] += time.perf_counter() - wall
        clock["cpu"] += time.process_time() - cpu
        return losses

    def end_of_epoch(trainer: Trainer) -> dict[str, float]:
        model.eval()
        stats = batched(lambda x: image_statistics(model, x), test, args.device, batch=250)
        mse, kl_real, kl_rec, kl_fake = stats.mean(axis=0)
        row = {"epoch": trainer.epoch, "test_rec_mse": mse, "kl_real": kl_real,
               "kl_rec": kl_rec, "kl_fake": kl_fake, "seconds": clock["wall"],
               "cpu_seconds": clock["cpu"]}
        clock["wall"] = clock["cpu"] = 0.0
        return {k: float(v) for k, v in row.items()}

    scale = max(1, 64 // size)
    trainer = Trainer(train_step, loader, out, epochs=args.epochs, max_steps=args.steps,
                      modules={"model": model}, extras={"soft_intro_vae": step},
                      log_every=min(50, len(loader)), sample_every=len(loader),
                      on_sample=sample_grid_hook(model, fixed_z, scale),
                      on_epoch_end=end_of_epoch, checkpoint_every=len(loader),
                      checkpoint_seconds=args.checkpoint_every,
                      allow_nonfinite=args.allow_nonfinite, resume=args.resume, seed=args.seed)
    fit = trainer.fit()
    save_samples_and_reconstructions(model, fixed_z, test, out, scale, args.device)

    epochs = _epoch_rows(out / "metrics.jsonl")
    timed = [e["seconds"] for e in epochs]
    metrics = {
        "data": args.data, "size": size, "train_images": len(train), "eval_images": len(test),
        "epochs_done": fit.epoch, "steps": fit.step, "seconds": fit.seconds,
        "seconds_per_epoch": float(np.mean(timed)) if timed else None,
        "seconds_per_step": fit.seconds / max(fit.step, 1),
        "hyperparameters": hp | {"z_dim": args.z_dim, "channels": list(channels),
                                 "batch_size": args.batch_size, "lr": args.lr,
                                 "vae_warmup_epochs": args.vae_warmup_epochs},
        "parameters": model.num_parameters(), "epochs": epochs, "final_losses": fit.losses,
        "command": "scratchgen train soft-intro-vae " + " ".join(argv),
    }
    for e in epochs[-1:]:
        print(f"epoch {int(e['epoch'])}: test MSE {e['test_rec_mse']:.4f}, KL real "
              f"{e['kl_real']:.2f}, rec {e['kl_rec']:.2f}, fake {e['kl_fake']:.2f} nats; "
              f"{metrics['seconds_per_epoch']:.1f} s per epoch")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"wrote {out / 'samples.png'}, {out / 'reconstructions.png'}, {out / 'metrics.json'}")
    return metrics


def sample(run: str | pathlib.Path, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """n images G(z), z ~ N(0, I), of a ``soft-intro-vae`` run; float32 (n, 1, H, W) clipped
    to [0, 1]."""
    opts = fill_defaults(argparse.Namespace(**read_run_config(run, "soft-intro-vae")["options"]))
    opts.device = device
    model, _ = build_model(opts, 1)
    return sample_model(run, "soft-intro-vae", model, n, label, seed, device)


def evaluate(run: str | pathlib.Path, device: str = "cpu", images: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """The per-epoch test figures of a ``soft-intro-vae`` run, on its newest checkpoint and
    the first ``images`` test images (``intro_vae.evaluate_model``): ``"test_rec_mse"``
    (squared error of G(mu(x)) per pixel) and ``"kl_real"``, ``"kl_rec"``, ``"kl_fake"``
    (KL(q(z|.) || N(0, I)) of test images, of their reconstructions and of generated images,
    in nats), with ``"images"``, ``"data"`` and ``"step"``.

    Args:
        images: test images to average over (the first ones)
        seed: seed of the generated images
    """
    opts = fill_defaults(argparse.Namespace(**read_run_config(run, "soft-intro-vae")["options"]))
    opts.device = device
    model, _ = build_model(opts, 1)
    with data_errors(opts.data, opts.data_dir):
        _, _, test, _ = load_image_arrays(opts.data, opts.data_dir, opts.size)
    return {**evaluate_model(run, model, test, device, images, seed), "data": opts.data}


if __name__ == "__main__":
    main()
