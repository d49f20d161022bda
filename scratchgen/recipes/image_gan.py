"""The recipe every image GAN example shares: options, data, training, sampling (the pictures and
the evaluation are in ``image_gan_outputs``).

Each model's example (``dcgan``, ``cgan``, ``lsgan``, ``wgan_gp``, ``sngan``, ``sagan``) is a
``Recipe``: its name, its defaults (losses, Adam settings, n_dis, sizes) and how to build its
two networks from the options; ``main(recipe, argv)`` does the rest:

1. data: the embedded digits (default; resampled to ``--image-size``, 28 by default) or MNIST
   from ``--data-dir`` (28x28, or 32x32 with two pixels of black padding), with their labels,
   scaled from [0, 1] to the tanh range [-1, 1];
2. a new run folder with ``config.json`` (the options, for ``scratchgen sample RUN``; a run
   is continued with ``--resume``, which may change only how long it runs and what is drawn
   and measured at the end), then the ``Trainer`` over ``GANTrainStep`` (one discriminator
   update per batch, a generator update every n_dis-th), with checkpoints every
   ``--sample-every`` steps and exact resume; every ``--sample-every`` steps the same fixed
   latents (and, for a conditional model, one row per class) are drawn into
   ``samples/step_*.png``;
3. at the end, with the generator in eval mode holding its EMA weights when ``--ema`` was given:
   ``samples.png`` (64 samples, or one row per class; truncated with ``--truncation``),
   ``interpolation.png`` (pairs of latents, each walked linearly then spherically),
   ``arithmetic.png`` (latent arithmetic on the classes the shipped classifier sees; an
   unconditional model on digits or MNIST), ``losses.png`` and ``metrics.json``: seconds per
   epoch and, with ``--eval`` (default for MNIST), the metrics of ``scratchgen.metrics`` on
   the shipped classifier's features.

The evaluation puts every figure next to its real-vs-real baseline: the generator's samples are
compared with the test images, and so are as many training images, so the baseline says what
a perfect generator would score at this sample count (FD and KID of two samples of the same
distribution are not 0; precision and recall not 1). Both use ``--eval-samples`` images (10,000
for MNIST; at most the 297 test images of the digits). Untruncated samples are evaluated.
Unconditional models also get the class histogram of their samples and its KL to the uniform
distribution (the baseline's: that of the training images); conditional ones the fraction of
samples the classifier puts in the class they were asked for (next to the classifier's
accuracy on the test images).
"""
from __future__ import annotations

import argparse
import json
import pathlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import scratchgen as sg
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.models import gan_tools
from scratchgen.models.gan_training import GANTrainStep, restore_generator
from scratchgen.train import (
    MAY_CHANGE, RunError, TimedStep, Trainer, given_options, isolated_rng, load_run_state,
    plot_curves, prepare_run_folder, read_metrics, read_run_config,
)
from scratchgen.recipes.image_gan_outputs import (
    classifier_for, classifier_view, draw_final_pictures, evaluate, fixed_latents,
    host_images01, labelled_rows, print_evaluation, sample_hook,
)
from scratchgen.train.options import (
    ArgumentParser, add_run_options, data_errors, device, flag_error, fraction, nonnegative_int,
    positive_float, positive_int,
)

__all__ = ["Recipe", "parser", "resolve_defaults", "check_options", "main", "sample",
           "load_generator", "load_data", "build", "classifier_view", "evaluate", "evaluate_run",
           "labelled_rows", "entry_points", "DATA_SETS", "RESUME_MAY_CHANGE"]

DATA_SETS = ("digits", "mnist")
NUM_CLASSES = 10
#: Options a resumed run may change besides ``MAY_CHANGE``: they shape only the pictures and
#: the evaluation made at the end.
RESUME_MAY_CHANGE = ("eval", "eval_samples", "truncation", "equation", "sample_every")


