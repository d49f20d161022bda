"""A VDVAE-style hierarchical VAE against single-stochastic-layer VAEs, by the IWAE bound.

    # the comparison in the report: binarized 8x8 digits, the same epochs, batch and optimizer
    # for every model, parameter counts within a few percent, IWAE with k = 1000 on the 297
    # test digits
    scratchgen train hierarchical-vae --compare --epochs 150 --k 1000 --out runs/hvae_compare
    scratchgen train hierarchical-vae --compare --epochs 150 --k 1000 --seed 1 \\
        --out runs/hvae_compare_seed1

    # one model
    scratchgen train hierarchical-vae --model hvae --epochs 150 --out runs/hvae

    # MNIST (local IDX files, binarized at 0.5, 28x28; slow on a CPU)
    scratchgen train hierarchical-vae --data mnist --data-dir DIR \\
        --compare --epochs 5 --limit 10000 --k 100 --out runs/hvae_mnist

Measured (binarized digits, 150 epochs, k = 1000 on the 297 test digits; nats per image; the
paired standard error is over test images, i.e. evaluation noise only):

    seed  model   params  test IWAE_1000  test ELBO  hvae - model (s.e.)
    0     hvae    84321   -16.937         -18.700
    0     single  84123   -18.644         -20.310    +1.707 (0.187)
    0     vae     84290   -17.086         -18.407    +0.149 (0.088)
    1     hvae    84321   -16.481         -18.144
    1     single  84123   -20.431         -21.400    +3.951 (0.190)
    1     vae     84290   -17.123         -18.431    +0.642 (0.084)

The hierarchical model has the best IWAE bound in both seeds (by 1.7-4.0 nats over the
single-layer model with the same networks, by 0.15-0.64 over the fully connected VAE, whose
ELBO is within 0.3 nats of it either way); its test KL per layer (top first: 1x1, 4x4, 4x4,
8x8) was 0.0 / 0.14 / 7.30 / 0.0 nats for seed 0 and 0.0 / 0.0 / 7.20 / 0.0 for seed 1: on this
small data set the information sits in one 4x4 layer and the other layers collapse, so the
gain comes from a spatial 4x4 latent with a learned prior rather than from a deep hierarchy.

Free bits (Kingma et al., 2016) keep every layer in use, at an equal or better bound:

    scratchgen train hierarchical-vae --model hvae --epochs 150 --k 1000 --free-bits 1 \\
        --out runs/hvae_free_bits

    seed  model                params  test IWAE_1000  test ELBO  test KL per layer (top first)
    0     hvae, free bits 1    84321   -16.519         -18.463    1.06 / 2.84 / 2.89 / 1.26
    1     hvae, free bits 1    84321   -16.498         -18.447    1.12 / 3.37 / 2.85 / 1.20

against -16.937 and -16.481 without free bits; the ELBO moves by -0.30 to +0.24 nats. (Add
``--seed 1`` for the second row. The training objective is recon + sum_l max(1 nat, KL_l);
the bounds reported are the true ones.)

Seconds per epoch (24 steps of 64), lightly loaded 2-core CPU: hvae 3.05 (2.3 on one thread
in the free-bits run), single 1.63, vae 0.03 (the fully connected VAE is 100x cheaper).

The models (``--model`` or all with ``--compare``):

* ``hvae``: ``HierarchicalVAE`` with latents at resolutions 1, 4 (two layers) and 8 (for 8x8
  images), learned top-down priors (VDVAE).
* ``single``: the same networks with one latent layer only (a 16-d vector at the top, p(z) =
  N(0, I)) and a wider state so that it has as many parameters: a plain convolutional VAE.
* ``vae``: ``scratchgen.models.vae.VAE`` (the fully connected Kingma & Welling VAE, Bernoulli
  decoder, 16 latent units) with its hidden width set to match the parameter count, evaluated
  with ``scratchgen.metrics.likelihood.iwae_log_likelihood``.

Every model: Adam lr 1e-3, batch 64, the same epochs, gradient-norm clipping at 200; the test
bound is IWAE_k = mean over test images of log (1/k) sum_i p(x, z_i) / q(z_i | x) (higher is
better; for the hierarchical model z_i holds every layer's sample). Writes to --out (a new
folder; ``--resume`` continues the run in it) samples_<model>.png, reconstructions_<model>.png,
metrics.json (bounds, per-layer KLs, parameter counts, seconds per epoch), config.json and each
model's Trainer folder (<out>/<model>/). ``scratchgen sample RUN`` draws new images from a run
(``sample``).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

import scratchgen as sg
from scratchgen.data import MNIST, ArrayDataset, DataLoader, Digits
from scratchgen.metrics.likelihood import iwae_log_likelihood
from scratchgen.models.hierarchical_vae import HierarchicalVAE, HierarchicalVAETrainStep
from scratchgen.models.vae import VAE
from scratchgen.optim import Adam, clip_grad_norm_
from scratchgen.train import (
    MAY_CHANGE, Trainer, given_options, isolated_rng, load_run_state, prepare_run_folder,
    read_run_config, save_image_grid,
)
from scratchgen.train.options import (
    ArgumentParser, add_run_options, data_errors, device, nonnegative_float, nonnegative_int,
    positive_float, positive_int,
)

MODELS = ("hvae", "single", "vae")


def load_binary(name: str, train: bool, data_dir: str | None, limit: int | None) -> np.ndarray:
    """(N, 1, S, S) float32 images binarized at 0.5 (a fixed binarization, so that log p(x)
    under a Bernoulli decoder is a proper log-probability)."""
    if name == "digits":
        x = Digits(train=train).images
    elif name == "mnist":
        ds = MNIST(train=train, data_dir=data_dir) if data_dir else MNIST(train=train)
        x = ds.images.astype(np.float32) / 255.0
    else:
        raise SystemExit(f"unknown --data {name!r} (digits or mnist)")
    if limit:
        x = x[:limit]
    return (x >= 0.5).astype(np.float32)


def hvae_config(size: int) -> dict:
    if size == 8:
        return dict(resolutions=(8, 4, 1), layers="1x1,4x2,8x1", width=32, mid=16, z_channels=4)
    if size == 28:
        return dict(resolutions=(28, 14, 7, 1), layers="1x1,7x2,14x1", width=32, mid=16,
                    z_channels=4)
    raise SystemExit(f"no model configuration for {size}x{size} images")


def target_parameters(size: int) -> int:
    """The hierarchical model's parameter count, which the other two models match."""
    return HierarchicalVAE(1, size, **hvae_config(size)).num_parameters()


