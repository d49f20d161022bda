"""Train a VAE (Kingma & Welling, 2014) and draw what it learned.

    scratchgen train vae                        # embedded digits at 28x28, no download
    scratchgen train vae --data mnist --data-dir DIR --epochs 10 \\
        --out runs/vae-mnist                            # the measured run: FC 784-400-20
    scratchgen train vae --arch conv --data mnist --data-dir DIR \\
        --epochs 2 --out runs/conv-vae-mnist            # the convolutional VAE, timed
    scratchgen train vae --device cuda ...      # the same on a GPU (needs CuPy)

The measured protocol is the PyTorch MNIST VAE example's: fc1 784->400, fc21/fc22 400->20,
fc3 20->400, fc4 400->784; Bernoulli decoder on pixel intensities in [0, 1] (not binarized);
Adam, lr 1e-3, batch 128. The test loss is that example's: the binary cross-entropy summed
over pixels plus the KL, for one sample z per image, averaged over the 10,000 test images
(= -ELBO in nats per image).

Measured (2-core shared CPU, OPENBLAS_NUM_THREADS=1 -- with two BLAS threads on a loaded
2-core machine the threads wait on each other and a step is up to 7x slower):

    test loss by epoch, seeds 0 / 1 / 2 (--seed):
      epoch 1   127.42 / 127.18 / 127.08      epoch 7   106.93 / 106.69 / 106.68
      epoch 10  105.75 / 105.47 / 105.49      (the PyTorch example logs about 106.7 at epoch 7)
    seed 0, 1000 test images: ELBO -105.1, IWAE bound (k = 64) -100.9 nats
    FC VAE: about 5 s of process CPU time per epoch (469 steps); wall clock 8-16 s, other jobs
    sharing the machine. Conv VAE (32-64 channels, hidden 256): about 49 s CPU per epoch
    (165-200 s wall on the loaded machine); test loss 127.99, 111.03 after epochs 1, 2.

Writes to ``--out`` (a new folder; ``--resume`` continues the run in it): ``config.json`` (the
options), ``metrics.jsonl`` and ``checkpoint.npz`` (the Trainer's), ``samples/step_*.png`` (the
same 64 prior draws decoded after every epoch), ``samples.png``, ``reconstructions.png`` (odd
columns: test images, even: reconstructions), ``interpolations.png`` and
``interpolations_slerp.png`` (rows: test image to test image), ``traversal.png`` (rows: the most
active latent units, each swept over [-3, 3]), ``editing_thickness.png`` and
``editing_slant.png`` (rows: test images moved along an attribute vector, see below),
``manifold.png`` (``--z-dim 2`` only), ``vae.npz`` (weights and config) and ``summary.json``
(test loss and seconds per epoch, IWAE bound). ``scratchgen sample RUN`` draws new images from
the run's newest checkpoint (``sample``).

Attribute vectors: the classic "smile vector" (White, 2016) needs labelled attributes; digits
have none, so two are measured on the images -- stroke thickness (ink per image) and slant (the
shear of the pixel mass) -- and, within each digit class, the codes of the top 20% minus those
of the bottom 20% are averaged (class-balanced, so the vector does not change the digit).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time
from typing import Any

import numpy as np

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, image_shape, load_image_arrays
from scratchgen.metrics.likelihood import evaluate_iwae
from scratchgen.models import vae_tools
from scratchgen.models.steps import TrainStep
from scratchgen.models.vae import VAE
from scratchgen.serialization import load, save
from scratchgen.train import (
    MAY_CHANGE, History, Trainer, given_options, isolated_rng, load_run_state,
    prepare_run_folder, read_run_config, save_image_grid, save_interpolation_strip,
)
from scratchgen.train.options import (
    ArgumentParser, add_run_options, data_errors, device, nonnegative_int, positive_float,
    positive_int,
)

__all__ = ["main", "parser", "build_model", "load_images", "load_vae", "ink", "slant",
           "attribute_groups", "sample", "evaluate"]


load_images = load_image_arrays  # (train x, train y, test x, test y) in [0, 1]


def load_vae(path: str | pathlib.Path, device: str = "cpu") -> tuple[VAE, dict[str, Any]]:
    """A VAE saved by this script: (model in eval mode, the saved blob)."""
    blob = load(path)
    model = VAE(**blob["config"])
    model.load_state_dict(blob["state"])
    return model.to(device).eval(), blob


# ---- attributes measured on the images --------------------------------------------------------

def ink(x: np.ndarray) -> np.ndarray:
    """Mean intensity per image: thick strokes have more ink."""
    return x.reshape(len(x), -1).mean(axis=1)


def slant(x: np.ndarray) -> np.ndarray:
    """Shear of each image's pixel mass: -Cov(row, col) / Var(row). Rows grow downwards, so a
    stroke leaning right ('/') has its column falling as its row grows: positive slant."""
    img = x.reshape(len(x), x.shape[-2], x.shape[-1]).astype(np.float64)
    r = np.arange(img.shape[1], dtype=np.float64)[None, :, None]
    c = np.arange(img.shape[2], dtype=np.float64)[None, None, :]
    m = img.sum(axis=(1, 2)) + 1e-12
    rm = (img * r).sum(axis=(1, 2)) / m
    cm = (img * c).sum(axis=(1, 2)) / m
    cov = (img * (r - rm[:, None, None]) * (c - cm[:, None, None])).sum(axis=(1, 2)) / m
    var = (img * (r - rm[:, None, None]) ** 2).sum(axis=(1, 2)) / m
    return -cov / (var + 1e-12)


def attribute_groups(score: np.ndarray, labels: np.ndarray, frac: float = 0.2
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per class: (indices of the top ``frac`` by score, indices of the bottom ``frac``)."""
    groups = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        order = idx[np.argsort(score[idx])]
        k = max(1, int(len(order) * frac))
        groups.append((order[-k:], order[:k]))
    return groups