@dataclass
class Recipe:
    """What one GAN example brings to the shared recipe.

    ``defaults`` holds the paper's settings: ``d_loss``, ``g_loss``, ``lr_g``, ``lr_d``,
    ``betas``, ``n_dis``, ``gp_lambda``, ``z_dim``, ``width``, ``batch_size``, and
    ``image_size``; ``epochs`` the default length of a run on each data set, and
    ``digits`` the settings that replace the paper's on the small embedded set (narrower
    networks and smaller batches, so that the default run is a few CPU minutes). ``build(opts)``
    makes (G, D) from the options (a dict: ``vars(args)`` or a run's stored options);
    ``add_arguments`` adds the model's own flags; ``check(opts)`` raises ``SystemExit`` for
    options the model cannot take. A generator with ``num_classes`` set is trained on
    (image, label) batches and drawn class by class.
    """

    name: str
    title: str
    doc: str
    defaults: dict[str, Any]
    build: Callable[[dict[str, Any]], tuple[Any, Any]]
    epochs: dict[str, int] = field(default_factory=lambda: {"digits": 100, "mnist": 5})
    digits: dict[str, Any] = field(default_factory=dict)
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    check: Callable[[dict[str, Any]], None] | None = None


# ---- options ----------------------------------------------------------------------------------

def parser(recipe: Recipe) -> argparse.ArgumentParser:
    """The example's command line: the shared options and the model's own. A value of the
    wrong type or range is refused by argparse with one line naming the flag."""
    d = recipe.defaults
    small = recipe.digits

    def per_data(key: str) -> str:
        return f"default {d[key]}" + (f"; {small[key]} on the digits" if key in small else "")

    p = ArgumentParser(description=recipe.doc,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=DATA_SETS, default="digits",
                   help="digits (embedded, default) or mnist")
    p.add_argument("--data-dir", default=None, help="folder with the four MNIST files")
    p.add_argument("--image-size", type=positive_int, default=d.get("image_size", 28),
                   help="image side (digits: resampled; mnist: 28, or 32 padded)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"passes over the data (default {recipe.epochs['digits']} on digits, "
                        f"{recipe.epochs['mnist']} on mnist); each batch is one D update")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="stop after this many discriminator updates instead")
    p.add_argument("--batch-size", type=positive_int, default=None, help=per_data("batch_size"))
    p.add_argument("--z-dim", type=positive_int, default=d["z_dim"],
                   help=f"latent size (default {d['z_dim']})")
    p.add_argument("--width", type=positive_int, default=None,
                   help="base number of channels of both networks (" + per_data("width") + ")")
    p.add_argument("--lr-g", type=positive_float, default=d["lr_g"],
                   help=f"Adam learning rate of G (default {d['lr_g']:g})")
    p.add_argument("--lr-d", type=positive_float, default=d["lr_d"],
                   help=f"Adam learning rate of D (default {d['lr_d']:g})")
    p.add_argument("--beta1", type=fraction, default=d["betas"][0],
                   help=f"Adam's beta1 for both (default {d['betas'][0]:g})")
    p.add_argument("--beta2", type=fraction, default=d["betas"][1],
                   help=f"Adam's beta2 for both (default {d['betas'][1]:g})")
    p.add_argument("--n-dis", type=positive_int, default=d["n_dis"],
                   help=f"discriminator updates per generator update (default {d['n_dis']})")
    p.add_argument("--ema", type=fraction, default=None, metavar="DECAY",
                   help="keep an EMA of G's weights with this decay (e.g. 0.999) and use it")
    p.add_argument("--truncation", type=positive_float, default=None,
                   help="truncate the latents of the final pictures to [-t, t]")
    p.add_argument("--eval", action=argparse.BooleanOptionalAction, default=None,
                   help="compute FD/KID/classifier score/precision/recall at the end "
                        "(default: on for mnist, off for digits)")
    p.add_argument("--eval-samples", type=positive_int, default=10000)
    p.add_argument("--equation", default="7 - 1 + 0",
                   help="latent arithmetic of arithmetic.png, in classes (unconditional)")
    p.add_argument("--sample-every", type=positive_int, default=500,
                   help="steps between the fixed-latent grids in samples/")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default=f"runs/{recipe.name}", help="the run's folder (a new one)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_run_options(p)
    if recipe.add_arguments is not None:
        recipe.add_arguments(p)
    return p


