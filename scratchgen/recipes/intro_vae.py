"""IntroVAE on the embedded 8x8 digits (or MNIST): the encoder doubles as the discriminator.

    # the run behind the report's sample grid: 719 s for 60 epochs on a heavily loaded shared
    # 2-core CPU; on a lightly loaded one 1.1 s per warm-up VAE epoch and 4.3 s per IntroVAE
    # epoch (23 steps of 64 images). At the end: KL of real images 14.2 nats, of
    # reconstructions 14.2, of samples 15.1 (the hinge at m = 15 still active), L_AE 0.51; the
    # samples are visibly sharper, more digit-like, than the blurry ones of the warm-up VAE
    # (samples/step_000230.png).
    scratchgen train intro-vae --epochs 60 --vae-warmup-epochs 10 --alpha 0.5 --beta 10 \\
        --margin 15 --lr 1e-3 --out runs/intro_vae

    # MNIST from local IDX files, 28x28 (slow on a CPU: hours)
    scratchgen train intro-vae --data mnist --data-dir DIR --size 28 \\
        --channels 32,64 --z-dim 32 --epochs 20 --out runs/intro_vae_mnist

Hyperparameters. The paper's alpha, beta and margin m are tied to the data's size: L_AE sums
1/2 (x_r - x)^2 over pixels, so with 64 pixels in [0, 1] it is small next to the KL unless beta
is large (beta is 1/sigma^2 of the Gaussian decoder). The defaults (beta = 10, alpha = 0.5,
m = 15 nats, z_dim = 16, Adam lr 1e-3 instead of the paper's 2e-4 to fit a CPU budget, 10 VAE
warm-up epochs -- the code's ``num_vae``) were picked among five short runs on this data set:
the warm-up VAE ends with a KL of about 11 nats for real images, and m a few nats above it keeps
the hinge active, so the encoder keeps pushing the KL of generated images up while pulling that
of real ones down. With beta = 50 and m = 30-40 (sharper reconstructions, KL of real images
25-30 nats) the samples stayed noisy in 60 epochs; with m at or below the real KL the hinge is
satisfied and the adversarial signal vanishes.

Writes to --out (a new folder): samples.png (64 images G(z), z ~ N(0, I)), reconstructions.png
(rows of test images and their reconstructions G(mu(x))), samples/step_*.png during training,
metrics.json, config.json and the Trainer's metrics.jsonl / checkpoint.npz (``--resume``
continues the run). ``scratchgen sample RUN`` draws new images from a run (``sample``).
"""
from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any, Callable

import numpy as np

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.data import MNIST, ArrayDataset, DataLoader, Digits
from scratchgen.recipes.vq_vae import batched
from scratchgen.losses.kl import kl_normal_standard_normal
from scratchgen.models.intro_vae import IntroVAE, IntroVAETrainStep
from scratchgen.train import (
    Trainer, given_options, isolated_rng, load_run_state, prepare_run_folder, read_run_config,
    save_image_grid,
)
from scratchgen.train.options import (
    ArgumentParser, add_run_options, data_errors, device, finite_float, nonnegative_float,
    nonnegative_int, positive_float, positive_int,
)


def load_images(name: str, train: bool, size: int, data_dir: str | None) -> np.ndarray:
    """(N, 1, size, size) float32 images in [0, 1]."""
    if name == "digits":
        return Digits(train=train, size=size).images
    if name == "mnist":
        ds = MNIST(train=train, data_dir=data_dir) if data_dir else MNIST(train=train)
        x = ds.images.astype(np.float32) / 255.0
        if size != 28:
            raise SystemExit("--size must be 28 for MNIST")
        return x
    raise SystemExit(f"unknown --data {name!r} (digits or mnist)")


def image_statistics(model: IntroVAE, x: sg.Tensor) -> sg.Tensor:
    """Per image of x, (N, 4): squared error of G(mu(x)) averaged over pixels, KL of x, of
    G(mu(x)) and of a generated image G(z), z ~ N(0, I), each KL(q(z|.) || N(0, I)) in nats."""
    mu, logvar = model.encode(x)
    rec = model.decode(mu)
    d = (rec - x).reshape(x.shape[0], -1)
    mse = (d * d).mean(axis=1)
    kl_rec = kl_normal_standard_normal(*model.encode(rec))
    kl_fake = kl_normal_standard_normal(*model.encode(model.sample(x.shape[0])))
    return F.stack([mse, kl_normal_standard_normal(mu, logvar), kl_rec, kl_fake], axis=1)