def class_balanced_vector(model: Any, x: np.ndarray, groups: list) -> sg.Tensor:
    """Mean over classes of (mean code of the top group - mean code of the bottom group)."""
    vecs = [vae_tools.attribute_vector(model, x[top], x[bottom]).numpy() for top, bottom in groups]
    return sg.tensor(np.mean(vecs, axis=0))


# ---- pictures ---------------------------------------------------------------------------------

def draw_pictures(model: VAE, out: pathlib.Path, xte: np.ndarray, yte: np.ndarray,
                  xtr: np.ndarray, ytr: np.ndarray, scale: int, seed: int) -> dict[str, Any]:
    """Every capability of vae_tools, as PNGs. Returns what is worth recording."""
    sg.manual_seed(seed + 1)
    shape = xte.shape[1:]
    vr = (0.0, 1.0)
    paths = []
    mean = "Bernoulli means" if model.likelihood == "bernoulli" else "Gaussian means"
    # samples from the prior
    paths.append(save_image_grid(model.sample(64), out / "samples.png", nrow=8,
                                 value_range=vr, scale=scale,
                                 caption=f"64 samples: z ~ N(0, I) decoded to the {mean} "
                                         "E[x | z]"))
    # reconstructions: one test image of each class, then more; image next to reconstruction
    pick = np.concatenate([np.flatnonzero(yte == c)[:3] for c in range(10)])[:32]
    rec = model.reconstruct(xte[pick]).numpy()
    pairs = np.stack([xte[pick], rec], axis=1).reshape((-1,) + shape)
    paths.append(save_image_grid(pairs, out / "reconstructions.png", nrow=16, value_range=vr,
                                 scale=scale, col_labels=["test", "recon."] * 8,
                                 caption="odd columns: test images (three of each digit); even "
                                         "columns: their reconstructions E[x | z = mu(x)]"))
    # interpolations between pairs of test images of different classes
    a = np.array([np.flatnonzero(yte == c)[0] for c in range(10)])
    b = np.array([np.flatnonzero(yte == (c + 1) % 10)[1] for c in range(10)])
    for method, name, how in (("linear", "interpolations.png", "linearly"),
                              ("slerp", "interpolations_slerp.png", "spherically (slerp)")):
        path = vae_tools.interpolate(model, xte[a], xte[b], steps=10, method=method)
        paths.append(save_interpolation_strip(
            path, out / name, value_range=vr, scale=scale,
            row_labels=[f"{c} to {(c + 1) % 10}" for c in range(10)],
            caption=f"rows: from a test image of digit c (left) to one of digit c + 1 (right); "
                    f"the 10 columns decode the codes E[z|x] interpolated {how}"))
    # latent traversal of the most active units, around the prior mean
    activity = vae_tools.unit_activity(model, xte[:2000])
    top = [int(i) for i in np.argsort(-activity)[:min(10, model.z_dim)]]
    grid = vae_tools.latent_traversal(model, dims=top, steps=11, limit=3.0)
    paths.append(save_interpolation_strip(
        grid, out / "traversal.png", value_range=vr, scale=scale,
        row_labels=[f"z{i}" for i in top],
        col_labels=[f"{v:g}" for v in np.linspace(-3.0, 3.0, 11)],
        caption=f"rows: the {len(top)} most active latent units (largest variance of E[z|x] "
                "over test images), each swept from -3 to 3 (the column headers) with the "
                "other units at 0, the prior mean"))
    # attribute editing through the encoder
    alphas = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
    edit_pick = np.array([np.flatnonzero(yte == c)[2] for c in range(10)])
    for name, score in (("thickness", ink), ("slant", slant)):
        vec = class_balanced_vector(model, xtr[:10000], attribute_groups(score(xtr[:10000]),
                                                                         ytr[:10000]))
        edited = vae_tools.edit(model, xte[edit_pick], vec, alphas)
        paths.append(save_interpolation_strip(
            edited, out / f"editing_{name}.png", value_range=vr, scale=scale,
            row_labels=[str(c) for c in range(10)],
            col_labels=[f"{a:+g}" if a else "0" for a in alphas],
            caption=f"rows: a test image of each digit; columns: its code E[z|x] moved by "
                    f"alpha (the column headers) times the {name} vector, decoded (alpha 0: "
                    "the reconstruction)"))
        # does moving along the vector change the measured attribute? (it should, monotonically)
        measured = [float(score(edited.numpy()[:, j]).mean()) for j in range(len(alphas))]
        print(f"  {name}: measured on the edited images for alpha {alphas}: "
              + " ".join(f"{m:.3f}" for m in measured))
    # the 2-D manifold: decode a grid over [-3, 3]^2 (Kingma & Welling's figure 4)
    if model.z_dim == 2:
        g = np.linspace(-3, 3, 15)
        zz = np.array([[u, v] for v in g[::-1] for u in g], dtype=np.float32)
        with sg.no_grad():
            imgs = model.eval().decode(vae_tools.as_input(model, zz))
        paths.append(save_image_grid(
            imgs, out / "manifold.png", nrow=15, value_range=vr, scale=scale,
            col_labels=[f"{u:.1f}" for u in g], row_labels=[f"{v:.1f}" for v in g[::-1]],
            caption="the decoder over the latent plane: z1 from -3 to 3 left to right (column "
                    "headers), z2 from 3 to -3 top to bottom (row labels)"))
    return {"active_units": int((activity > 0.01).sum()),
            "unit_activity": [round(float(v), 4) for v in activity],
            "pictures": [str(p) for p in paths]}


