"""Soft-IntroVAE on 2-D toy data (8 Gaussians, two spirals, checkerboard), as the official 2-D code.

    # the official setting (soft_intro_vae_2d/train_soft_intro_vae_2d.py): 30,000 iterations,
    # batch 512, MLPs of 3 x 256 hidden units, z_dim 2, lr 2e-4 divided by 10 at 10k and 15k,
    # 2,000 plain-VAE warm-up iterations, beta_kl 0.3 beta_rec 0.2 beta_neg 0.9 (8 Gaussians).
    # About an hour on two CPU cores (21 s per 1000 warm-up steps, 122 s per 1000 Soft-IntroVAE
    # steps, measured with OPENBLAS_NUM_THREADS=1 on a shared, lightly loaded machine).
    scratchgen train soft-intro-vae-toy --dataset ring --out runs/soft_intro_vae_toy

    # the measured runs: 12,000 steps (2,000 warm-up), hidden 128, lr /10 at 8,000 and 10,000
    # (57 s per 1000 Soft-IntroVAE steps and 9 s per 1000 warm-up steps, lightly loaded)
    scratchgen train soft-intro-vae-toy --dataset ring --steps 12000 --vae-warmup 2000 \\
        --milestones 8000,10000 --hidden 128 --out runs/soft_intro_vae_ring
    scratchgen train soft-intro-vae-toy --dataset spirals --steps 12000 --vae-warmup 2000 \\
        --milestones 8000,10000 --hidden 128 --out runs/soft_intro_vae_spirals
    scratchgen train soft-intro-vae-toy --dataset checkerboard --steps 12000 --vae-warmup 2000 \\
        --milestones 8000,10000 --hidden 128 --out runs/soft_intro_vae_checkerboard

Measured (seed 0; histograms of 100,000 points, 100 x 100 bins over the plot box):

    data           KL(real || model)   JSD      (official-code convention: KL, "JSD")
    8 Gaussians    0.474 nats          0.0575   (4.12, 2.32)   all 8 modes, density peaks on them
    two spirals    1.088               0.1085   (2.76, 1.15)
    checkerboard   0.490               0.0929   (1.04, 1.76)   0.6% of samples outside [-4, 4]^2

Data: "ring" is the code's 8Gaussians (radius 2 and std 0.02, both divided by 1.414, plotted
on [-2, 2]^2); spirals and checkerboard are plotted on [-4, 4]^2 (our two_spirals has Gaussian
noise 0.1 but not the code's extra uniform jitter). Training draws batches from a fixed pool of
``--pool`` points (the code draws fresh points every iteration; 200,000 points is close).

Writes to --out (a new folder): samples.png (5,000 model samples), real.png (5,000 data points),
density.png (the model's density exp(ELBO) on a grid, the code's plot_vae_density:
exp(-(KL + ||x - D(mu(x))||^2)) normalized over the grid), metrics.json (KL and JSD between
2-D histograms of 100,000 real and 100,000 generated points on a 100 x 100 grid over the plot
range, ``scratchgen.metrics.toy``, with eps = 1e-10 smoothing; also the same numbers in the
convention of the official code's ``calculate_sample_kl``, which we take to be the one behind the
paper's table), config.json and the Trainer's metrics.jsonl / checkpoint.npz (``--resume``
continues the run). ``scratchgen sample RUN --out points.npy`` draws new points from a run
(``sample``).
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib

import numpy as np

import scratchgen as sg
from scratchgen.data import ArrayDataset, DataLoader, toy_dataset
from scratchgen.metrics.toy import sample_divergences, soft_intro_vae_code_divergences
from scratchgen.models.soft_intro_vae import (
    TOY_HYPERPARAMETERS, SoftIntroVAE, SoftIntroVAETrainStep, elbo_density,
)
from scratchgen.train import (
    MAY_CHANGE, Trainer, density_plot, given_options, isolated_rng, load_run_state,
    prepare_run_folder, read_run_config, scatter_2d,
)
from scratchgen.train.options import (
    ArgumentParser, add_run_options, device, nonnegative_float, nonnegative_int,
    positive_float, positive_int,
)

# the data as the official code draws it, and the half-width of the plotted box
_DATA = {
    "ring": (dict(radius=2.0 / 1.414, std=0.02 / 1.414), 2.0),
    "spirals": ({}, 4.0),
    "checkerboard": ({}, 4.0),
}
_ALIASES = {"8gaussians": "ring", "ring": "ring", "spirals": "spirals", "2spirals": "spirals",
            "checkerboard": "checkerboard"}


def toy_points(name: str, n: int, seed: int) -> np.ndarray:
    params, _ = _DATA[name]
    return toy_dataset(name, n, seed=seed, **params).points


def grid_density(model: SoftIntroVAE, half: float, n: int, batch: int = 4096) -> np.ndarray:
    """exp(ELBO) on an n x n grid of cell centres over [-half, half]^2, normalized to sum 1;
    row i is y_i (bottom row first), as ``density_plot`` expects."""
    xs = -half + (np.arange(n) + 0.5) * (2 * half / n)
    gx, gy = np.meshgrid(xs, xs, indexing="xy")
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    p = next(iter(model.parameters()))
    out = []
    model.eval()
    with sg.no_grad():
        for s in range(0, len(pts), batch):
            x = sg.tensor(pts[s:s + batch], dtype=p.dtype, device=p.device)
            out.append(elbo_density(model, x).numpy().astype(np.float64))
    dens = np.concatenate(out).reshape(n, n)
    return dens / max(dens.sum(), 1e-300)


def model_samples(model: SoftIntroVAE, n: int, batch: int = 10000) -> np.ndarray:
    model.eval()
    with sg.no_grad():
        return np.concatenate([model.sample(min(batch, n - s)).numpy()
                               for s in range(0, n, batch)])


def _dataset(text: str) -> str:
    """``--dataset``: one of the names in ``_ALIASES`` (any case)."""
    if text.lower() not in _ALIASES:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of "
                                         f"{', '.join(sorted(_ALIASES))}")
    return text


def _milestones(text: str) -> str:
    """``--milestones``: comma-separated step numbers (or nothing)."""
    try:
        ok = all(int(m) >= 0 for m in text.split(",") if m.strip())
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of step numbers such as "
                                         "10000,15000")
    return text


def parser() -> argparse.ArgumentParser:
    """This script's command line."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", "--data", type=_dataset, default="ring",
                   help="ring (8gaussians), spirals, checkerboard")
    p.add_argument("--steps", type=positive_int, default=30000, help="training iterations")
    p.add_argument("--batch-size", type=positive_int, default=512)
    p.add_argument("--hidden", type=positive_int, default=256)
    p.add_argument("--n-layers", type=positive_int, default=3)
    p.add_argument("--z-dim", type=positive_int, default=2)
    p.add_argument("--lr", type=positive_float, default=2e-4)
    p.add_argument("--milestones", type=_milestones, default="10000,15000",
                   help="iterations where lr /= 10")
    p.add_argument("--vae-warmup", type=nonnegative_int, default=2000,
                   help="plain-VAE iterations first")
    p.add_argument("--beta-kl", type=nonnegative_float, default=None)
    p.add_argument("--beta-rec", type=nonnegative_float, default=None)
    p.add_argument("--beta-neg", type=nonnegative_float, default=None)
    p.add_argument("--gamma-r", type=nonnegative_float, default=1e-8)
    p.add_argument("--pool", type=positive_int, default=200000, help="training points")
    p.add_argument("--eval-samples", type=positive_int, default=100000)
    p.add_argument("--bins", type=positive_int, default=100)
    p.add_argument("--grid", type=positive_int, default=300, help="density grid resolution")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs/soft_intro_vae_toy",
                   help="the run's folder (a new one)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_run_options(p)
    return p