def evaluate_model(run: str | pathlib.Path, model: Any, test: np.ndarray, device: str,
                   images: int, seed: int) -> dict[str, Any]:
    """``image_statistics`` averaged over the first ``images`` of ``test``, for ``model`` (an
    IntroVAE or Soft-IntroVAE built for the run in ``run``) holding the run's newest
    checkpoint, in eval mode, its generated images drawn from ``seed``: ``"test_rec_mse"``,
    ``"kl_real"``, ``"kl_rec"``, ``"kl_fake"``, ``"images"`` and ``"step"``."""
    if images < 1:
        raise ValueError(f"--images {images}: must be at least 1")
    state = load_run_state(run, device)
    model.load_state_dict(state["modules"]["model"])
    model.eval()
    test = test[:images]
    with isolated_rng(seed):
        stats = batched(lambda x: image_statistics(model, x), test, device, batch=250)
    mse, kl_real, kl_rec, kl_fake = (float(v) for v in stats.mean(axis=0))
    return {"test_rec_mse": mse, "kl_real": kl_real, "kl_rec": kl_rec, "kl_fake": kl_fake,
            "images": len(test), "step": int(state["step"])}


def sample_grid_hook(model: Any, fixed_z: sg.Tensor, scale: int
                     ) -> Callable[[int, pathlib.Path], None]:
    """The Trainer's ``on_sample``: G(fixed_z) in eval mode as ``samples/step_*.png``, 8 a row."""
    def on_sample(step_no: int, folder: pathlib.Path) -> None:
        model.eval()
        imgs = model.decode(fixed_z).numpy()
        save_image_grid(np.clip(imgs, 0, 1), folder / f"step_{step_no:06d}.png", nrow=8,
                        value_range=(0, 1), scale=scale,
                        caption=f"G(z) of the same {len(imgs)} draws z ~ N(0, I) after step "
                                f"{step_no}")
    return on_sample


def save_samples_and_reconstructions(model: Any, fixed_z: sg.Tensor, test: np.ndarray,
                                     out: pathlib.Path, scale: int, device: str = "cpu") -> None:
    """samples.png (G(fixed_z), 8 a row) and reconstructions.png (rows of 16: the first 32 test
    images, each followed by G(mu(x))), in eval mode."""
    model.eval()
    with sg.no_grad():
        samples = model.decode(fixed_z).numpy()
        rec = model.reconstruct(sg.tensor(test[:32], device=device)).numpy()
    save_image_grid(np.clip(samples, 0, 1), out / "samples.png", nrow=8, value_range=(0, 1),
                    scale=scale, caption=f"{len(samples)} samples G(z), z ~ N(0, I)")
    n = len(rec)
    pairs = np.stack([test[:n], np.clip(rec, 0, 1)], axis=1).reshape(2 * n, *test.shape[1:])
    save_image_grid(pairs, out / "reconstructions.png", nrow=16, value_range=(0, 1), scale=scale,
                    col_labels=["test", "recon."] * 8,
                    caption=f"odd columns: the first {n} test images; even columns: their "
                            "reconstructions G(mu(x))")


def widths(text: str) -> str:
    """``--channels``: comma-separated positive integers (``32`` or ``32,64``)."""
    try:
        ok = all(int(c) >= 1 for c in text.split(","))
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of positive integers such "
                                         "as 32 or 32,64")
    return text


