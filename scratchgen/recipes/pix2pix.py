"""Pix2Pix (Isola et al. 2017) on "sketch -> digit": draw a digit from its outline.

    scratchgen train pix2pix                    # embedded digits, cGAN + 100 L1, a few minutes
    scratchgen train pix2pix --loss l1 --out runs/pix2pix-l1      # the regression baseline
    scratchgen train pix2pix --data mnist --data-dir ../shared/data/mnist --epochs 1 \\
        --out runs/pix2pix-mnist
    scratchgen sample runs/pix2pix --n 64 --out p2p.png    # translations of random test outlines
    scratchgen eval runs/pix2pix                # test L1, class accuracy, sharpness (JSON)

The task (``data.edges``): the source x is the outline of a digit (the pixels next to the ink
of the binarised digit, 0/1), the target y the digit itself. An outline pins down where the
ink is but not its grey levels; a coarse one (``--sketch-scale 2``: the outline of the digit
pooled 2 x 2) not even the strokes' exact position and width. Where several targets fit one
source, regression averages them: the blur that the conditional GAN is there to remove
(``models.pix2pix``).
Images are 28 x 28 padded with 2 black pixels to 32 x 32 so that the U-Net goes down to 1 x 1
(num_downs = 5, as the reference's ``unet_256`` goes down from 256); the reference's dropout
rule gives no dropout at that depth, so ``--dropout-blocks 2`` (default) puts it in the two
decoder blocks just outside the innermost one. Sources and targets are scaled to [-1, 1].

Settings: the paper's loss (``--loss gan+l1``, lambda = 100: ``--lambda-l1``), Adam lr 2e-4,
betas (0.5, 0.999), N(0, 0.02) weights, batch norm. Two changes for 28-pixel images and CPUs:
the PatchGAN has ``--n-layers 2`` (receptive field 34 pixels, about the whole digit; the
paper's 70 x 70 would see past the image) and batches of 16 (digits) or 64 (MNIST) instead of
1, with narrower networks (``--ngf 16 --ndf 16``; paper 64: G then has 1.0 M parameters, D
43 k).

At the end, with G in eval mode (no dropout, batch norm on its running statistics; the
reference instead tests in training mode, see ``models.pix2pix``: ``--test-mode reference``
does that, one image at a time): ``translations.png`` (rows: outline | G(x) | real target,
and G(x) with test-time dropout when G has dropout), ``losses.png`` and ``metrics.json``:
seconds per epoch and, on ``--eval-samples`` test images (all by default), cropped back to
28 x 28 in [0, 1]:

* ``test_l1``, ``test_l2``: mean |G(x) - y| and (G(x) - y)^2 per pixel;
* ``class_accuracy``: how often the shipped classifier (``metrics.classifier``) reads G(x) as
  the label of the digit the outline came from (``class_accuracy_real``: on the real targets);
* ``sharpness_generated`` / ``sharpness_real``: the variance of the Laplacian
  (``metrics.sharpness``), of G(x) and of the real targets.

Measured on a shared 2-core CPU (other jobs running, so seconds vary up to 2x between runs;
"s/epoch" counts the training steps alone). All 10,000 MNIST test images (297 for the
digits), G in eval mode; sharpness of the real test digits: 0.1825 (MNIST), 0.0074 (digits);
the classifier reads the real ones at 0.992 (MNIST) and 0.973 (digits).

    scratchgen train pix2pix --data mnist --data-dir ../shared/data/mnist --epochs 1 \\
        --loss gan+l1 --out runs/p2p-gan        # then --epochs 3 --resume; the same for l1, l2

                          test L1   test L2   class acc.   sharpness   s/epoch
      gan+l1, 1 epoch     0.0526    0.0126    0.945        0.083       407
      l1,     1 epoch     0.0359    0.0081    0.964        0.102       128
      l2,     1 epoch     0.0496    0.0075    0.974        0.087       150
      gan+l1, 3 epochs    0.0223    0.0054    0.984        0.197       247 (epochs 2-3)
      l1,     3 epochs    0.0208    0.0047    0.984        0.194       102 (epochs 2-3)
      l2,     3 epochs    0.0276    0.0042    0.986        0.146        80 (epochs 2-3)

  (wall clock of the whole commands: 7 min 18 s, 2 min 32 s, 2 min 49 s for the first epoch;
  8 min 37 s, 3 min 48 s, 3 min 1 s for the two more.) In the first epoch D wins (loss_d near
  0 for 800 steps) and G's cGAN term pulls it away from the L1 optimum: grey, low-contrast
  digits. By 3 epochs the game has settled (loss_d about 0.63, D's logits +-0.2) and the cGAN
  digits are as sharp as real ones. L2 regression stays blurred (sharpness 0.146 against
  0.1825 real: the squared error's mean of the plausible grey levels), L1 (a median) much
  less. The outline fixes where the ink is, so this translation is nearly deterministic and
  L1 alone is already sharp here: the cGAN adds nothing measurable over it at 3 epochs. With
  the coarse sketch (``--sketch-scale 2``), where many digits fit one sketch:

    scratchgen train pix2pix --data mnist --data-dir ../shared/data/mnist --sketch-scale 2 \\
        --epochs 3 --loss gan+l1 --out runs/p2p-coarse-gan      # and --loss l1, --loss l2

                          test L1   test L2   class acc.   sharpness   s/epoch   command
      gan+l1, 3 epochs    0.0386    0.0171    0.964        0.194       148       7 min 38 s
      l1,     3 epochs    0.0342    0.0133    0.966        0.152        49       2 min 35 s
      l2,     3 epochs    0.0434    0.0117    0.971        0.081        42       2 min 15 s

  the picture of the paper's Fig. 4: each loss wins on the figure it optimises (L1 on test
  L1, L2 on test L2), the regressions blur (L2 at less than half the real sharpness),
  and the cGAN's digits are as sharp as the real ones (0.194 against 0.1825), paid for by a
  larger pixel error: where a sketch fits several digits, a sharp guess that misses is
  further off than the blurred average. The classifier reads all three about equally well.

    scratchgen train pix2pix [--loss l1 | --loss l2]     # the digits, 15 epochs of 93 steps

                          test L1   test L2   class acc.   sharpness   s/epoch   command
      gan+l1              0.0288    0.0023    0.966        0.0095      4.3-8.5   66-131 s
      l1                  0.0287    0.0022    0.970        0.0073      4.8       75 s
      l2                  0.0346    0.0025    0.970        0.0081      3.7       58 s

  (the 8x8 scans resampled to 28x28 are blurred already: real sharpness 0.0074.)

``--test-mode reference`` on the 1-epoch gan+l1 MNIST run (first 2,000 test images): test L1
0.0594 against 0.0510 in eval mode, class accuracy 0.910 against 0.927, sharpness 0.087
against 0.080.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time
from typing import Any

import numpy as np

import scratchgen as sg
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.data.edges import edge_map
from scratchgen.recipes.image_gan_outputs import classifier_for, labelled_rows
from scratchgen.metrics.sharpness import laplacian_variance
from scratchgen.models import pix2pix
from scratchgen.train import (
    MAY_CHANGE, RunError, TimedStep, Trainer, given_options, isolated_rng, load_run_state,
    plot_curves, prepare_run_folder, read_metrics, read_run_config, save_image_grid,
)
from scratchgen.train.options import (
    ArgumentParser, add_run_options, data_errors, device, flag_error, fraction, nonnegative_float,
    nonnegative_int, positive_float, positive_int, unit_interval,
)

__all__ = ["parser", "main", "sample", "evaluate", "load_pairs", "build", "load_generator",
           "measure", "NAME", "DATA_SETS", "TEST_MODES", "PAD"]

NAME = "pix2pix"
DATA_SETS = ("digits", "mnist")
TEST_MODES = ("eval", "reference")
PAD = 2  # 28 + 2 + 2 = 32 = 2^5
#: per data set: passes over the data, batch size, widths of G and D
SMALL = {"digits": {"epochs": 15, "batch_size": 16, "ngf": 16, "ndf": 16},
         "mnist": {"epochs": 1, "batch_size": 64, "ngf": 16, "ndf": 16}}
#: options a resumed run may change: they shape only the pictures and the evaluation
RESUME_MAY_CHANGE = ("eval_samples", "test_mode", "sample_every")


def parser() -> argparse.ArgumentParser:
    """The command line; a value of the wrong type or range is one line naming the flag."""
    d = pix2pix.DEFAULTS

    def per_data(key: str) -> str:
        return f"default {SMALL['digits'][key]} on digits, {SMALL['mnist'][key]} on mnist"

    p = ArgumentParser(prog="scratchgen train pix2pix", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=DATA_SETS, default="digits",
                   help="digits (embedded, default) or mnist")
    p.add_argument("--data-dir", default=None, help="folder with the four MNIST files")
    p.add_argument("--loss", choices=pix2pix.LOSSES, default=d["loss"],
                   help="G's objective: cGAN + lambda L1 (the paper), or L1 / L2 regression")
    p.add_argument("--lambda-l1", type=nonnegative_float, default=d["lambda_l1"],
                   help=f"weight of the L1 term in gan+l1 (default {d['lambda_l1']:g})")
    p.add_argument("--epochs", type=positive_int, default=None, help="passes over the data ("
                   + per_data("epochs") + ")")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="stop after this many updates instead")
    p.add_argument("--batch-size", type=positive_int, default=None, help=per_data("batch_size"))
    p.add_argument("--ngf", type=positive_int, default=None, help="G's base width ("
                   + per_data("ngf") + "; paper 64)")
    p.add_argument("--ndf", type=positive_int, default=None, help="D's base width ("
                   + per_data("ndf") + "; paper 64)")
    p.add_argument("--n-layers", type=positive_int, default=2,
                   help="stride-2 layers of the PatchGAN: 1, 2 (default) or 3 "
                        "(receptive fields 16, 34, 70 pixels)")
    p.add_argument("--norm", choices=pix2pix.NORMS, default="batch",
                   help="normalisation of both networks (default batch)")
    p.add_argument("--dropout-blocks", type=nonnegative_int, default=2,
                   help="decoder blocks with dropout 0.5, next to the innermost (0..3)")
    p.add_argument("--threshold", type=unit_interval, default=0.5,
                   help="ink threshold of the outlines (default 0.5)")
    p.add_argument("--sketch-scale", type=positive_int, default=1,
                   help="1: the outline of each digit (default); s = 2, 4, 7: the outline of "
                        "the digit pooled s x s, a coarse sketch (data.edges)")
    p.add_argument("--lr", type=positive_float, default=d["lr"],
                   help=f"Adam learning rate of both networks (default {d['lr']:g})")
    p.add_argument("--beta1", type=fraction, default=d["betas"][0],
                   help=f"Adam's beta1 (default {d['betas'][0]:g})")
    p.add_argument("--beta2", type=fraction, default=d["betas"][1],
                   help=f"Adam's beta2 (default {d['betas'][1]:g})")
    p.add_argument("--test-mode", choices=TEST_MODES, default="eval",
                   help="final pictures and metrics with G in eval mode (default), or as the "
                        "reference tests: dropout on, batch statistics, one image at a time")
    p.add_argument("--eval-samples", type=positive_int, default=None,
                   help="test images to translate and measure (default: all)")
    p.add_argument("--sample-every", type=positive_int, default=500,
                   help="steps between the pictures of fixed test outlines in samples/")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default=f"runs/{NAME}", help="the run's folder (a new one)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_run_options(p)
    return p


def check_options(opts: dict[str, Any], given: set[str] | frozenset[str] = frozenset()
                  ) -> None:
    """Fill the per-data defaults of ``opts`` (``vars(args)``); one-line ``SystemExit`` for
    values no run can use (``given``: the options set on the command line)."""
    for key in ("batch_size", "ngf", "ndf"):
        if opts[key] is None:
            opts[key] = SMALL[opts["data"]][key]
    if opts["dropout_blocks"] > 3:
        raise flag_error("--dropout-blocks", opts["dropout_blocks"],
                    "the 32-pixel U-Net has 3 decoder blocks between innermost and outermost")
    if opts["n_layers"] > 3:
        raise flag_error("--n-layers", opts["n_layers"], "a 32-pixel pair leaves no patch map "
                    "for more than 3 stride-2 layers (receptive fields 16, 34, 70)")
    if 28 % opts["sketch_scale"]:
        raise flag_error("--sketch-scale", opts["sketch_scale"], "must divide the 28-pixel side "
                    "(1, 2, 4, 7, 14)")
    if opts["threshold"] == 0:
        raise flag_error("--threshold", opts["threshold"],
                         "must be above 0 (0 makes every pixel ink)")
    if opts["loss"] != "gan+l1" and "lambda_l1" in given:
        raise flag_error("--lambda-l1", opts["lambda_l1"], f"weights the L1 term of gan+l1 only, "
                    f"not --loss {opts['loss']}")


def build(opts: dict[str, Any]) -> tuple[pix2pix.UNetGenerator, Any]:
    """(G, D) on the run's device; D is None for the regression losses."""
    G, D = pix2pix.build_pix2pix(1, 1, 28 + 2 * PAD, ngf=opts["ngf"], ndf=opts["ndf"],
                                 n_layers=opts["n_layers"], norm=opts["norm"],
                                 n_dropout=opts["dropout_blocks"])
    dev = opts.get("device", "cpu")
    return G.to(dev), (D.to(dev) if opts["loss"] == "gan+l1" else None)