def build_model(args: argparse.Namespace) -> SoftIntroVAE:
    """The toy Soft-IntroVAE (MLPs) that ``args`` asks for, on ``args.device``."""
    return SoftIntroVAE.toy(2, args.z_dim, args.n_layers, args.hidden).to(args.device)


def main(argv: list[str] | None = None) -> dict:
    p = parser()
    args = p.parse_args(argv)
    name = _ALIASES[args.dataset.lower()]
    out = prepare_run_folder(args.out, "soft-intro-vae-toy", args, args.resume,
                             may_change=MAY_CHANGE + ("eval_samples", "bins", "grid"),
                             given=given_options(p, argv))
    hp = dict(TOY_HYPERPARAMETERS[name])
    for k in ("beta_kl", "beta_rec", "beta_neg"):
        if getattr(args, k) is not None:
            hp[k] = getattr(args, k)
    half = _DATA[name][1]

    sg.manual_seed(args.seed)
    data = toy_points(name, args.pool, seed=args.seed)
    loader = DataLoader(ArrayDataset(data), batch_size=args.batch_size, shuffle=True,
                        drop_last=True, seed=args.seed, device=args.device)
    model = build_model(args)
    milestones = [int(m) for m in args.milestones.split(",") if m.strip()]
    step = SoftIntroVAETrainStep(model, gamma_r=args.gamma_r, lr_e=args.lr, lr_d=args.lr,
                                 milestones=milestones, vae_warmup_steps=args.vae_warmup, **hp)
    print(f"Soft-IntroVAE on {name}: {model.num_parameters()} parameters, {hp}, "
          f"gamma_r={args.gamma_r}, batch {args.batch_size}, {args.steps} steps "
          f"({args.vae_warmup} VAE warm-up), lr {args.lr} /10 at {milestones}")
    trainer = Trainer(step, loader, out, max_steps=args.steps, modules={"model": model},
                      log_every=250, checkpoint_every=2000,
                      checkpoint_seconds=args.checkpoint_every,
                      allow_nonfinite=args.allow_nonfinite, resume=args.resume, seed=args.seed)
    fit = trainer.fit()
    adversarial = max(0, args.steps - args.vae_warmup)
    print(f"trained {fit.step} steps in {fit.seconds:.0f} s "
          f"({1000 * fit.seconds / max(fit.step, 1):.1f} s per 1000 steps)")

    # ---- pictures and numbers -------------------------------------------------------------------
    extent = (-half, half, -half, half)
    rng_state = sg.backend.get_rng_state()
    sg.manual_seed(args.seed + 12345)
    fake = model_samples(model, args.eval_samples)
    real = toy_points(name, args.eval_samples, seed=args.seed + 777)
    scatter_2d(fake[:5000], None, out / "samples.png", title=f"Soft-IntroVAE samples ({name})",
               extent=extent, point_radius=1.2, xlabel="x", ylabel="y")
    scatter_2d(real[:5000], None, out / "real.png", title=f"data ({name})", extent=extent,
               point_radius=1.2, xlabel="x", ylabel="y")
    dens = grid_density(model, half, args.grid)
    density_plot(dens, extent, out / "density.png",
                 title="Soft-IntroVAE density exp(ELBO), normalized", colorbar_label="mass")
    sg.backend.set_rng_state(rng_state)
    ours = sample_divergences(real, fake, bins=args.bins, range=half, eps=1e-10)
    code = soft_intro_vae_code_divergences(real, fake, bins=args.bins, xy_range=(-half, half))
    metrics = {
        "dataset": name, "steps": fit.step, "adversarial_steps": adversarial,
        "hyperparameters": hp | {"gamma_r": args.gamma_r, "z_dim": args.z_dim,
                                 "hidden": args.hidden, "n_layers": args.n_layers,
                                 "batch_size": args.batch_size, "lr": args.lr,
                                 "milestones": milestones, "vae_warmup": args.vae_warmup},
        "kl_real_to_model": ours["kl"], "jsd": ours["jsd"],
        "outside_fraction_model": ours["outside_fake"],
        "kl_code_convention": code["kl"], "jsd_code_convention": code["jsd"],
        "bins": args.bins, "eval_samples": args.eval_samples,
        "seconds": fit.seconds, "seconds_per_1000_steps": 1000 * fit.seconds / max(fit.step, 1),
        "final_losses": fit.losses,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"KL(real || model) = {ours['kl']:.4f} nats, JSD = {ours['jsd']:.4f} nats "
          f"(<= log 2 = {math.log(2):.4f}); {100 * ours['outside_fake']:.2f}% of samples outside "
          f"the box")
    print(f"official-code convention: KL {code['kl']:.4f}, JSD {code['jsd']:.4f}")
    print(f"wrote {out / 'samples.png'}, {out / 'density.png'}, {out / 'real.png'}, "
          f"{out / 'metrics.json'}")
    return metrics