def parser() -> argparse.ArgumentParser:
    """This script's command line."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=["digits", "mnist"], default="digits",
                   help="digits (embedded) or mnist")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    p.add_argument("--size", type=positive_int, default=8,
                   help="image side (digits: any; mnist: 28)")
    p.add_argument("--epochs", type=positive_int, default=60)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--z-dim", type=positive_int, default=16)
    p.add_argument("--channels", type=widths, default="32",
                   help="encoder widths, e.g. 32 or 32,64")
    p.add_argument("--alpha", type=nonnegative_float, default=0.5)
    p.add_argument("--beta", type=nonnegative_float, default=10.0)
    p.add_argument("--margin", type=finite_float, default=15.0, help="m, in nats")
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--vae-warmup-epochs", type=nonnegative_int, default=10)
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs/intro_vae", help="the run's folder (a new one)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_run_options(p)
    return p


def channel_widths(args: argparse.Namespace) -> tuple[int, ...]:
    """The encoder widths of ``--channels`` ("32,64" -> (32, 64))."""
    return tuple(int(c) for c in args.channels.split(","))


def build_model(args: argparse.Namespace, steps_per_epoch: int
                ) -> tuple[IntroVAE, IntroVAETrainStep]:
    """The IntroVAE that ``args`` (this script's options) asks for, on ``args.device``, and the
    train step the Trainer calls (its two Adams; ``args.vae_warmup_epochs`` epochs of
    ``steps_per_epoch`` plain-VAE steps first)."""
    model = IntroVAE(1, args.z_dim, channel_widths(args), args.size).to(args.device)
    step = IntroVAETrainStep(model, alpha=args.alpha, beta=args.beta, margin=args.margin,
                             lr_e=args.lr, lr_g=args.lr,
                             vae_warmup_steps=args.vae_warmup_epochs * steps_per_epoch)
    return model, step


def main(argv: list[str] | None = None) -> dict:
    p = parser()
    args = p.parse_args(argv)
    if args.data == "mnist" and args.size != 28:
        p.error(f"argument --size: MNIST images are 28x28, not {args.size}x{args.size}")
    out = prepare_run_folder(args.out, "intro-vae", args, args.resume,
                             given=given_options(p, argv))

    sg.manual_seed(args.seed)
    with data_errors(args.data, args.data_dir):
        train = load_images(args.data, True, args.size, args.data_dir)
        test = load_images(args.data, False, args.size, args.data_dir)
    loader = DataLoader(ArrayDataset(train), batch_size=args.batch_size, shuffle=True,
                        drop_last=True, seed=args.seed, device=args.device)
    model, step = build_model(args, len(loader))
    print(f"IntroVAE on {args.data} {args.size}x{args.size}: {len(train)} images, "
          f"{model.num_parameters()} parameters, alpha={args.alpha} beta={args.beta} "
          f"m={args.margin} z_dim={args.z_dim}, {args.vae_warmup_epochs} VAE warm-up epochs")
    fixed_z = sg.randn(64, args.z_dim, device=args.device)

    scale = max(1, 64 // args.size)
    trainer = Trainer(step, loader, out, epochs=args.epochs, modules={"model": model},
                      log_every=len(loader), sample_every=10 * len(loader),
                      on_sample=sample_grid_hook(model, fixed_z, scale),
                      checkpoint_every=10 * len(loader),
                      checkpoint_seconds=args.checkpoint_every,
                      allow_nonfinite=args.allow_nonfinite, resume=args.resume, seed=args.seed)
    fit = trainer.fit()
    sec_per_epoch = fit.seconds / max(fit.epoch, 1)
    print(f"{fit.epoch} epochs in {fit.seconds:.0f} s ({sec_per_epoch:.1f} s per epoch)")

    save_samples_and_reconstructions(model, fixed_z, test, out, scale, args.device)
    metrics = {"data": args.data, "size": args.size, "epochs": fit.epoch, "steps": fit.step,
               "seconds": fit.seconds, "seconds_per_epoch": sec_per_epoch,
               "alpha": args.alpha, "beta": args.beta, "margin": args.margin,
               "z_dim": args.z_dim, "channels": list(channel_widths(args)),
               "final_losses": fit.losses,
               "parameters": model.num_parameters()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"final: {fit.losses}")
    print(f"wrote {out / 'samples.png'}, {out / 'reconstructions.png'}, {out / 'metrics.json'}")
    return metrics


def sample_model(run: str | pathlib.Path, name: str, model: Any, n: int, label: int | None,
                 seed: int, device: str) -> np.ndarray:
    """n images G(z), z ~ N(0, I) drawn from ``seed``, of ``model`` (an IntroVAE or
    Soft-IntroVAE built for the run of ``name`` in ``run``) holding the run's newest
    checkpoint; float32 (n, 1, H, W) clipped to [0, 1]. ``label`` must be None."""
    if label is not None:
        raise ValueError(f"--label {label}: the {name} model is unconditional (it has no "
                         "classes)")
    model.load_state_dict(load_run_state(run, device)["modules"]["model"])
    model.eval()
    with sg.no_grad(), isolated_rng(seed):
        x = model.sample(n).numpy()
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def sample(run: str | pathlib.Path, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """n images G(z), z ~ N(0, I), of an ``intro-vae`` run; float32 (n, 1, H, W) in [0, 1]."""
    opts = argparse.Namespace(**read_run_config(run, "intro-vae")["options"])
    opts.device = device
    model, _ = build_model(opts, 1)
    return sample_model(run, "intro-vae", model, n, label, seed, device)


def evaluate(run: str | pathlib.Path, device: str = "cpu", images: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """Test figures of an ``intro-vae`` run's newest checkpoint on the first ``images`` test
    images (``evaluate_model``): ``"test_rec_mse"`` (squared error of G(mu(x)) per pixel) and
    ``"kl_real"``, ``"kl_rec"``, ``"kl_fake"`` (KL(q(z|.) || N(0, I)) of test images, of
    their reconstructions and of generated images, in nats: the quantities the adversarial
    game pushes apart), with ``"images"``, ``"data"`` and ``"step"``.

    Args:
        images: test images to average over (the first ones)
        seed: seed of the generated images
    """
    opts = argparse.Namespace(**read_run_config(run, "intro-vae")["options"])
    opts.device = device
    model, _ = build_model(opts, 1)
    with data_errors(opts.data, opts.data_dir):
        test = load_images(opts.data, False, opts.size, opts.data_dir)
    return {**evaluate_model(run, model, test, device, images, seed), "data": opts.data}


if __name__ == "__main__":
    main()