# ---- data -------------------------------------------------------------------------------------

def load_pairs(opts: dict[str, Any]) -> dict[str, np.ndarray]:
    """The 28 x 28 images in [0, 1] with their labels, and the padded 32 x 32 pairs in [-1, 1]
    the networks see: keys ``train_x``, ``train_y``, ``test_x``, ``test_y`` (sources, targets),
    ``test_images`` (28 x 28, [0, 1]) and ``train_labels``, ``test_labels``."""
    with data_errors(opts["data"], opts["data_dir"]):
        xtr, ytr, xte, yte = load_image_arrays(opts["data"], opts["data_dir"], 28)
    pad = ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD))

    def to_net(a: np.ndarray) -> np.ndarray:
        return (np.pad(a, pad) * 2.0 - 1.0).astype(np.float32)

    t, s = opts["threshold"], opts.get("sketch_scale", 1)
    return {"train_x": to_net(edge_map(xtr, t, s)), "train_y": to_net(xtr),
            "test_x": to_net(edge_map(xte, t, s)), "test_y": to_net(xte),
            "test_images": xte.astype(np.float32), "train_labels": ytr.astype(np.int64),
            "test_labels": yte.astype(np.int64)}


def _crop01(images: Any) -> np.ndarray:
    """Network images (N, 1, 32, 32) in [-1, 1] -> host float32 (N, 1, 28, 28) in [0, 1]."""
    x = images.numpy() if isinstance(images, sg.Tensor) else np.asarray(images)
    x = x[..., PAD:-PAD, PAD:-PAD]
    return np.clip((x + 1.0) * 0.5, 0.0, 1.0).astype(np.float32)