def sample(run: str | pathlib.Path, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """n points G(z), z ~ N(0, I) drawn from ``seed``, of a ``soft-intro-vae-toy`` run's newest
    checkpoint: float32 (n, 2). The model is unconditional: ``label`` must be None."""
    if label is not None:
        raise ValueError(f"--label {label}: the soft-intro-vae-toy model is unconditional "
                         "(it has no classes)")
    opts = argparse.Namespace(**read_run_config(run, "soft-intro-vae-toy")["options"])
    opts.device = device
    model = build_model(opts)
    model.load_state_dict(load_run_state(run, device)["modules"]["model"])
    with isolated_rng(seed):
        return model_samples(model, n).astype(np.float32)


def evaluate(run: str | pathlib.Path, device: str = "cpu", samples: int | None = None
             ) -> dict:
    """Histogram divergences between real and generated points of a ``soft-intro-vae-toy``
    run's newest checkpoint, as the run's metrics.json reports them (``scratchgen.metrics.toy``,
    the run's ``--bins`` over its plot box): ``"kl_real_to_model"`` (nats, eps = 1e-10),
    ``"jsd"`` (nats, at most log 2), ``"outside_fraction_model"`` (generated points outside the
    box), ``"kl_code_convention"`` / ``"jsd_code_convention"`` (the official code's
    ``calculate_sample_kl``), with ``"dataset"``, ``"samples"``, ``"bins"`` and ``"step"``. The
    points are drawn from the run's seeds as training's end does, so the same options give the
    same figures.

    Args:
        samples: real and generated points in each histogram; None: the run's
            --eval-samples
    """
    opts = argparse.Namespace(**read_run_config(run, "soft-intro-vae-toy")["options"])
    n = opts.eval_samples if samples is None else samples
    if n < 1:
        raise ValueError(f"--samples {n}: must be at least 1")
    opts.device = device
    name = _ALIASES[opts.dataset.lower()]
    half = _DATA[name][1]
    state = load_run_state(run, device)
    model = build_model(opts)
    model.load_state_dict(state["modules"]["model"])
    with isolated_rng(opts.seed + 12345):
        fake = model_samples(model, n)
    real = toy_points(name, n, seed=opts.seed + 777)
    ours = sample_divergences(real, fake, bins=opts.bins, range=half, eps=1e-10)
    code = soft_intro_vae_code_divergences(real, fake, bins=opts.bins, xy_range=(-half, half))
    return {"kl_real_to_model": float(ours["kl"]), "jsd": float(ours["jsd"]),
            "outside_fraction_model": float(ours["outside_fake"]),
            "kl_code_convention": float(code["kl"]), "jsd_code_convention": float(code["jsd"]),
            "dataset": name, "samples": n, "bins": opts.bins, "step": int(state["step"])}


if __name__ == "__main__":
    main()
