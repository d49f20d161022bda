"""Training time per MNIST epoch of every model the recipes train, on this machine.

    scratchgen bench models                                  # every model, on the CPU
    scratchgen bench models --models vae,conv-vae --steps 50 # a subset, more steps
    scratchgen bench models --device cuda --json runs/bench_models.json
    python -m scratchgen.benchmarks.models --list            # the model names

(``OPENBLAS_NUM_THREADS=1 scratchgen bench models`` times one core, steadier on a shared
machine; the README's table is measured so.)

Each model is built by its recipe's own code (``build_model`` & co. in scratchgen/recipes/)
from the options of the recipe's MNIST command line at 28x28, with the recipe's batch size
and optimizer, and trained with the train step the recipe's Trainer calls. The data are
random batches of MNIST's shape, dtype and range (float32 (N, 1, 28, 28) pixels in [0, 1],
scaled to [-0.5, 0.5] for the VQ-VAEs, binarized for the hierarchical VAEs; int64 labels;
int64 code maps for the PixelCNN priors): no data set is needed, and a step's cost does not
depend on the values.

After ``--warmup`` steps (default 3), ``--steps`` steps (default 20) are timed one by one, and
per model the table gives: the batch size, the median milliseconds per step, the steps per
epoch (ceil(60000 / batch); floor for IntroVAE, whose loader drops the last partial batch),
seconds per epoch = median step time x steps per epoch, and the parameter count.

What is counted: the train step alone -- forward pass, losses, backward pass, optimizer
update(s), and the ``.item()`` reads of the losses the step returns (on a GPU these wait for
the step to finish, so a step's time is its device time too).
What is not: data loading, shuffling and host-to-device copies (one batch, made once on the
device, is fed to every step), evaluation, sample pictures, checkpoints, logging,
learning-rate schedules, the Trainer's own loop, and the bookkeeping some recipes do around
the step (code-use counters of the VQ-VAEs, per-step clocks). A real epoch takes longer by
those; the recipes report their measured epochs (training only) in their summaries.

Models (``--models``, comma-separated; default all):

    vae                   FC VAE 784-400-20 (vae_mnist.py)
    conv-vae              convolutional VAE (vae_mnist.py --arch conv)
    beta-vae              beta-VAE, beta = 4, z = 10 (beta_vae.py)
    info-vae              MMD-VAE (info_vae.py)
    vq-vae                VQ-VAE, 7x7 codes, K = 128 (vq_vae.py)
    vq-vae2               VQ-VAE-2, stage 1 (vq_vae2.py)
    vq-vae2-top-prior     its PixelCNN over the 7x7 top codes (stage 2)
    vq-vae2-bottom-prior  its PixelCNN over the 14x14 bottom codes given the top (stage 2)
    pixelcnn-prior        PixelCNN prior over the VQ-VAE's 7x7 maps of 128 codes
    intro-vae             IntroVAE, Algorithm 1 (E step + G step) (intro_vae.py)
    intro-vae-warmup      IntroVAE's plain-VAE warm-up epochs
    soft-intro-vae        Soft-IntroVAE on images (soft_intro_vae.py)
    hierarchical-vae      VDVAE-style hierarchical VAE (hierarchical_vae.py)
    hierarchical-single   the single-latent-layer model it is compared with
    hierarchical-fc-vae   the fully connected VAE it is compared with
    lenet                 LeNet classifier (lenet_mnist.py)
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import os
import pathlib
import sys
import time
from typing import Any, Callable

import numpy

from scratchgen.kernels import memory

__all__ = ["main", "run", "measure", "format_row", "Case", "MODELS", "MNIST_TRAIN_IMAGES"]

MNIST_TRAIN_IMAGES = 60000
_SHAPE = (1, 28, 28)


@dataclasses.dataclass
class Case:
    """A model ready to be timed: ``step(batch)`` is one training step on ``batch``."""

    batch_size: int
    step: Callable[[Any], Any]
    batch: tuple
    parameters: int
    drop_last: bool = False

    @property
    def steps_per_epoch(self) -> int:
        n, b = MNIST_TRAIN_IMAGES, self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)


# ---- random batches of MNIST's shape, dtype and range -------------------------------------------

def _pixels(rng: numpy.random.Generator, n: int) -> numpy.ndarray:
    """float32 (n, 1, 28, 28) in [0, 1], in MNIST's 256 grey levels (as the loaders give)."""
    return rng.integers(0, 256, (n,) + _SHAPE).astype(numpy.float32) / numpy.float32(255.0)