def _translate(G: Any, sources: np.ndarray, test_mode: str) -> np.ndarray:
    """G(x) as 28 x 28 images in [0, 1]: eval mode, or the reference's test mode (dropout on,
    batch norm on each single image's statistics)."""
    if test_mode == "reference":
        return _crop01(pix2pix.translate(G, sources, dropout=True, batch_stats=True,
                                         batch_size=1))
    return _crop01(pix2pix.translate(G, sources))


# ---- training ---------------------------------------------------------------------------------

def _rows(G: Any, src: np.ndarray, tgt: np.ndarray, test_mode: str = "eval"
          ) -> list[tuple[str, np.ndarray]]:
    """outline | G(x) (in ``test_mode``) | real target [| G(x) in eval mode but with dropout
    on, when G has dropout and the test mode is eval], 28 x 28 in [0, 1]."""
    rows = [("outline", _crop01(src)), ("G(x)", _translate(G, src, test_mode)),
            ("real", _crop01(tgt))]
    if G.n_dropout and test_mode == "eval":
        with isolated_rng(0):
            rows.append(("G(x), dropout", _crop01(pix2pix.translate(G, src, dropout=True))))
    return rows


def _sample_hook(G: Any, src: np.ndarray, tgt: np.ndarray):
    def on_sample(step_no: int, folder: pathlib.Path) -> None:
        images = np.concatenate([imgs for _, imgs in _rows(G, src, tgt)[:3]])
        save_image_grid(images, folder / f"step_{step_no:06d}.png", nrow=len(src),
                        value_range=(0, 1), scale=2, row_labels=["outline", "G(x)", "real"],
                        caption=f"fixed test outlines after step {step_no}")
    return on_sample


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train as the command line ``argv`` says; returns metrics.json's dict."""
    p = parser()
    args = p.parse_args(argv)
    opts = vars(args)
    given = given_options(p, argv)
    check_options(opts, given)
    try:
        out = prepare_run_folder(args.out, NAME, args, args.resume,
                                 may_change=MAY_CHANGE + RESUME_MAY_CHANGE, given=given)
    except RunError as exc:
        raise SystemExit(str(exc)) from None
    epochs = args.epochs if args.epochs is not None else (
        None if args.steps is not None else SMALL[args.data]["epochs"])

    sg.manual_seed(args.seed)
    data = load_pairs(opts)
    n_train = len(data["train_x"])
    if args.batch_size > n_train:
        raise flag_error("--batch-size", args.batch_size,
                         f"larger than the {n_train} training pairs")
    G, D = build(opts)
    step = pix2pix.Pix2PixTrainStep(G, D, loss=args.loss, lambda_l1=args.lambda_l1,
                                    lr=args.lr, betas=(args.beta1, args.beta2))
    timed = TimedStep(step)
    loader = DataLoader(ArrayDataset(data["train_x"], data["train_y"]),
                        batch_size=args.batch_size, shuffle=True, drop_last=True,
                        seed=args.seed, device=args.device)
    n_g = sum(q.size for q in G.parameters())
    n_d = sum(q.size for q in D.parameters()) if D is not None else 0
    print(f"pix2pix on {args.data} outlines -> digits (32x32 padded): {n_train} pairs, G {n_g:,}"
          f" / D {n_d:,} parameters, loss {args.loss}" + (f" (lambda {args.lambda_l1:g}, "
          f"PatchGAN n_layers {args.n_layers})" if D is not None else "")
          + f", batch {args.batch_size}, {len(loader)} steps per epoch")

    modules = {"generator": G} if D is None else {"generator": G, "discriminator": D}
    fixed = slice(0, 8)
    trainer = Trainer(timed, loader, out, epochs=epochs, max_steps=args.steps, modules=modules,
                      log_every=min(50, len(loader)), sample_every=args.sample_every,
                      on_sample=_sample_hook(G, data["test_x"][fixed], data["test_y"][fixed]),
                      checkpoint_every=args.sample_every,
                      checkpoint_seconds=args.checkpoint_every,
                      allow_nonfinite=args.allow_nonfinite, resume=args.resume,
                      seed=args.seed, device=args.device)
    fit = trainer.fit()
    per_step = timed.seconds / max(timed.calls, 1)
    metrics: dict[str, Any] = {
        "model": NAME, "data": args.data, "loss": args.loss, "steps": fit.step,
        "epochs": fit.epoch, "steps_per_epoch": len(loader), "seconds": fit.seconds,
        "train_seconds_per_step": per_step, "train_seconds_per_epoch": per_step * len(loader),
        "final_losses": fit.losses, "parameters": {"generator": n_g, "discriminator": n_d},
    }
    print(f"{fit.step} steps ({fit.epoch} epochs) in {fit.seconds:.0f} s; "
          f"{per_step * len(loader):.1f} s of training steps per epoch")

    series = read_metrics(out / "metrics.jsonl")
    curves = {k: v for k, v in series.items() if k in ("loss_d", "gan", "l1", "l2")}
    if curves:
        plot_curves(curves, out / "losses.png", title=f"pix2pix ({args.loss}) losses: "
                    "loss_d, G's cGAN term and its unweighted L1 / L2")
    show = slice(0, 12)
    with isolated_rng(args.seed + 4):
        rows = _rows(G, data["test_x"][show], data["test_y"][show], args.test_mode)
    labelled_rows(rows, out / "translations.png",
                  f"pix2pix ({args.loss}), test outlines; G(x) in {args.test_mode} mode", scale=2)
    metrics["eval"] = measure(G, opts, data, classifier_for(opts))
    _print_eval(metrics["eval"])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote translations.png, losses.png, metrics.json and samples/ to {out}")
    return metrics