def resolve_defaults(recipe: Recipe, opts: dict[str, Any]) -> None:
    """Fill the options left unset: the paper's batch size and width, or on the digits the
    recipe's smaller ones."""
    for key in ("batch_size", "width"):
        if opts[key] is None:
            opts[key] = (recipe.digits.get(key, recipe.defaults[key]) if opts["data"] == "digits"
                         else recipe.defaults[key])


def check_options(recipe: Recipe, opts: dict[str, Any]) -> None:
    """One-line ``SystemExit`` naming the flag and its value for options that pass argparse's
    types but that no run can use."""
    resolve_defaults(recipe, opts)
    if opts["eval_samples"] < 10:
        raise flag_error("--eval-samples", opts["eval_samples"], "needs at least 10 images")
    if opts["ema"] is not None and not opts["ema"] > 0:
        raise flag_error("--ema", opts["ema"], "the decay lies in (0, 1), e.g. 0.999")
    if opts["data"] == "mnist" and opts["image_size"] not in (28, 32):
        raise flag_error("--image-size", opts["image_size"],
                    "MNIST images are 28x28 (or 32x32 with two pixels of padding)")
    try:
        gan_tools.parse_equation(opts["equation"], NUM_CLASSES)
    except ValueError as exc:
        raise flag_error("--equation", repr(opts["equation"]),
                         str(exc).split(": ", 1)[-1]) from None
    if recipe.check is not None:
        recipe.check(opts)


def build(recipe: Recipe, opts: dict[str, Any]) -> tuple[Any, Any]:
    """(G, D) on ``opts["device"]``; a size the networks cannot take is a one-line error."""
    try:
        G, D = recipe.build(opts)
    except ValueError as exc:
        why = str(exc).splitlines()[0]
        prefix = f"image size {opts['image_size']!r}: "
        raise flag_error("--image-size", opts["image_size"], why[len(prefix):]
                    if why.startswith(prefix) else why) from None
    device = opts.get("device", "cpu")
    return G.to(device), D.to(device)


# ---- data -------------------------------------------------------------------------------------

def load_data(opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels); images float32 (N, 1, S, S) in
    [0, 1] at the run's size (MNIST at 32: 2 black pixels of padding on every side)."""
    size = opts["image_size"]
    with data_errors(opts["data"], opts["data_dir"]):
        xtr, ytr, xte, yte = load_image_arrays(opts["data"], opts["data_dir"], size)
    if opts["data"] == "mnist" and size == 32:
        pad = ((0, 0), (0, 0), (2, 2), (2, 2))
        xtr, xte = np.pad(xtr, pad), np.pad(xte, pad)
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


# ---- training ---------------------------------------------------------------------------------