# ---- the run ----------------------------------------------------------------------------------

def _decoder_logvar(text: str) -> str:
    """``--decoder-logvar``: ``learned`` or a finite number."""
    if text != "learned":
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor 'learned'")
    return text


def parser() -> argparse.ArgumentParser:
    """This script's command line."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=["digits", "mnist"], default="digits",
                   help="embedded digits (no download) or MNIST")
    p.add_argument("--data-dir", default=None, help="folder with the four MNIST files")
    p.add_argument("--size", type=positive_int, default=28,
                   help="side of the digits images (digits only)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="default 10 on MNIST, 50 on the 1500 digits")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--arch", choices=["fc", "conv"], default="fc")
    p.add_argument("--z-dim", type=positive_int, default=20)
    p.add_argument("--hidden", type=positive_int, default=None,
                   help="default 400 (fc) or 256 (conv)")
    p.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default="bernoulli")
    p.add_argument("--decoder-logvar", type=_decoder_logvar, default="0.0",
                   help="Gaussian decoder: a fixed log sigma^2, or 'learned'")
    p.add_argument("--iwae-k", type=nonnegative_int, default=64,
                   help="samples of the IWAE bound (0: skip)")
    p.add_argument("--iwae-images", type=positive_int, default=1000,
                   help="test images for the IWAE bound")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs/vae", help="the run's folder (a new one)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_run_options(p)
    return p


def build_model(args: argparse.Namespace, shape: tuple[int, ...]
                ) -> tuple[VAE, optim.Adam, dict[str, Any]]:
    """The VAE that ``args`` (this script's options) asks for, for images of ``shape``
    (C, H, W), on ``args.device``, and its optimizer: (model, Adam, the model's config)."""
    logvar = args.decoder_logvar if args.decoder_logvar == "learned" else float(args.decoder_logvar)
    config = {"image_shape": tuple(shape), "z_dim": args.z_dim, "arch": args.arch,
              "hidden": args.hidden, "likelihood": args.likelihood, "decoder_logvar": logvar}
    model = VAE(**config).to(args.device)
    return model, optim.Adam(model.parameters(), lr=args.lr), config


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser()
    args = p.parse_args(argv)
    # the IWAE bound is measured after training: a resumed run may measure it otherwise
    out = prepare_run_folder(args.out, "vae", args, args.resume,
                             may_change=MAY_CHANGE + ("iwae_k", "iwae_images"),
                             given=given_options(p, argv))
    epochs = args.epochs if args.epochs is not None else (10 if args.data == "mnist" else 50)

    sg.manual_seed(args.seed)
    with data_errors(args.data, args.data_dir):
        xtr, ytr, xte, yte = load_images(args.data, args.data_dir, args.size)
    shape = tuple(xtr.shape[1:])
    model, opt, config = build_model(args, shape)
    print(f"VAE ({args.arch}, z = {args.z_dim}, {args.likelihood} decoder, "
          f"{model.num_parameters():,} parameters) on {args.data}: {len(xtr)} train / {len(xte)} "
          f"test images of {shape[1]}x{shape[2]}, device {args.device}")

    train_loader = DataLoader(ArrayDataset(xtr), batch_size=args.batch_size, shuffle=True,
                              seed=args.seed, device=args.device)
    test_loader = DataLoader(ArrayDataset(xte), batch_size=args.batch_size, device=args.device)
    fixed_z = sg.randn((64, args.z_dim), device=args.device)  # the same draws after every epoch
    history = History()  # checkpointed: a resumed run's summary keeps every epoch
    clock = {"start": time.perf_counter(), "cpu": time.process_time()}

    def end_of_epoch(trainer: Trainer) -> dict[str, float]:
        # training time only (the evaluation is not counted): wall clock, and this process's
        # CPU time, which other programs on a shared machine disturb less
        seconds = time.perf_counter() - clock["start"]
        cpu = time.process_time() - clock["cpu"]
        test = vae_tools.evaluate_loss(model, test_loader)
        row = {"epoch": trainer.epoch, "test_loss": test["loss"], "test_recon": test["recon"],
               "test_kl": test["kl"], "train_seconds": seconds, "train_cpu_seconds": cpu}
        history.append(row)
        clock["start"], clock["cpu"] = time.perf_counter(), time.process_time()
        return row

    def samples(step: int, folder: pathlib.Path) -> Any:
        return model.eval().decode(fixed_z)

    trainer = Trainer(TrainStep(model, opt), train_loader, out, epochs=epochs, modules={"vae": model},
                      optimizers={"adam": opt}, extras={"history": history}, log_every=50,
                      checkpoint_every=1000, checkpoint_seconds=args.checkpoint_every,
                      allow_nonfinite=args.allow_nonfinite, on_epoch_end=end_of_epoch,
                      sample_every=len(train_loader), on_sample=samples,
                      sample_value_range=(0.0, 1.0),
                      sample_caption="the same 64 draws z ~ N(0, I), decoded after step {step}",
                      resume=args.resume, seed=args.seed)
    trainer.fit()
    model.eval()
    save({"config": config, "state": model.state_dict(), "data": args.data}, out / "vae.npz")

    scale = max(1, 56 // shape[1])
    extra = draw_pictures(model, out, xte, yte, xtr, ytr, scale, args.seed)
    summary: dict[str, Any] = {"config": config, "epochs": list(history), **extra,
                               "command": "scratchgen train vae " + " ".join(argv or [])}
    if args.iwae_k > 0:
        sg.manual_seed(args.seed + 2)
        n = min(args.iwae_images, len(xte))
        batches = [xte[i:i + 100] for i in range(0, n, 100)]
        summary["iwae"] = {"k": args.iwae_k, "images": n,
                           "log_likelihood": evaluate_iwae(model, batches, k=args.iwae_k,
                                                           chunk=16)}
        sg.manual_seed(args.seed + 2)
        summary["iwae"]["elbo_same_images"] = -vae_tools.evaluate_loss(model, batches)["loss"]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if history:
        times = [h["train_seconds"] for h in history]
        cpu = [h["train_cpu_seconds"] for h in history]
        print("test loss per epoch: " + " ".join(f"{h['test_loss']:.2f}" for h in history))
        print(f"seconds per epoch (training only): wall mean {np.mean(times):.1f} (min "
              f"{np.min(times):.1f}, max {np.max(times):.1f}); process CPU mean {np.mean(cpu):.1f}")
    if "iwae" in summary:
        iw = summary["iwae"]
        print(f"on {iw['images']} test images: ELBO {iw['elbo_same_images']:.2f}, "
              f"IWAE (k = {iw['k']}) {iw['log_likelihood']:.2f} nats")
    print(f"wrote {out}/")
    return summary


def sample(run: str | pathlib.Path, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """n images of a ``vae`` run's newest checkpoint: z ~ N(0, I) (drawn from ``seed``), then
    the decoder's mean E[x | z] (Bernoulli probabilities, or Gaussian means clipped to
    [0, 1]); float32 (n, 1, H, W) in [0, 1]. The VAE is unconditional: ``label`` must be
    ``None``."""
    if label is not None:
        raise ValueError(f"--label {label}: the VAE is unconditional (it has no classes)")
    opts = argparse.Namespace(**read_run_config(run, "vae")["options"])
    opts.device = device
    model, _, _ = build_model(opts, image_shape(opts.data, opts.size))
    model.load_state_dict(load_run_state(run, device)["modules"]["vae"])
    model.eval()
    with sg.no_grad(), isolated_rng(seed):
        x = model.sample(n).numpy()
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def evaluate(run: str | pathlib.Path, device: str = "cpu", k: int = 64, images: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """The test log-likelihood bounds of a ``vae`` run's newest checkpoint, in nats per image
    (higher is better): ``"iwae"``, the importance-weighted bound L_k <= log p(x) (Burda et
    al. 2016, eq. 8) with ``k`` samples per image, and ``"elbo"``, the ELBO from the same
    samples (``vae_tools.evaluate_bounds``), averaged over the first ``images`` test images
    of the run's data (all of them when there are fewer); the samples are drawn from
    ``seed``, so the figures repeat. Also ``"k"``, ``"images"`` (the number used), ``"data"``
    and ``"step"`` (the checkpoint's training step).

    Args:
        k: importance samples per image (the bound tightens as k grows)
        images: test images to average over (the first ones)
        seed: seed of the importance samples
    """
    if k < 1:
        raise ValueError(f"--k {k}: the bound needs at least one importance sample")
    if images < 1:
        raise ValueError(f"--images {images}: must be at least 1")
    opts = argparse.Namespace(**read_run_config(run, "vae")["options"])
    opts.device = device
    state = load_run_state(run, device)
    with data_errors(opts.data, opts.data_dir):
        _, _, xte, _ = load_images(opts.data, opts.data_dir, opts.size)
    model, _, _ = build_model(opts, tuple(xte.shape[1:]))
    model.load_state_dict(state["modules"]["vae"])
    xte = xte[:images]
    batches = [xte[i:i + 100] for i in range(0, len(xte), 100)]
    with isolated_rng(seed):
        bounds = vae_tools.evaluate_bounds(model, batches, k=k, chunk=16)
    return {**bounds, "k": k, "data": opts.data, "step": int(state["step"])}


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