def _tensors(device: str, *arrays: numpy.ndarray) -> tuple:
    import scratchgen as sg

    return tuple(sg.tensor(a, device=device) for a in arrays)


def _example(name: str, device: str, *flags: str) -> tuple[Any, argparse.Namespace]:
    """The example module and its options for ``flags`` (its MNIST command line), options left
    unset filled in from the example's per-data-set ``DEFAULTS`` where it has them."""
    module = importlib.import_module(f"scratchgen.recipes.{name}")
    args = module.parser().parse_args(["--data", "mnist", *flags, "--device", device])
    for key, value in getattr(module, "DEFAULTS", {}).get("mnist", {}).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return module, args


# ---- the models, as their recipes build and train them ------------------------------------------

def _vae_family(name: str, *flags: str) -> Callable[[str, numpy.random.Generator], Case]:
    """vae_mnist.py, beta_vae.py, info_vae.py: ``TrainStep(model, adam)``."""
    def make(device: str, rng: numpy.random.Generator) -> Case:
        from scratchgen.models.steps import TrainStep

        ex, args = _example(name, device, *flags)
        if name == "beta_vae":  # the run's length only sets the capacity variant's schedule
            built = ex.build_model(args, _SHAPE, 10 * MNIST_TRAIN_IMAGES // args.batch_size)
        else:
            built = ex.build_model(args, _SHAPE)
        model, opt = built[0], built[1]
        return Case(args.batch_size, TrainStep(model, opt),
                    _tensors(device, _pixels(rng, args.batch_size)), model.num_parameters())
    return make


def _vq(name: str) -> Callable[[str, numpy.random.Generator], Case]:
    """vq_vae.py, vq_vae2.py (stage 1): ``TrainStep(model, adam)`` on x in [-0.5, 0.5]."""
    def make(device: str, rng: numpy.random.Generator) -> Case:
        from scratchgen.models.steps import TrainStep

        ex, args = _example(name, device)
        x = _pixels(rng, args.batch_size) - numpy.float32(0.5)
        model, opt, _ = ex.build_model(args, float(x.var()))
        return Case(args.batch_size, TrainStep(model, opt), _tensors(device, x),
                    model.num_parameters())
    return make


def _vq_vae2_prior(level: str) -> Callable[[str, numpy.random.Generator], Case]:
    """vq_vae2.py, stage 2: the top prior, or the bottom prior given the top codes (expanded
    to its one-hot conditioning map by the VQ-VAE-2 inside the step, as in the example)."""
    def make(device: str, rng: numpy.random.Generator) -> Case:
        from scratchgen.recipes.prior_fitting import PriorStep

        ex, args = _example("vq_vae2", device)
        model, _, _ = ex.build_model(args, 1.0)
        K = model.num_embeddings
        top, bottom, _ = ex.build_priors(args, K)
        (th, tw), (bh, bw) = model.latent_shapes(_SHAPE[1:])
        n = args.batch_size
        c_top = rng.integers(0, K, (n, th, tw), dtype=numpy.int64)
        if level == "top":
            return Case(n, PriorStep(top, ex.PRIOR_LR), _tensors(device, c_top),
                        top.num_parameters())
        c_bottom = rng.integers(0, K, (n, bh, bw), dtype=numpy.int64)
        step = PriorStep(bottom, ex.PRIOR_LR, cond=True, make_cond=model.bottom_condition)
        return Case(n, step, _tensors(device, c_bottom, c_top), bottom.num_parameters())
    return make


def _pixelcnn_prior(device: str, rng: numpy.random.Generator) -> Case:
    """pixelcnn_prior.py: the prior over the code maps of vq_vae.py's VQ-VAE (its map size and
    codebook read off that model)."""
    import scratchgen as sg

    vq, vq_args = _example("vq_vae", device)
    vqvae, _, _ = vq.build_model(vq_args, 1.0)
    with sg.no_grad():
        codes = vqvae.encode(_tensors(device, _pixels(rng, 1) - numpy.float32(0.5))[0])
    map_shape, K = tuple(codes.shape[1:]), vqvae.num_embeddings
    ex, args = _example("pixelcnn_prior", device)
    prior, _ = ex.build_prior(args, K)
    n = args.batch_size
    arrays = [rng.integers(0, K, (n,) + map_shape, dtype=numpy.int64)]
    if args.conditional:
        arrays.append(rng.integers(0, 10, n, dtype=numpy.int64))
    step = ex.PriorStep(prior, args.lr, labels=args.conditional)
    return Case(n, step, _tensors(device, *arrays), prior.num_parameters())


def _intro_vae(*flags: str) -> Callable[[str, numpy.random.Generator], Case]:
    """intro_vae.py with its MNIST options; ``--vae-warmup-epochs 0`` times Algorithm 1's
    steps, the default (10 epochs) the warm-up's plain-VAE steps."""
    def make(device: str, rng: numpy.random.Generator) -> Case:
        ex, args = _example("intro_vae", device, "--size", "28", "--channels", "32,64",
                            "--z-dim", "32", *flags)
        model, step = ex.build_model(args, MNIST_TRAIN_IMAGES // args.batch_size)
        return Case(args.batch_size, step, _tensors(device, _pixels(rng, args.batch_size)),
                    model.num_parameters(), drop_last=True)
    return make


def _soft_intro_vae(device: str, rng: numpy.random.Generator) -> Case:
    """soft_intro_vae.py with its MNIST options: ``build_model(args, steps_per_epoch)`` gives
    the model and its train step."""
    ex, args = _example("soft_intro_vae", device)
    model, step = ex.build_model(args, math.ceil(MNIST_TRAIN_IMAGES / args.batch_size))
    return Case(args.batch_size, step, _tensors(device, _pixels(rng, args.batch_size)),
                model.num_parameters())


def _hierarchical(kind: str) -> Callable[[str, numpy.random.Generator], Case]:
    """hierarchical_vae.py on binarized 28x28 digits: ``kind`` hvae, single or vae."""
    def make(device: str, rng: numpy.random.Generator) -> Case:
        ex, args = _example("hierarchical_vae", device)
        size = _SHAPE[-1]
        model = ex.build(kind, size, ex.target_parameters(size)).to(args.device)
        step = ex.make_step(kind, model, args.lr)
        x = (_pixels(rng, args.batch_size) >= 0.5).astype(numpy.float32)
        return Case(args.batch_size, step, _tensors(device, x), model.num_parameters())
    return make


def _lenet(device: str, rng: numpy.random.Generator) -> Case:
    """lenet_mnist.py: cross-entropy and Adam on (pixels, labels)."""
    module = importlib.import_module("scratchgen.recipes.lenet_mnist")
    args = module.parser().parse_args(["--device", device])
    model, opt = module.build_model(args)
    n = args.batch_size
    batch = _tensors(device, _pixels(rng, n), rng.integers(0, 10, n, dtype=numpy.int64))
    return Case(n, module.make_train_step(model, opt), batch, model.num_parameters())


#: name -> (what it is, the example that trains it, how to build it)
MODELS: dict[str, tuple[str, str, Callable[[str, numpy.random.Generator], Case]]] = {
    "vae": ("FC VAE 784-400-20", "vae_mnist", _vae_family("vae_mnist")),
    "conv-vae": ("convolutional VAE", "vae_mnist", _vae_family("vae_mnist", "--arch", "conv")),
    "beta-vae": ("beta-VAE", "beta_vae", _vae_family("beta_vae")),
    "info-vae": ("MMD-VAE", "info_vae", _vae_family("info_vae")),
    "vq-vae": ("VQ-VAE", "vq_vae", _vq("vq_vae")),
    "vq-vae2": ("VQ-VAE-2, stage 1", "vq_vae2", _vq("vq_vae2")),
    "vq-vae2-top-prior": ("VQ-VAE-2 top prior", "vq_vae2", _vq_vae2_prior("top")),
    "vq-vae2-bottom-prior": ("VQ-VAE-2 bottom prior", "vq_vae2", _vq_vae2_prior("bottom")),
    "pixelcnn-prior": ("PixelCNN over 7x7 VQ-VAE codes", "pixelcnn_prior", _pixelcnn_prior),
    "intro-vae": ("IntroVAE, E and G steps", "intro_vae",
                  _intro_vae("--vae-warmup-epochs", "0")),
    "intro-vae-warmup": ("IntroVAE, VAE warm-up", "intro_vae", _intro_vae()),
    "soft-intro-vae": ("Soft-IntroVAE", "soft_intro_vae", _soft_intro_vae),
    "hierarchical-vae": ("hierarchical VAE", "hierarchical_vae", _hierarchical("hvae")),
    "hierarchical-single": ("single-layer conv VAE", "hierarchical_vae", _hierarchical("single")),
    "hierarchical-fc-vae": ("FC VAE, matched size", "hierarchical_vae", _hierarchical("vae")),
    "lenet": ("LeNet classifier", "lenet_mnist", _lenet),
}


# ---- timing --------------------------------------------------------------------------------------

def measure(name: str, steps: int = 20, warmup: int = 3, device: str = "cpu",
            seed: int = 0) -> dict[str, Any]:
    """Build ``name`` (a key of ``MODELS``), run ``warmup`` steps, time ``steps`` steps; the
    table's row as a dict (times in milliseconds and seconds)."""
    import scratchgen as sg

    what, example, make = MODELS[name]
    sg.manual_seed(seed)
    case = make(device, numpy.random.default_rng(seed))
    for _ in range(warmup):
        case.step(case.batch)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        case.step(case.batch)
        times.append(time.perf_counter() - start)
    median = float(numpy.median(times))
    return {"model": name, "example": f"scratchgen/recipes/{example}.py", "what": what,
            "batch_size": case.batch_size, "ms_per_step": 1e3 * median,
            "steps_per_epoch": case.steps_per_epoch,
            "seconds_per_epoch": median * case.steps_per_epoch,
            "parameters": case.parameters, "device": device, "steps": steps, "warmup": warmup}


_COLUMNS = f"{'model':22s} {'batch':>5s} {'ms/step':>9s} {'steps/epoch':>11s} " \
           f"{'s/epoch':>9s} {'params':>11s}  what"


def format_row(r: dict[str, Any]) -> str:
    return (f"{r['model']:22s} {r['batch_size']:5d} {r['ms_per_step']:9.2f} "
            f"{r['steps_per_epoch']:11d} {r['seconds_per_epoch']:9.1f} {r['parameters']:11,d}"
            f"  {r['what']}")


def run(names: list[str], steps: int = 20, warmup: int = 3, device: str = "cpu", seed: int = 0,
        stream: Any = None) -> list[dict[str, Any]]:
    """Measure each model of ``names`` in turn, printing its row to ``stream`` (if given) as
    soon as it is measured; return the rows."""
    rows = []
    for name in names:
        rows.append(measure(name, steps, warmup, device, seed))
        if stream is not None:
            print(format_row(rows[-1]), file=stream, flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(prog="scratchgen bench models", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma-separated names (default: all; --list shows them)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per model (median)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="PATH", help="also write the rows here")
    p.add_argument("--list", action="store_true", help="list the models and exit")
    args = p.parse_args(argv)
    memory.configure_malloc()  # reuse freed temporaries, as training does
    if args.list:
        for name, (what, example, _) in MODELS.items():
            print(f"{name:22s} {what} (scratchgen/recipes/{example}.py)")
        return []
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        p.error(f"unknown model(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(MODELS)}")
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"training time per MNIST epoch ({MNIST_TRAIN_IMAGES:,} images), device {args.device}, "
          f"OPENBLAS_NUM_THREADS={threads}: median of {args.steps} train steps after "
          f"{args.warmup} warm-up, random batches; no data loading, no evaluation")
    print(_COLUMNS, flush=True)
    rows = run(names, args.steps, args.warmup, args.device, args.seed, stream=sys.stdout)
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=2))
        print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
