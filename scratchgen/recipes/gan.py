"""A GAN with MLPs (Goodfellow et al. 2014) and PacGAN (Lin et al. 2018) on 2-D mixtures or digits.

    scratchgen train gan --data ring            # 8 Gaussians (std 0.01) on the unit circle
    scratchgen train gan --data grid            # 25 Gaussians (std 0.05) on {-4, -2, 0, 2, 4}^2
    scratchgen train gan --data ring --pack 1 --batch-size 100 --ema 0   # the plain GAN
    scratchgen train gan --data digits          # the embedded digits, resized to 28x28
    scratchgen train gan --data mnist --data-dir ../shared/data/mnist
    scratchgen sample runs/gan-ring --n 2500 --out samples.npy

The defaults on the ring and the grid are PacGAN4 (``--pack 4``: D judges packs of 4 samples; a
batch of 400 samples of each kind is 100 packs, the paper's batch), with a generator of 3 hidden
layers of 128 ReLU units and a discriminator of 3 hidden layers of 128 LeakyReLU(0.2) units,
PyTorch's initialization, the non-saturating L_G, Adam at lr 3e-3 with betas (0.5, 0.999) for
both networks, both learning rates falling linearly to 0 over the second half of training, and
samples drawn from an EMA (decay 0.999) of G's weights; 20,000 updates on the ring; 100,000 on
the grid, where D's loss also carries the R1 penalty (``--r1 0.3``: (gamma/2) E_x ||grad_x
l(x)||^2 on real samples, Mescheder et al. 2018; the mean runs over the samples, not the packs,
so a pack's squared gradient norm enters divided by the pack size). On images (28 x 28, pixels
in [0, 1]) G maps a 64-d z through 2 hidden layers of 512 units (batch norm, ReLU) to a sigmoid
output, D has 2 hidden layers of 256 maxout units of 5 pieces (Goodfellow et al.'s MNIST
discriminator used maxout too); Adam at 2e-4 with betas (0.5, 0.999), batches of 64, no packing,
no EMA (batch norm), no R1.

Measured on 2-core machines (ring and grid: the commands as written, the machine otherwise idle;
digits and MNIST: ``OPENBLAS_NUM_THREADS=1``, the machine shared with other jobs):

    scratchgen train gan --data ring     # 20,000 updates in 74 s (269/s): 8 of 8 modes,
                                         # 98.0% high quality, reverse KL 0.004
    scratchgen train gan --data grid     # 100,000 updates in 8 min 18 s (201/s): 25 of 25
                                         # modes, 96.1% high quality, reverse KL 0.011
    scratchgen train gan --data digits   # 6,000 updates in 2 min 22 s (42/s): noisy but
                                         # recognisable digits, several classes
    scratchgen train gan --data mnist --data-dir ../shared/data/mnist   # 33 updates/s

and, one thread per run, two runs at a time:

    scratchgen bench modes --jobs 2   # 10 seeds, the defaults' updates, 71 min on 2 cores

    config   data  updates  modes       all 8/25   HQ %         worst  reverse KL       s/run
    GAN      ring    20000   7.8 +- 0.2   9 of 10   97.9 +- 0.1  97.2   0.077 +- 0.035     50
    PacGAN4  ring    20000   8.0 +- 0.0  10 of 10   98.2 +- 0.1  97.4   0.003 +- 0.001     65
    GAN      grid   100000  15.0 +- 1.3   0 of 10   97.4 +- 0.2  96.2   0.783 +- 0.118    259
    PacGAN4  grid   100000  25.0 +- 0.0  10 of 10   96.2 +- 0.3  94.0   0.008 +- 0.001    453

(HQ: % of high-quality samples; worst: the lowest seed's. "GAN" is the same networks and
schedule with ``--pack 1 --batch-size 100 --ema 0 --r1 0``; PacGAN's Table 1 has GAN 6.3 +- 0.5
of 8 (98.2%) and 17.3 +- 0.8 of 25 (94.8%), PacGAN4 7.8 +- 0.1 (95.9%) and 24.8 +- 0.2 (93.6%),
after 400,000 updates.) Packing is what covers the modes: every seed of PacGAN4 captures all of
them, while the plain GAN, as precise, drops modes, on the grid more with longer training (20.5
of 25 after 30,000 updates, 15.0 after 100,000). R1 is what makes the grid's PacGAN4 precise
(below).

Why not the paper's setting. PacGAN's runs (``synthetic_data_experiments`` of the official
code) make 400,000 updates at lr 1e-4 with a 4 x 400 batch-norm generator and a 3 x 200
maxout discriminator: here 30-40 ms per update with packs of 4 on one core, 4 hours a run.
In a budget of minutes two things decide the outcome (seed 0, measured on a shared machine):

* the learning rate. A discriminator resolves modes of std 0.05 spaced 2 apart only with
  first-layer weights of order 1/0.05, and Adam moves a weight by about lr per update; the
  generator likewise needs large weights for steep transitions between modes. On the grid,
  with the schedule below, lr 1e-3 left 2-8% of the samples within 3 std of a mode after
  8,000-15,000 updates (four PacGAN4 runs, several network sizes), while lr 3e-3 reached 93%
  in 10,000 (the plain GAN). The small networks make the many updates affordable: 3-5 ms per
  update with packs of 4, against 30-40 ms for the paper's.
* the schedule. Precision comes while the learning rates fall: on the grid the high-quality
  fraction is 4% when the decay starts and 84% at its end after 30,000 updates, 92% after
  60,000 (25 of 25 modes both); the EMA generator is ahead of the live one while the rates
  are high, and they agree at the end.

R1 on the grid. The samples that miss the grid's modes lie on bridges between neighbouring
modes, where G's map from the 2-D latent plane jumps from one mode to the next. R1 penalises D's
slope at the real points, which is zero at the equilibrium; it damps the two networks' rotation
around that equilibrium (Mescheder et al. 2018; the DiracGAN in
``tests/theory/test_gan_theory.py``); in these runs the bridges thinned. PacGAN4, seed 0, 30,000
updates: gamma 0 gave 83.8% high quality and reverse KL 0.129; gamma 0.01 65.6% and 0.174; 0.1
90.2% and 0.024; 1 86.7% and 0.010. With gamma 0.3 and 60,000 updates seeds 0-4 gave 95.2, 95.3,
95.5, 94.1 and 95.4% (25 of 25 modes each, reverse KL 0.006-0.012; gamma 1: 93.7% on seed 0);
100,000 updates raised seed 3 from 94.1 to 95.3%. On the ring (modes of std 0.01) gamma 0.3 kept
all 8 modes on seeds 0-9 but lowered the high-quality fraction from 97.4-98.8% to 95.8-97.4%, so
the ring's default has no R1.

What did not help (grid, seed 0, at most 30,000 updates): batch norm in G, at lr 3e-3 with or
without packing (16 and 19 modes, 86% and 5% high quality at 10,000 updates); a maxout D or a
D of width 256 for packs of 4; beta_1 = 0; R1 with gamma 0.1 (at lr 1e-3); a z of 8
dimensions (96% high quality but 11 of 25 modes); truncating z when sampling. With batch norm
the EMA must not be used as is: ``EMA`` copies G's live running statistics, which need not fit
the averaged weights (on the ring the EMA copy of a batch-norm G held 1 mode where the live G
held 5). Packing costs precision on the grid at a fixed budget (10,000 updates: PacGAN4 17
modes and 4% high quality, the plain GAN 22 modes and 93%) but it is what captures every mode
and balances them (on the ring at lr 1e-3 and 10,000 updates: reverse KL 0.001 against 0.4-0.5
without), so the default pays for it with more updates.

Writes to --out (default runs/gan-DATA): config.json (the options, for ``scratchgen sample``),
the Trainer's metrics.jsonl and checkpoint.npz (``--resume`` continues), samples/step_*.png
(the same fixed noise through G every --sample-every steps: over the real modes for toy data),
samples.png at the end (2,500 samples over the modes, each mode drawn as its 3-std circle; an
8 x 8 grid for images) and metrics.json (for toy data the mode coverage of 2,500 samples with
the PacGAN protocol: modes captured, % high-quality samples, reverse KL).
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
from typing import Any, Callable

import numpy as np

import scratchgen as sg
from scratchgen.data import MNIST, ArrayDataset, DataLoader, Digits
from scratchgen.data.toy import ToySet, toy_dataset
from scratchgen.metrics.modes import MODE_SETTINGS, mode_setting, setting_coverage
from scratchgen.models.gan import MLPDiscriminator, MLPGenerator
from scratchgen.models.gan_training import GANTrainStep, restore_generator, sample_latents
from scratchgen.optim.lr_scheduler import LinearDecayLR
from scratchgen.train import (
    Trainer, load_run_state, read_run_config, save_image_grid, scatter_2d, write_run_config,
)
from scratchgen.train.checkpoint import isolated_rng

DATASETS = ("ring", "grid", "digits", "mnist")
LOSSES = ("minimax", "non-saturating")

#: the two mixtures of PacGAN's Table 1 (``MODE_SETTINGS``), and the half-width of their plots
TOY = {"ring": 1.5, "grid": 5.5}

#: options left unset on the command line take these values, per data set
_TOY_DEFAULTS = dict(batch_size=400, pack=4, lr=3e-3, lr_decay=0.5, beta1=0.5,
                     beta2=0.999, z_dim=2, g_hidden=128, g_layers=3, batch_norm=False,
                     d_hidden=128, d_layers=3, maxout=0, init="pytorch", ema=0.999, r1=0.0,
                     size=None)
_IMAGE_DEFAULTS = dict(batch_size=64, pack=1, lr=2e-4, lr_decay=0.0, beta1=0.5, beta2=0.999,
                       z_dim=64, g_hidden=512, g_layers=2, batch_norm=True, d_hidden=256,
                       d_layers=2, maxout=5, init="pytorch", ema=0.0, r1=0.0, size=28)
DEFAULTS: dict[str, dict[str, Any]] = {
    "ring": dict(_TOY_DEFAULTS, steps=20_000),
    "grid": dict(_TOY_DEFAULTS, steps=100_000, r1=0.3),
    "digits": dict(_IMAGE_DEFAULTS, steps=6000),
    "mnist": dict(_IMAGE_DEFAULTS, steps=10000),
}

#: options a resumed run takes from the command line; the others come from its config.json
#: (the learning-rate schedule, checkpointed with the run, is fixed by the stored --steps)
RESUME_OVERRIDES = ("device", "resume", "out")


def parser() -> argparse.ArgumentParser:
    """This script's command line; options left at None take ``DEFAULTS[--data]``."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="ring", help="ring, grid (2-D mixtures), digits, mnist")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    p.add_argument("--size", type=int, default=None, help="image side (digits: any; mnist: 28)")
    p.add_argument("--loss", default="non-saturating", help="minimax or non-saturating (L_G)")
    p.add_argument("--pack", type=int, default=None,
                   help="PacGAN: samples per discriminator input (1: the plain GAN)")
    p.add_argument("--steps", type=int, default=None, help="discriminator (= generator) updates")
    p.add_argument("--batch-size", type=int, default=None,
                   help="samples of each kind per update (batch-size / pack packs)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate of G and D")
    p.add_argument("--lr-decay", type=float, default=None,
                   help="fraction of the steps, at the end, over which both learning rates "
                        "fall linearly to 0 (0: constant)")
    p.add_argument("--beta1", type=float, default=None)
    p.add_argument("--beta2", type=float, default=None)
    p.add_argument("--z-dim", type=int, default=None)
    p.add_argument("--g-hidden", type=int, default=None, help="G's hidden width")
    p.add_argument("--g-layers", type=int, default=None, help="G's hidden layers")
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="batch norm in G's hidden layers")
    p.add_argument("--d-hidden", type=int, default=None, help="D's hidden width")
    p.add_argument("--d-layers", type=int, default=None, help="D's hidden layers")
    p.add_argument("--maxout", type=int, default=None,
                   help="maxout pieces of D's units (0: Linear + LeakyReLU(0.2) instead)")
    p.add_argument("--init", default=None, help="paper (N(0, 0.02^2)) or pytorch")
    p.add_argument("--ema", type=float, default=None,
                   help="decay of the EMA of G's weights used for sampling (0: no EMA)")
    p.add_argument("--r1", type=float, default=None,
                   help="gamma of the R1 penalty (gamma/2) E||grad_x l(x)||^2 on real samples "
                        "added to D's loss (Mescheder et al. 2018; 0: none)")
    p.add_argument("--truncation", type=float, default=None,
                   help="sample with z redrawn outside [-t, t] (default: no truncation)")
    p.add_argument("--sample-every", type=int, default=None,
                   help="fixed-noise picture every this many steps (default steps / 10)")
    p.add_argument("--eval-samples", type=int, default=2500, help="samples for mode coverage")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", default=None, help="run folder (default runs/gan-DATA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    return p


def _positive(args: argparse.Namespace, name: str, allow_zero: bool = False) -> None:
    v = getattr(args, name)
    if v is None or (math.isfinite(v) and (v > 0 or (allow_zero and v == 0))):
        return
    flag = "--" + name.replace("_", "-")
    raise SystemExit(f"{flag} {v}: must be {'>= 0' if allow_zero else 'positive'} and finite")


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Check the options (one-line SystemExit naming the flag) and fill the unset ones with the
    data set's defaults; returns ``args`` completed."""
    data = args.data.lower()
    if data not in DATASETS:
        raise SystemExit(f"--data {args.data}: unknown data set (choose one of "
                         f"{', '.join(DATASETS)})")
    args.data = data
    if args.loss not in LOSSES:
        raise SystemExit(f"--loss {args.loss}: unknown loss (choose one of {', '.join(LOSSES)})")
    for name, value in DEFAULTS[data].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("steps", "batch_size", "pack", "lr", "z_dim", "g_hidden", "g_layers",
                 "d_hidden", "d_layers", "sample_every", "eval_samples", "truncation", "size"):
        _positive(args, name)
    for name in ("maxout", "ema", "r1"):
        _positive(args, name, allow_zero=True)
    if not 0 <= args.lr_decay <= 1:
        raise SystemExit(f"--lr-decay {args.lr_decay}: must be a fraction in [0, 1]")
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(args, name) < 1:
            raise SystemExit(f"--{name} {getattr(args, name)}: must be in [0, 1)")
    if args.ema >= 1:
        raise SystemExit(f"--ema {args.ema}: the decay must be below 1 (0 turns the EMA off)")
    if args.init not in ("paper", "pytorch"):
        raise SystemExit(f"--init {args.init}: choose paper or pytorch")
    if args.batch_size % args.pack:
        raise SystemExit(f"--pack {args.pack} does not divide --batch-size {args.batch_size}")
    if args.data in TOY:
        args.size = None
    elif args.data == "mnist" and args.size != 28:
        raise SystemExit(f"--size {args.size}: MNIST images are 28x28")
    if args.sample_every is None:
        args.sample_every = max(1, args.steps // 10)
    if args.out is None:
        args.out = f"runs/gan-{data}"
    return args


# ---- data -----------------------------------------------------------------------------------

def toy_set(name: str, n: int, seed: int | None) -> ToySet:
    """n points of the ring (8 Gaussians, std 0.01, radius 1) or the grid (25 Gaussians,
    std 0.05, spacing 2) and the mixture means."""
    return toy_dataset(name, n, seed=seed, **MODE_SETTINGS[name])


def load_images(name: str, size: int, data_dir: str | None) -> np.ndarray:
    """The training images, (N, 1, size, size) float32 in [0, 1]."""
    if name == "digits":
        return Digits(train=True, size=size).images
    ds = MNIST(train=True, data_dir=data_dir) if data_dir else MNIST(train=True)
    return ds.images.astype(np.float32) / 255.0


def training_data(args: argparse.Namespace) -> np.ndarray:
    """The array the loader draws batches from: 100,000 mixture points (the official code's
    ``num_sample``), or the training images."""
    if args.data in TOY:
        return toy_set(args.data, 100_000, seed=args.seed).points
    return load_images(args.data, args.size, args.data_dir)


# ---- networks ---------------------------------------------------------------------------------

def sample_shape(opts: dict[str, Any]) -> tuple[int, ...]:
    """The shape of one sample: (2,) for points, (1, size, size) for images."""
    return (2,) if opts["data"] in TOY else (1, opts["size"], opts["size"])


def build_networks(opts: dict[str, Any]) -> tuple[MLPGenerator, MLPDiscriminator]:
    """G and D as the options (``vars(args)`` or a run's stored options) describe them, on
    ``opts["device"]``."""
    shape = sample_shape(opts)
    dim = math.prod(shape)
    images = opts["data"] not in TOY
    G = MLPGenerator(opts["z_dim"], dim, opts["g_hidden"], opts["g_layers"],
                     batch_norm=opts["batch_norm"], output="sigmoid" if images else "linear",
                     out_shape=shape if images else None, init=opts["init"])
    D = MLPDiscriminator(dim, opts["d_hidden"], opts["d_layers"], pack=opts["pack"],
                         maxout=opts["maxout"] or None, init=opts["init"])
    device = opts.get("device", "cpu")
    return G.to(device), D.to(device)


def build_step(G: MLPGenerator, D: MLPDiscriminator, opts: dict[str, Any]) -> GANTrainStep:
    """Algorithm 1 with the options' loss, Adam settings, R1 penalty and EMA."""
    return GANTrainStep(G, D, d_loss="bce", g_loss=opts["loss"], lr_g=opts["lr"],
                        lr_d=opts["lr"], betas=(opts["beta1"], opts["beta2"]),
                        r1_gamma=opts.get("r1", 0.0), ema_decay=opts["ema"] or None)


def lr_schedules(step: GANTrainStep, steps: int, decay: float) -> dict[str, LinearDecayLR]:
    """Both learning rates constant, then linearly down to 0 over the last ``decay * steps``
    updates (stepped by the Trainer after every update); none when ``decay`` is 0."""
    n_decay = int(round(decay * steps))
    if n_decay == 0:
        return {}
    return {name: LinearDecayLR(opt, steps - n_decay, n_decay)
            for name, opt in (("lr_g", step.opt_g), ("lr_d", step.opt_d))}


def generate(G: MLPGenerator, n: int, truncation: float | None = None,
             batch: int = 10_000) -> np.ndarray:
    """n samples of G (as it is: call inside ``step.sampling()`` for the EMA weights), float32
    on the host, drawn in batches."""
    like = next(iter(G.parameters()))
    out = []
    with sg.no_grad():
        for s in range(0, n, batch):
            z = sample_latents(min(batch, n - s), G.z_dim, like, truncation)
            out.append(G(z).numpy().astype(np.float32))
    if not out:
        return np.zeros((0, *(G.out_shape or (G.out_dim,))), np.float32)
    return np.concatenate(out)


# ---- pictures and numbers ---------------------------------------------------------------------

def mode_circles(means: np.ndarray, radius: float, points: int = 48) -> np.ndarray:
    """Points on the circle of ``radius`` around each mean (the modes drawn as outlines)."""
    t = 2 * np.pi * np.arange(points) / points
    ring = radius * np.stack([np.cos(t), np.sin(t)], axis=1)
    return (means[:, None, :] + ring[None]).reshape(-1, 2)


def plot_over_modes(samples: np.ndarray, data: str, path: pathlib.Path, title: str) -> None:
    """Samples (blue) over the real modes (each its circle of 3 standard deviations, orange:
    a sample inside one is a high-quality sample of that mode)."""
    means, std = mode_setting(data)
    circles = mode_circles(means, 3 * std)
    half = TOY[data]
    pts = np.concatenate([samples.reshape(-1, 2), circles])
    labels = np.array(["samples"] * len(samples) + ["modes (3 std)"] * len(circles))
    scatter_2d(pts, labels, path, title=title, extent=(-half, half, -half, half),
               point_radius=1.2, xlabel="x1", ylabel="x2")


def toy_sample_hook(step: GANTrainStep, fixed_z: sg.Tensor, data: str
                    ) -> Callable[[int, pathlib.Path], None]:
    """The Trainer's ``on_sample``: G(fixed_z) (EMA weights if any) over the modes."""
    def on_sample(step_no: int, folder: pathlib.Path) -> None:
        with step.sampling() as G:
            x = G(fixed_z).numpy()
        plot_over_modes(x, data, folder / f"step_{step_no:06d}.png",
                        f"G(fixed z) at step {step_no}")
    return on_sample


def image_sample_hook(step: GANTrainStep, fixed_z: sg.Tensor) -> Callable[[int, pathlib.Path], Any]:
    """The Trainer's ``on_sample`` for images: G(fixed_z), saved by the Trainer as a grid."""
    def on_sample(step_no: int, folder: pathlib.Path) -> Any:
        with step.sampling() as G:
            return G(fixed_z).numpy()
    return on_sample


# ---- training ---------------------------------------------------------------------------------

def train(args: argparse.Namespace, out: pathlib.Path | None, progress: bool = True
          ) -> tuple[GANTrainStep, Any]:
    """Build G, D and the train step from resolved ``args`` and train them for ``args.steps``
    updates (into the run folder ``out``, or without writing anything when it is None).
    Returns the train step (holding G, D and the EMA) and the Trainer's FitResult."""
    opts = vars(args)
    sg.manual_seed(args.seed)
    data = training_data(args)
    loader = DataLoader(ArrayDataset(data), batch_size=args.batch_size, shuffle=True,
                        drop_last=True, seed=args.seed, device=args.device)
    G, D = build_networks(opts)
    step = build_step(G, D, opts)
    fixed_z = sg.randn(2500 if args.data in TOY else 64, args.z_dim, device=args.device)
    if args.data in TOY:
        hook = toy_sample_hook(step, fixed_z, args.data)
    else:
        hook = image_sample_hook(step, fixed_z)
    trainer = Trainer(step, loader, out, max_steps=args.steps,
                      modules={"generator": G, "discriminator": D},
                      schedulers=lr_schedules(step, args.steps, args.lr_decay),
                      log_every=max(1, min(250, args.steps // 10)),
                      sample_every=args.sample_every if out is not None else None,
                      on_sample=hook if out is not None else None,
                      sample_value_range=(0.0, 1.0),
                      checkpoint_every=max(1, args.steps // 5) if out is not None else None,
                      resume=args.resume, seed=args.seed, progress=progress)
    return step, trainer.fit()


def final_samples(step: GANTrainStep, args: argparse.Namespace, seed: int) -> np.ndarray:
    """``args.eval_samples`` samples of the trained G (EMA weights if any), on their own random
    numbers (``seed``)."""
    with isolated_rng(seed), step.sampling() as G:
        return generate(G, args.eval_samples, args.truncation)


def _options_for_resume(args: argparse.Namespace, out: pathlib.Path) -> argparse.Namespace:
    """A resumed run keeps its stored options, but for those in ``RESUME_OVERRIDES``."""
    stored = read_run_config(out, "gan")["options"]
    stored.setdefault("r1", 0.0)  # runs stored before --r1 existed trained without it
    for k, v in stored.items():
        if k not in RESUME_OVERRIDES or getattr(args, k, None) is None:
            setattr(args, k, v)
    print(f"resuming {out} with the options of its {out / 'config.json'}")
    return args


def main(argv: list[str] | None = None) -> dict:
    p = parser()
    args = p.parse_args(argv)
    if args.resume and args.out is not None and (pathlib.Path(args.out) / "config.json").is_file():
        args = _options_for_resume(args, pathlib.Path(args.out))
        args.resume = True
    args = resolve(args)
    out = pathlib.Path(args.out)
    if not args.resume and (out / "checkpoint.npz").exists():
        raise SystemExit(f"--out {out}: already holds a run (pass --resume to continue it, or "
                         "choose another --out)")
    write_run_config(out, "gan", args)
    if args.batch_norm and args.ema:
        print(f"note: --ema {args.ema} with --batch-norm: the EMA generator keeps G's live "
              "running statistics, which need not fit its averaged weights")

    name = "PacGAN" + str(args.pack) if args.pack > 1 else "GAN"
    print(f"{name} on {args.data}: {args.loss} L_G, batch {args.batch_size} "
          f"({args.batch_size // args.pack} packs of {args.pack}), {args.steps} steps, "
          f"Adam lr {args.lr} betas ({args.beta1}, {args.beta2}), EMA {args.ema or 'off'}")
    step, fit = train(args, out)
    print(f"trained {fit.step} steps in {fit.seconds:.0f} s "
          f"({fit.step / max(fit.seconds, 1e-9):.1f} steps/s)")

    samples = final_samples(step, args, seed=args.seed + 12345)
    metrics: dict[str, Any] = {
        "data": args.data, "model": name, "steps": fit.step, "seconds": fit.seconds,
        "steps_per_second": fit.step / max(fit.seconds, 1e-9), "final_losses": fit.losses,
        "generator_parameters": step.G.num_parameters(),
        "discriminator_parameters": step.D.num_parameters(),
    }
    if args.data in TOY:
        plot_over_modes(samples, args.data, out / "samples.png",
                        f"{name}: {len(samples)} samples over the {args.data} modes")
        cov = setting_coverage(args.data, samples)
        metrics["mode_coverage"] = cov
        print("mode coverage: " + ", ".join(f"{k} {v}" for k, v in cov.items()
                                              if not isinstance(v, (list, dict))))
    else:
        save_image_grid(samples[:64], out / "samples.png", nrow=8, value_range=(0, 1),
                        caption="64 samples G(z), z ~ N(0, I)",
                        scale=max(1, 64 // args.size))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    print(f"wrote {out / 'samples.png'}, {out / 'metrics.json'}")
    return metrics


# ---- sampling from a finished run -------------------------------------------------------------

def sample(run: pathlib.Path, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """n samples of a run's generator (the EMA weights when it kept them), float32: (n, 2)
    points for toy data, (n, 1, size, size) images in [0, 1] otherwise."""
    if label is not None:
        raise ValueError(f"--label {label}: the GAN is unconditional (it has no classes)")
    opts = dict(read_run_config(run, "gan")["options"])
    opts["device"] = device
    G, _ = build_networks(opts)
    restore_generator(G, load_run_state(run, device), opts.get("ema"))
    with isolated_rng(seed):
        return generate(G, n, opts.get("truncation"))



def evaluate(run: pathlib.Path, device: str = "cpu", samples: int = 2500, seed: int = 0
             ) -> dict[str, Any]:
    """Mode coverage (PacGAN's protocol, ``scratchgen.metrics.modes``) of a ring or grid run's
    newest checkpoint.

    Args:
        samples: how many samples to draw (PacGAN's tables use 2,500)
        seed: seeds the samples' noise
    """
    data = read_run_config(run, "gan")["options"]["data"]
    if data not in MODE_SETTINGS:
        raise ValueError(f"{run}: mode coverage is defined for the ring and grid runs, not for "
                         f"--data {data}")
    points = sample(run, samples, seed=seed, device=device)
    return {"data": data, **setting_coverage(data, points)}


if __name__ == "__main__":
    main()