def main(recipe: Recipe, argv: list[str] | None = None) -> dict[str, Any]:
    """Train ``recipe``'s GAN as the command line ``argv`` says; returns metrics.json's dict."""
    p = parser(recipe)
    args = p.parse_args(argv)
    opts = vars(args)
    check_options(recipe, opts)
    try:
        # pictures and evaluation do not change what is trained: a resumed run may redo them
        out = prepare_run_folder(args.out, recipe.name, args, args.resume,
                                 may_change=MAY_CHANGE + RESUME_MAY_CHANGE,
                                 given=given_options(p, argv))
    except RunError as exc:
        raise SystemExit(str(exc)) from None
    epochs = args.epochs if args.epochs is not None else (
        None if args.steps is not None else recipe.epochs[args.data])
    do_eval = args.eval if args.eval is not None else args.data == "mnist"

    sg.manual_seed(args.seed)
    data = load_data(opts)
    xtr, ytr, xte, yte = data
    if args.batch_size > len(xtr):
        raise flag_error("--batch-size", args.batch_size, f"larger than the {len(xtr)} training "
                    "images")
    G, D = build(recipe, opts)
    conditional = gan_tools.is_conditional(G)
    d = recipe.defaults
    step = GANTrainStep(G, D, d_loss=d["d_loss"], g_loss=d["g_loss"], lr_g=args.lr_g,
                        lr_d=args.lr_d, betas=(args.beta1, args.beta2), n_dis=args.n_dis,
                        gp_lambda=d.get("gp_lambda", 0.0), ema_decay=args.ema)
    timed = TimedStep(step)
    arrays = (xtr * 2.0 - 1.0, ytr) if conditional else (xtr * 2.0 - 1.0,)   # [0,1] -> [-1,1]
    loader = DataLoader(ArrayDataset(*arrays), batch_size=args.batch_size, shuffle=True,
                        drop_last=True, seed=args.seed, device=args.device)
    n_g = sum(p.size for p in G.parameters())
    n_d = sum(p.size for p in D.parameters())
    print(f"{recipe.title} on {args.data} {args.image_size}x{args.image_size}: {len(xtr)} "
          f"images, G {n_g:,} / D {n_d:,} parameters, {d['d_loss']}/{d['g_loss']} loss, Adam "
          f"lr {args.lr_g:g}/{args.lr_d:g} betas ({args.beta1:g}, {args.beta2:g}), n_dis "
          f"{args.n_dis}, batch {args.batch_size}, {len(loader)} steps per epoch")

    scale = max(1, 56 // args.image_size)
    z_fixed, y_fixed = fixed_latents(G, opts)
    trainer = Trainer(timed, loader, out, epochs=epochs, max_steps=args.steps,
                      modules={"generator": G, "discriminator": D},
                      log_every=min(50, len(loader)), sample_every=args.sample_every,
                      on_sample=sample_hook(step, z_fixed, y_fixed, scale),
                      checkpoint_every=args.sample_every,
                      checkpoint_seconds=args.checkpoint_every,
                      allow_nonfinite=args.allow_nonfinite, resume=args.resume, seed=args.seed,
                      device=args.device)
    fit = trainer.fit()
    per_step = timed.seconds / max(timed.calls, 1)
    metrics: dict[str, Any] = {
        "model": recipe.name, "data": args.data, "image_size": args.image_size,
        "conditional": conditional, "steps": fit.step, "generator_updates": step.d_updates //
        args.n_dis, "epochs": fit.epoch, "steps_per_epoch": len(loader),
        "seconds": fit.seconds, "train_seconds_per_step": per_step,
        "train_seconds_per_epoch": per_step * len(loader),
        "final_losses": fit.losses, "parameters": {"generator": n_g, "discriminator": n_d},
    }
    print(f"{fit.step} steps ({fit.epoch} epochs) in {fit.seconds:.0f} s; "
          f"{per_step * len(loader):.1f} s of training steps per epoch")

    series = read_metrics(out / "metrics.jsonl")
    curves = {k: v for k, v in series.items() if k in ("loss_d", "loss_g", "gp")}
    if curves:
        plot_curves(curves, out / "losses.png", title=f"{recipe.title} losses")
    # the evaluation and (for an unconditional G) the latent arithmetic read the classifier
    classifier = classifier_for(opts) if do_eval or not conditional else None
    with step.sampling() as G_eval:
        metrics.update(draw_final_pictures(G_eval, opts, out, scale, classifier))
        if do_eval and classifier is not None:
            metrics["eval"] = evaluate(G_eval, opts, data, classifier)
            print_evaluation(metrics["eval"])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    wrote = [n for n in ("samples.png", "interpolation.png", "arithmetic.png", "losses.png",
                         "metrics.json") if (out / n).exists()]
    print(f"wrote {', '.join(wrote)} and samples/ to {out}")
    return metrics


# ---- sampling from a finished run -------------------------------------------------------------

def load_generator(recipe: Recipe, run: pathlib.Path | str, device: str = "cpu"
                   ) -> tuple[Any, dict[str, Any]]:
    """(the run's generator in eval mode, holding its EMA weights when it kept them; the run's
    options)."""
    opts = dict(read_run_config(run, recipe.name)["options"])
    opts["device"] = device
    G, _ = build(recipe, opts)
    restore_generator(G, load_run_state(run, device), opts.get("ema"))
    return G, opts


def evaluate_run(recipe: Recipe, run: pathlib.Path | str, eval_samples: int | None = None,
                 device: str = "cpu") -> dict[str, Any]:
    """``evaluate`` on a run folder's newest checkpoint (its EMA weights when it kept them),
    with the run's data and ``eval_samples`` (default: the run's ``--eval-samples``); the
    generated samples' figures under ``"generated"``, beside ``"real_vs_real"``."""
    G, opts = load_generator(recipe, run, device)
    if eval_samples is not None:
        opts["eval_samples"] = eval_samples
    classifier = classifier_for(opts)
    if classifier is None:
        raise ValueError(f"no classifier for {opts['data']}: cannot evaluate {run}")
    result = evaluate(G, opts, load_data(opts), classifier)
    result["generated"] = result.pop("model")   # "model" names the model in `scratchgen eval`
    return result


def sample(recipe: Recipe, run: pathlib.Path | str, n: int, label: int | None = None,
           seed: int = 0, device: str = "cpu") -> np.ndarray:
    """n samples of a run's generator as float32 (n, C, H, W) in [0, 1]. A conditional model
    draws class ``label`` (default: 0, 1, ..., 9, 0, ...); the run's ``--truncation`` applies."""
    G, opts = load_generator(recipe, run, device)
    if label is not None:
        k = getattr(G, "num_classes", None)
        if k is None:
            raise ValueError(f"--label {label}: this {recipe.name} run is unconditional (it has "
                             "no classes)")
        if not 0 <= label < k:
            raise ValueError(f"--label {label}: out of range for {k} classes (0..{k - 1})")
    with isolated_rng(seed):
        return host_images01(gan_tools.sample(G, n, label, opts.get("truncation")))


def entry_points(recipe: Recipe) -> tuple[Callable[..., Any], ...]:
    """``parser, main, sample, evaluate`` of the example module of ``recipe``: what
    ``scratchgen train``, ``scratchgen sample`` and ``scratchgen eval`` call."""
    def parser_() -> argparse.ArgumentParser:
        """This model's command line."""
        return parser(recipe)

    def main_(argv: list[str] | None = None) -> dict[str, Any]:
        """Train, draw and (with --eval) measure; see the module docstring."""
        return main(recipe, argv)

    def sample_(run: pathlib.Path, n: int, label: int | None = None, seed: int = 0,
                device: str = "cpu") -> np.ndarray:
        """n samples of a run, float32 (n, 1, S, S) in [0, 1] (of class ``label`` for a
        conditional run; 0, 1, ..., 9, 0, ... when it is None)."""
        return sample(recipe, run, n, label, seed, device)

    def evaluate_(run: pathlib.Path, device: str = "cpu", samples: int | None = None
                  ) -> dict[str, Any]:
        """Frechet distance, KID, classifier score, precision and recall of the run's newest
        checkpoint (its EMA weights when it kept them) against the test images, next to the
        real-vs-real baseline; class accuracy for conditional models.

        Args:
            samples: how many samples to generate (default: the run's --eval-samples)
        """
        return evaluate_run(recipe, run, samples, device)

    return parser_, main_, sample_, evaluate_