# ---- evaluation -------------------------------------------------------------------------------

def measure(G: Any, opts: dict[str, Any], data: dict[str, np.ndarray], classifier: Any
            ) -> dict[str, Any]:
    """Test L1 / L2, class accuracy and sharpness of G(x) on the first ``eval_samples`` test
    outlines (the module docstring)."""
    n = min(opts.get("eval_samples") or len(data["test_x"]), len(data["test_x"]))
    t0 = time.perf_counter()
    with isolated_rng(opts["seed"] + 3):      # the reference mode draws dropout masks
        fake = _translate(G, data["test_x"][:n], opts.get("test_mode", "eval"))
    real, labels = data["test_images"][:n], data["test_labels"][:n]
    result: dict[str, Any] = {
        "n": n, "test_mode": opts.get("test_mode", "eval"),
        "test_l1": float(np.abs(fake - real).mean()),
        "test_l2": float(((fake - real) ** 2).mean()),
        "sharpness_generated": laplacian_variance(fake),
        "sharpness_real": laplacian_variance(real),
    }
    if classifier is not None:
        from scratchgen.metrics.features import class_accuracy

        result["classifier"] = opts["data"]
        result["class_accuracy"] = class_accuracy(fake, labels, classifier)
        result["class_accuracy_real"] = class_accuracy(real, labels, classifier)
    result["seconds"] = time.perf_counter() - t0
    return result