def build(kind: str, size: int, target_params: int | None = None):
    """The model ``kind`` for ``size`` x ``size`` images (``single`` and ``vae`` sized to have
    about ``target_params`` parameters)."""
    cfg = hvae_config(size)
    if kind == "hvae":
        return HierarchicalVAE(1, size, **cfg)
    if kind == "single":
        # one 16-d latent at the top, the rest deterministic; widen to match the parameters
        best = None
        for width in range(cfg["width"], 4 * cfg["width"] + 1, 2):
            m = HierarchicalVAE(1, size, cfg["resolutions"], {1: 1}, width, width // 2, 16,
                                top_prior="standard")
            if best is None or abs(m.num_parameters() - target_params) < \
                    abs(best.num_parameters() - target_params):
                best = m
            if m.num_parameters() > target_params:
                break
        return best
    if kind == "vae":
        per_hidden = size * size * 2 + 2 + 3 * 16   # (C H W)(2) + biases + 3 z per hidden unit
        hidden = max(16, round((target_params - 2 * 16 - size * size) / per_hidden))
        return VAE((1, size, size), z_dim=16, arch="fc", hidden=hidden, likelihood="bernoulli")
    raise SystemExit(f"unknown model {kind!r}")


class _VAEStep:
    """Adam on scratchgen.models.vae.VAE's negative ELBO, clipped as the hierarchical step."""

    def __init__(self, model: VAE, lr: float, grad_clip: float = 200.0) -> None:
        self.model, self.opt, self.grad_clip = model, Adam(model.parameters(), lr=lr), grad_clip

    def __call__(self, batch):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        self.model.train()
        terms = self.model.loss(x)
        self.opt.zero_grad()
        terms["loss"].backward()
        clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.opt.step()
        return {k: v.item() for k, v in terms.items()}

    def state_dict(self):
        return {"opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        self.opt.load_state_dict(state["opt"])


def make_step(kind: str, model, lr: float, free_bits: float = 0.0):
    """The train step the Trainer calls for the model ``kind`` (Adam at ``lr``, clipped;
    ``free_bits`` nats per latent layer for the hierarchical and single-layer models)."""
    if kind == "vae":
        return _VAEStep(model, lr)
    return HierarchicalVAETrainStep(model, lr=lr, free_bits=free_bits)


def test_bounds(model, kind: str, x: np.ndarray, k: int, device: str) -> dict:
    """IWAE_k (mean, and per image in "iwae_per_image") and the ELBO (mean over 10 draws) on x,
    and the hierarchical model's per-layer KL."""
    p = next(iter(model.parameters()))
    xt = sg.tensor(x, dtype=p.dtype, device=device)
    out: dict = {}
    model.eval()
    with sg.no_grad():
        if kind == "vae":
            per = np.concatenate([
                iwae_log_likelihood(model, xt[i:i + 25], k=k, chunk=max(1, 4000 // 25)).numpy()
                for i in range(0, len(x), 25)]).astype(np.float64)
            out["iwae_per_image"], out["iwae"] = per, float(per.mean())
            out["elbo"] = float(np.mean([-model.loss(xt)["loss"].item() for _ in range(10)]))
        else:
            per = model.iwae_bound(xt, k=k, reduction="none")
            out["iwae_per_image"], out["iwae"] = per, float(per.mean())
            losses, kls = [], []
            for _ in range(10):
                loss, st = model.loss(xt)
                losses.append(-loss.item())
                kls.append([v.item() for v in st["kl_layers"]])
            out["elbo"] = float(np.mean(losses))
            out["kl_per_layer"] = [float(v) for v in np.mean(kls, axis=0)]
            out["layer_resolutions"] = [st["resolution"] for st in model.forward(xt[:1])[1]]
    return out


def parser() -> argparse.ArgumentParser:
    """This script's command line."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=["digits", "mnist"], default="digits",
                   help="digits (embedded, 8x8) or mnist")
    p.add_argument("--data-dir", default=None, help="folder with the four MNIST files")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="use only this many training images")
    p.add_argument("--model", default="hvae", choices=MODELS)
    p.add_argument("--compare", action="store_true", help="train hvae, single and vae")
    p.add_argument("--epochs", type=positive_int, default=150)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--free-bits", type=nonnegative_float, default=0.0,
                   help="train on recon + sum over layers of max(this, KL of the layer), nats")
    p.add_argument("--k", type=positive_int, default=1000,
                   help="importance samples of the test bound")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs/hierarchical_vae", help="the run's folder (a new one)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--resume", action="store_true",
                   help="continue (or, when finished, just re-evaluate) the runs in --out")
    add_run_options(p)
    return p


def main(argv: list[str] | None = None) -> dict:
    p = parser()
    args = p.parse_args(argv)
    # the test bound is measured after training: a resumed run may measure it with another k
    out = prepare_run_folder(args.out, "hierarchical-vae", args, args.resume,
                             may_change=MAY_CHANGE + ("k",), given=given_options(p, argv))

    with data_errors(args.data, args.data_dir):
        train = load_binary(args.data, True, args.data_dir, args.limit)
        test = load_binary(args.data, False, args.data_dir, None)
    size = train.shape[-1]
    kinds = list(MODELS) if args.compare else [args.model]
    sg.manual_seed(args.seed)
    target = target_parameters(size)
    results: dict = {"data": args.data, "epochs": args.epochs, "batch_size": args.batch_size,
                     "lr": args.lr, "k": args.k, "train_images": len(train),
                     "test_images": len(test), "models": {}}
    per_image: dict[str, np.ndarray] = {}
    for kind in kinds:
        sg.manual_seed(args.seed)
        model = build(kind, size, target).to(args.device)
        step = make_step(kind, model, args.lr, args.free_bits)
        loader = DataLoader(ArrayDataset(train), batch_size=args.batch_size, shuffle=True,
                            seed=args.seed, device=args.device)
        print(f"== {kind}: {model.num_parameters()} parameters, {args.epochs} epochs")
        trainer = Trainer(step, loader, out / kind, epochs=args.epochs, modules={"model": model},
                          log_every=5 * len(loader), checkpoint_seconds=args.checkpoint_every,
                          allow_nonfinite=args.allow_nonfinite, seed=args.seed,
                          resume=args.resume)
        fit = trainer.fit()
        t0 = time.perf_counter()
        sg.manual_seed(args.seed + 1)
        bounds = test_bounds(model, kind, test, args.k, args.device)
        eval_seconds = time.perf_counter() - t0
        per_image[kind] = bounds["iwae_per_image"]
        train_bound = test_bounds(model, kind, train[:len(test)], min(args.k, 100), args.device)
        with sg.no_grad():
            model.eval()
            samples = model.sample(64)
            xt = sg.tensor(test[:32], device=args.device)
            rec = model.reconstruct(xt)
        scale = max(1, 64 // size)
        save_image_grid(samples.numpy(), out / f"samples_{kind}.png", nrow=8, value_range=(0, 1),
                        scale=scale, caption=f"64 samples of the {kind} model, drawn top-down "
                                             "from its prior (Bernoulli means)")
        pairs = np.stack([test[:32], np.asarray(rec.numpy())], axis=1).reshape(64, 1, size, size)
        save_image_grid(pairs, out / f"reconstructions_{kind}.png", nrow=16, value_range=(0, 1),
                        scale=scale, col_labels=["test", "recon."] * 8,
                        caption="odd columns: the first 32 binarized test images; even columns: "
                                f"the {kind} model's reconstructions (z ~ q(z|x), Bernoulli "
                                "means)")
        entry = {"parameters": model.num_parameters(), f"test_iwae_k{args.k}": bounds["iwae"],
                 "test_elbo": bounds["elbo"],
                 "train_iwae_k%d_first_%d" % (min(args.k, 100), len(test)): train_bound["iwae"],
                 "seconds": fit.seconds, "seconds_per_epoch": fit.seconds / max(fit.epoch, 1),
                 "eval_seconds": eval_seconds, "final_losses": fit.losses}
        if "kl_per_layer" in bounds:
            entry["test_kl_per_layer"] = bounds["kl_per_layer"]
            entry["layer_resolutions"] = bounds["layer_resolutions"]
        results["models"][kind] = entry
        print(f"{kind}: test IWAE_{args.k} {bounds['iwae']:.3f} nats, test ELBO "
              f"{bounds['elbo']:.3f}, {entry['seconds_per_epoch']:.1f} s/epoch"
              + (f", KL per layer (top first) {[round(v, 3) for v in bounds['kl_per_layer']]}"
                 if "kl_per_layer" in bounds else ""))
    if "hvae" in per_image:
        # paired over the test images: the bound's difference and its standard error (this is
        # the evaluation noise for these trained models, not the spread over training seeds)
        for kind, per in per_image.items():
            if kind != "hvae":
                d = per_image["hvae"] - per
                results["models"][kind]["hvae_minus_this"] = {
                    "mean": float(d.mean()), "standard_error": float(d.std(ddof=1) / np.sqrt(len(d)))}
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    if len(kinds) > 1:
        print(f"\n{'model':8s} {'params':>8s} {'test IWAE_' + str(args.k):>16s} {'test ELBO':>10s}"
              f"  {'hvae - model (paired s.e.)':>26s}")
        for kind, e in results["models"].items():
            diff = e.get("hvae_minus_this")
            extra = f"  {diff['mean']:+12.3f} ({diff['standard_error']:.3f})" if diff else ""
            print(f"{kind:8s} {e['parameters']:8d} {e[f'test_iwae_k{args.k}']:16.3f} "
                  f"{e['test_elbo']:10.3f}{extra}")
    print(f"wrote {out / 'metrics.json'}")
    return results


def sample(run: str | pathlib.Path, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """n images drawn top-down from the prior of a ``hierarchical-vae`` run (its hierarchical
    model when it trained one, as ``--compare`` does, else its ``--model``): the Bernoulli
    means, float32 (n, 1, S, S) in [0, 1]. The models are unconditional: ``label`` must be
    None."""
    if label is not None:
        raise ValueError(f"--label {label}: the hierarchical VAE is unconditional (it has no "
                         "classes)")
    opts = read_run_config(run, "hierarchical-vae")["options"]
    kind = "hvae" if opts.get("compare") else opts["model"]
    size = 28 if opts["data"] == "mnist" else 8
    model = build(kind, size, target_parameters(size)).to(device)
    model.load_state_dict(load_run_state(pathlib.Path(run) / kind, device)["modules"]["model"])
    model.eval()
    with sg.no_grad(), isolated_rng(seed):
        x = model.sample(n).numpy()
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def evaluate(run: str | pathlib.Path, device: str = "cpu", k: int = 100, images: int = 1000,
             seed: int = 0) -> dict:
    """The test bounds of a ``hierarchical-vae`` run's newest checkpoints, in nats per image
    (higher is better), on the first ``images`` binarized test images of the run's data:
    ``"iwae"``, the importance-weighted bound IWAE_k (``k`` samples per image, drawn from
    ``seed``; z_i holds every layer's sample), ``"elbo"`` (the mean of 10 one-sample
    estimates) and, for the hierarchical model, ``"kl_per_layer"`` (top first) -- of the
    run's hierarchical model when it trained one (as ``--compare`` does), else of its
    ``--model``; with ``--compare`` the other two models' figures are under ``"compared"``.
    Also ``"variant"`` (which model: hvae, single or vae), ``"k"``, ``"images"``, ``"data"``
    and ``"step"``.

    Args:
        k: importance samples per image (the run's own test bound used --k, default 1000)
        images: test images to average over (the first ones)
        seed: seed of the importance samples
    """
    if k < 1:
        raise ValueError(f"--k {k}: the bound needs at least one importance sample")
    if images < 1:
        raise ValueError(f"--images {images}: must be at least 1")
    opts = read_run_config(run, "hierarchical-vae")["options"]
    kinds = list(MODELS) if opts.get("compare") else [opts["model"]]
    main_kind = "hvae" if "hvae" in kinds else kinds[0]
    states = {kind: load_run_state(pathlib.Path(run) / kind, device) for kind in kinds}
    with data_errors(opts["data"], opts.get("data_dir")):
        test = load_binary(opts["data"], False, opts.get("data_dir"), None)[:images]
    size = test.shape[-1]
    target = target_parameters(size)
    figures = {}
    for kind in kinds:
        model = build(kind, size, target).to(device)
        model.load_state_dict(states[kind]["modules"]["model"])
        with isolated_rng(seed):
            bounds = test_bounds(model, kind, test, k, device)
        figures[kind] = {"iwae": bounds["iwae"], "elbo": bounds["elbo"],
                         "step": int(states[kind]["step"])}
        if "kl_per_layer" in bounds:
            figures[kind]["kl_per_layer"] = bounds["kl_per_layer"]
    result = {"variant": main_kind, **figures.pop(main_kind), "k": k, "images": len(test),
              "data": opts["data"]}
    if figures:
        result["compared"] = figures
    return result


if __name__ == "__main__":
    main()