def _print_eval(ev: dict[str, Any]) -> None:
    print(f"on {ev['n']} test outlines ({ev['test_mode']} mode): L1 {ev['test_l1']:.4f}, "
          f"L2 {ev['test_l2']:.4f}, sharpness (Laplacian variance) {ev['sharpness_generated']:.4f}"
          f" generated vs {ev['sharpness_real']:.4f} real"
          + (f", class accuracy {ev['class_accuracy']:.4f} (real "
             f"{ev['class_accuracy_real']:.4f})" if "class_accuracy" in ev else ""))


def load_generator(run: pathlib.Path | str, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """(the run's U-Net from its newest checkpoint, in eval mode; the run's options)."""
    opts = dict(read_run_config(run, NAME)["options"])
    opts["device"] = device
    G, _ = build({**opts, "loss": "l1"})     # D is not needed to translate
    G.load_state_dict(load_run_state(run, device)["modules"]["generator"])
    return G.eval(), opts


def sample(run: pathlib.Path | str, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """G(x) for n test outlines drawn at random (``seed``; of digits of class ``label`` when
    given), float32 (n, 1, 28, 28) in [0, 1], with the run's ``--test-mode``."""
    G, opts = load_generator(run, device)
    data = load_pairs(opts)
    pool = np.arange(len(data["test_x"]))
    if label is not None:
        if not 0 <= label <= 9:
            raise ValueError(f"--label {label}: out of range for 10 classes (0..9)")
        pool = pool[data["test_labels"] == label]
    if n > len(pool):
        raise ValueError(f"--n {n}: only {len(pool)} test outlines"
                         + (f" of class {label}" if label is not None else ""))
    idx = np.random.default_rng(seed).choice(pool, n, replace=False)
    with isolated_rng(seed):
        return _translate(G, data["test_x"][idx], opts.get("test_mode", "eval"))


def evaluate(run: pathlib.Path, device: str = "cpu", samples: int | None = None,
             test_mode: str | None = None) -> dict[str, Any]:
    """Test L1 and L2 per pixel, the shipped classifier's accuracy on G(x) against the labels
    of the outlines' digits, and the Laplacian-variance sharpness of G(x) and of the real
    digits, for the run's newest checkpoint.

    Args:
        samples: how many test outlines to translate (default: the run's --eval-samples, or all)
        test_mode: eval (G in eval mode) or reference (dropout on, batch statistics, one image
            at a time); default: the run's --test-mode
    """
    G, opts = load_generator(run, device)
    if samples is not None:
        opts["eval_samples"] = samples
    if test_mode is not None:
        if test_mode not in TEST_MODES:
            raise ValueError(f"--test-mode {test_mode}: choose one of {', '.join(TEST_MODES)}")
        opts["test_mode"] = test_mode
    return measure(G, opts, load_pairs(opts), classifier_for(opts))


if __name__ == "__main__":
    main()
