"""Fit a gated PixelCNN prior (van den Oord et al., 2016) to the code maps of a trained VQ-VAE,
then sample code maps and decode them into images.

    scratchgen train pixelcnn-prior                 # embedded digits; trains a small VQ-VAE first
    scratchgen train pixelcnn-prior --vqvae runs/vq-vae-mnist/vqvae.npz \\
        --data mnist --data-dir DIR --epochs 20 --dropout 0.2 \\
        --out runs/vq-vae-mnist/prior                 # the measured MNIST prior (see below)
    ... --conditional                                 # class-conditional: one row per digit
    ... --dropout 0.3 --ema 0.999                     # more dropout, Polyak-averaged weights
    ... --dropout 0.3 --ema 0.9995 --ema-warmup --val-split 0.1
                                                      # select the epoch on held-out maps
    ... --dropout 0.3 --ema 0.999 --val-split 0.1 --refit
                                                      # choose the epoch count on held-out
                                                      # maps, then fit all maps that long

The VQ-VAE is frozen: its encoder turns every training and test image into an h x w map of codes
(7 x 7 for MNIST; read from ``codes.npz`` next to ``vqvae.npz``, which vq-vae writes), and
the PixelCNN learns p(c) = prod_i p(c_i | c_<i) on the training maps. The validation
cross-entropy is measured on the test images' maps, in nats per code (divide by ln 2 for bits).
With ``--val-split F`` a fraction F of the training maps is held out instead: validation runs
on them, the weights of the epoch with the best held-out figure are kept, and the test maps'
figure (logged after each epoch as ``test_nats_per_code``) is reported for those weights.
``--refit`` then trains again on all the training maps, from the same initial weights and
under the same ``--epochs`` schedule, and stops after the chosen number of epochs E
(Goodfellow, Bengio & Courville, "Deep Learning", Alg. 7.2: the held-out maps choose how long
to train, and are then trained on too). The held-out run is written to ``OUT/select``; the
refit is exactly the run without ``--val-split`` stopped after epoch E (the same epochs as a
fraction of the schedule, 11% more steps each).

Measured on MNIST (the second command and its variants, on the codes of vq_vae.py's run A:
plain codebook loss, 40 epochs, test normalised MSE 0.0403; seed 0; 64 channels, 8 layers;
Adam 1e-3, cosine decay to 0 over the 20 epochs; one thread of a 2-core CPU, ~300 s per
epoch). Validation nats per code after each epoch:

    after epoch                        1      5     10     12     13     14     15     20
    no dropout                     1.242  1.073  1.043  1.040  1.039  1.039  1.040  1.041
    --dropout 0.2                  1.233  1.060  1.034  1.031  1.032  1.030  1.031  1.032
    --dropout 0.3                  1.230  1.059  1.035  1.032  1.032  1.031  1.032  1.034
    --dropout 0.3 --ema 0.999      3.335  1.122  1.030  1.027  1.026  1.027  1.028  1.032
      (the averaged weights; the row above is the same run's raw weights)
    --dropout 0.3 --ema 0.9995 --ema-warmup --val-split 0.1 (54,000 maps fit):
      held-out maps                1.269  1.069  1.040  1.039  1.039  1.039  1.040  1.044
      test maps                    1.256  1.062  1.034  1.033  1.033  1.033  1.034  1.039
      -> keeps epoch 12 (best held-out, 1.0387): test 1.0327
    --dropout 0.3 --ema 0.9995 --ema-warmup --epochs 14 (cosine over 14 epochs; test maps):
                                   1.231  1.053  1.032  1.032  1.032  1.032      -      -
    --dropout 0.3 --ema 0.999 --val-split 0.1 --refit:
      held-out run, held-out maps  3.540  1.173  1.046  1.040  1.039  1.039  1.039  1.044
      held-out run, test maps      3.541  1.164  1.040  1.034  1.033  1.033  1.033  1.038
      -> chooses E = 14 (best held-out, 1.0387; those weights: test 1.0326)
      refit, all 60,000 maps       3.336  1.122  1.030  1.026  1.026  1.026      -      -
      -> test 1.0262 after epoch 14

Without dropout the prior overfits from about epoch 11 on (its training loss falls to 0.96);
dropout 0.2 ends at 1.032 (49 x 1.032 = 50.6 nats per image). The weight average is 0.004-0.006
nats better than the raw weights while the learning rate is still large (epochs 10-14) and
loses that edge as the cosine takes it to 0. Without ``--ema-warmup`` the average keeps
decay**t of the random initial weights (18% after 1,700 steps at 0.999: the 3.335 above). With
it, the decay stays below 0.999 for 8,990 steps (21 epochs here), so the warm-up runs average
over about a ninth of the steps so far whatever the decay, and end no better than 1.032. The
refit is the figure that keeps the test maps out of every choice and uses all the training
maps: 1.0262. The held-out runs' own weights (1.0326-1.0327) fit a tenth fewer maps. For
scale, the Keras VQ-VAE example's PixelCNN (on its own VQ-VAE's codes, validated on a tenth of
the training maps) logs 1.313 / 1.172 / 1.131 after epochs 1-3, 1.055 after 10 and 1.034 after
30. Decoded samples: ``samples.png``.

Writes to ``--out`` (a new folder; ``--resume`` continues the run in it): ``config.json``,
``metrics.jsonl`` / ``checkpoint.npz`` (the Trainer's), ``prior.npz`` (the PixelCNN and its
configuration), ``samples.png`` (code maps drawn from the prior, decoded by the VQ-VAE's
decoder), ``samples_codes.png`` (the drawn code maps themselves, one grey level per code) and
``summary.json`` (validation cross-entropy per epoch, seconds). ``scratchgen sample RUN``
draws new images from a run (``sample``).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

import numpy as np

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import image_shape, random_split
from scratchgen.models.pixelcnn import PixelCNN
from scratchgen.serialization import load, save
from scratchgen.train import (
    MAY_CHANGE, given_options, isolated_rng, load_run_state, prepare_run_folder,
    read_run_config, save_image_grid,
)
from scratchgen.train.options import ArgumentParser, fraction, positive_float, positive_int

from scratchgen.recipes.prior_fitting import fit_prior, validation_nll
from scratchgen.recipes.vq_vae import add_common_arguments, batched, load_images, load_vqvae

__all__ = ["main", "parser", "build_prior", "sample", "evaluate"]


def parser() -> argparse.ArgumentParser:
    """This script's command line."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p, "runs/pixelcnn-prior", epochs=10)
    p.add_argument("--vqvae", default=None,
                   help="vqvae.npz written by `scratchgen train vq-vae` (default: train one into "
                        "OUT/vqvae)")
    p.add_argument("--vqvae-epochs", type=positive_int, default=10,
                   help="epochs of the VQ-VAE trained when --vqvae is not given")
    p.add_argument("--channels", type=positive_int, default=64)
    p.add_argument("--layers", type=positive_int, default=8,
                   help="gated layers (1 type A, then B)")
    p.add_argument("--first-kernel", type=positive_int, default=7,
                   help="kernel of the type-A layer")
    p.add_argument("--dropout", type=fraction, default=0.0,
                   help="dropout on the gated layers' horizontal features (training only)")
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--cosine", action=argparse.BooleanOptionalAction, default=True,
                   help="cosine learning-rate decay to 0 over the run")
    p.add_argument("--ema", type=fraction, default=None, metavar="DECAY",
                   help="Polyak averaging of the weights with this decay (PixelCNN++: 0.9995); "
                        "validation, samples and prior.npz use the averages")
    p.add_argument("--ema-warmup", action="store_true",
                   help="the average's decay rises as min(DECAY, (1 + t) / (10 + t)) over the "
                        "updates t, so that it forgets the initial weights")
    p.add_argument("--val-split", type=float, default=0.0, metavar="FRACTION",
                   help="validate on this fraction of the training maps (held out, drawn with "
                        "--seed) instead of the test maps, keep the weights of the epoch with "
                        "the best held-out figure, and report the test maps' figure for them")
    p.add_argument("--refit", action="store_true",
                   help="with --val-split: after the held-out run (written to OUT/select), fit "
                        "all the training maps again from the same start, for the number of "
                        "epochs it chose (under the same --epochs schedule), and report that")
    p.add_argument("--conditional", action="store_true", help="class-conditional prior")
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    return p


def build_prior(args: argparse.Namespace, num_codes: int) -> tuple[PixelCNN, dict[str, Any]]:
    """The PixelCNN that ``args`` (this script's options) asks for, over maps of ``num_codes``
    codes, on ``args.device``: (prior, its config)."""
    config = {"num_codes": num_codes, "channels": args.channels, "num_layers": args.layers,
              "first_kernel": args.first_kernel, "num_classes": 10 if args.conditional else None,
              "dropout": args.dropout}
    return PixelCNN(**config).to(args.device), config


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not 0.0 <= args.val_split < 1.0:
        raise SystemExit(f"--val-split must be in [0, 1), got {args.val_split}")
    if args.ema_warmup and args.ema is None:
        raise SystemExit("--ema-warmup warms up the weight average: it needs --ema DECAY")
    if args.refit and not args.val_split:
        raise SystemExit("--refit chooses the number of epochs on held-out maps: it needs "
                         "--val-split")
    # sampling settings act after training: a resumed run may change them
    out = prepare_run_folder(args.out, "pixelcnn-prior", args, args.resume,
                             may_change=MAY_CHANGE + ("temperature",),
                             given=given_options(p, argv))
    args.argv = argv
    sg.manual_seed(args.seed)

    vq_path = pathlib.Path(args.vqvae) if args.vqvae else out / "vqvae" / "vqvae.npz"
    if not vq_path.exists():
        if args.vqvae:
            raise SystemExit(f"{vq_path} does not exist: train one with `scratchgen train vq-vae`")
        from scratchgen.recipes import vq_vae

        print(f"no VQ-VAE given: training one into {vq_path.parent} first")
        vq_vae.main(["--data", args.data, "--size", str(args.size), "--epochs",
                     str(args.vqvae_epochs), "--device", args.device, "--out",
                     str(vq_path.parent), "--seed", str(args.seed), "--checkpoint-every",
                     str(args.checkpoint_every)]
                    + (["--data-dir", args.data_dir] if args.data_dir else [])
                    + (["--allow-nonfinite"] if args.allow_nonfinite else [])
                    # one stopped before vqvae.npz was written continues
                    + (["--resume"] if (vq_path.parent / "config.json").exists() else []))
    vqvae, blob = load_vqvae(vq_path, args.device)
    xtr, ytr, xte, yte = load_images(args.data, args.data_dir, args.size)
    codes_file = vq_path.parent / "codes.npz"
    if codes_file.exists():
        with np.load(codes_file) as z:
            ctr, cte = z["train"], z["test"]
        if len(ctr) != len(xtr) or len(cte) != len(xte):   # codes of another data set
            ctr = cte = None
    else:
        ctr = cte = None
    if ctr is None:
        ctr = batched(vqvae.encode, xtr, args.device)
        cte = batched(vqvae.encode, xte, args.device)
    K = vqvae.num_embeddings
    shape = ctr.shape[1:]
    n_held = int(round(args.val_split * len(ctr)))
    held, fit = (np.sort(part.indices) for part in
                 random_split(range(len(ctr)), [n_held, len(ctr) - n_held], seed=args.seed))
    if args.val_split and not len(held):
        raise SystemExit(f"--val-split {args.val_split} holds out none of the {len(ctr)} "
                         f"training maps")
    cval, yval = (ctr[held], ytr[held]) if len(held) else (cte, yte)
    source = "held out of the training maps" if len(held) else "the test maps"
    print(f"PixelCNN prior over {shape[0]}x{shape[1]} maps of {K} codes: {len(fit)} train / "
          f"{len(cval)} validation maps ({source}); uniform would be ln K = {np.log(K):.3f} "
          f"nats per code")

    data = {"codes": ctr[fit], "labels": ytr[fit] if args.conditional else None,
            "val_codes": cval, "val_labels": yval if args.conditional else None,
            "test_codes": cte, "test_labels": yte if args.conditional else None}
    if not args.refit:
        _fit_and_report(args, out, vqvae, vq_path, data, held_out=bool(len(held)))
        return 0
    # the refit starts from the generators' state at this point, as a run without --val-split
    # does, so that it is that run stopped after the chosen epoch
    rng = sg.backend.get_rng_state()
    select_out = out / "select"
    if args.resume and (select_out / "summary.json").exists():
        selection = json.loads((select_out / "summary.json").read_text())
    else:
        print(f"choosing the number of epochs on the held-out maps ({select_out})")
        selection = _fit_and_report(args, select_out, vqvae, vq_path, data, held_out=True)
    chosen = selection.get("best_epoch")
    if chosen is None:
        raise SystemExit(f"{select_out / 'summary.json'} names no best epoch: run the "
                         f"selection again without --resume")
    print(f"refit on all {len(ctr)} training maps for {chosen} of the {args.epochs} epochs' "
          f"schedule")
    sg.backend.set_rng_state(rng)
    every = {"codes": ctr, "labels": ytr if args.conditional else None,
             "val_codes": cte, "val_labels": data["test_labels"],
             "test_codes": cte, "test_labels": data["test_labels"]}
    _fit_and_report(args, out, vqvae, vq_path, every, held_out=False, stop_after=chosen,
                    selection=selection)
    return 0


def _fit_and_report(args: argparse.Namespace, out: pathlib.Path, vqvae: Any,
                    vq_path: pathlib.Path, data: dict[str, Any], held_out: bool,
                    stop_after: int | None = None, selection: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """Fit a prior to ``data['codes']`` (validated on ``data['val_codes']``: held-out training
    maps when ``held_out``, which also keeps the best epoch's weights, else the test maps),
    then write prior.npz, the sample grids and summary.json into ``out``; returns the summary.
    ``stop_after`` / ``selection``: the refit, stopped after that epoch of the schedule, and
    the held-out run's summary that chose it."""
    out.mkdir(parents=True, exist_ok=True)
    K, shape = vqvae.num_embeddings, data["codes"].shape[1:]
    prior, config = build_prior(args, K)
    history = fit_prior(prior, data["codes"], data["val_codes"], out, args.epochs, args.lr,
                        args.batch_size, args.device, args.seed, labels=data["labels"],
                        val_labels=data["val_labels"], resume=args.resume,
                        cosine=args.cosine, ema_decay=args.ema, ema_warmup=args.ema_warmup,
                        test_codes=data["test_codes"] if held_out else None,
                        test_labels=data["test_labels"] if held_out else None,
                        keep_best=held_out, stop_after=stop_after,
                        checkpoint_seconds=args.checkpoint_every,
                        allow_nonfinite=args.allow_nonfinite)
    save({"config": config, "state": prior.state_dict(), "vqvae": str(vq_path)}, out / "prior.npz")

    # samples: 10 rows of 10 (one row per class when conditional)
    sg.manual_seed(args.seed + 1)
    y = np.repeat(np.arange(10), 10) if args.conditional else None
    codes = prior.sample(100, tuple(shape), y=y, temperature=args.temperature)
    with sg.no_grad():
        images = vqvae.decode(codes)
    rows = [f"class {c}" for c in range(10)] if args.conditional else None
    how = ("row c: 10 code maps drawn from the prior given class c" if args.conditional
           else "100 code maps drawn from the prior")
    save_image_grid(images, out / "samples.png", nrow=10, value_range=(-0.5, 0.5), scale=2,
                    row_labels=rows,
                    caption=f"{how} (temperature {args.temperature:g}), decoded by the VQ-VAE")
    save_image_grid(codes.numpy()[:, None].astype(np.float32), out / "samples_codes.png",
                    nrow=10, value_range=(0, K - 1), scale=4, row_labels=rows,
                    caption=f"the code maps of samples.png, one grey level per code index (black "
                            f"0, white {K - 1})")
    summary: dict[str, Any] = {
        "config": config, "epochs": history,
        "test_nats_per_code": validation_nll(prior, data["test_codes"], data["test_labels"],
                                             device=args.device),
        "vqvae": str(vq_path),
        "command": " ".join(["python", "-m", "scratchgen.recipes.pixelcnn_prior"]
                            + list(sys.argv[1:] if args.argv is None else args.argv))}
    kept = "the last epoch's weights"
    if held_out:
        summary["val_split"] = args.val_split
        summary["heldout_nats_per_code"] = validation_nll(
            prior, data["val_codes"], data["val_labels"], device=args.device)
        summary["best_epoch"] = history[-1]["best_epoch"] if history else None
        kept = (f"the best epoch's weights (epoch {summary['best_epoch']}, held-out "
                f"{summary['heldout_nats_per_code']:.4f})")
    if selection is not None:
        summary["refit_epochs"] = stop_after
        summary["selection"] = {k: selection[k] for k in
                                ("best_epoch", "heldout_nats_per_code", "test_nats_per_code")}
        kept = f"the refit's weights after epoch {stop_after} of {args.epochs}"
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    test = summary["test_nats_per_code"]
    print(f"test cross-entropy of {kept}: {test:.4f} nats per code "
          f"({test * np.prod(shape):.1f} nats per image); wrote {out}/")
    return summary


def sample(run: str | pathlib.Path, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """n images of a ``pixelcnn-prior`` run: code maps drawn from the prior (at the run's
    ``--temperature``; class ``label`` for a ``--conditional`` prior, else classes 0..9 in
    turn), decoded by the run's VQ-VAE; float32 (n, 1, H, W) in [0, 1]. The prior's weights
    are those of ``prior.npz`` when the run has finished, else of its newest checkpoint (the
    weight average, with ``--ema``)."""
    run = pathlib.Path(run)
    opts = argparse.Namespace(**read_run_config(run, "pixelcnn-prior")["options"])
    opts.device = device
    if label is not None and not opts.conditional:
        raise ValueError(f"--label {label}: this prior is unconditional (trained without "
                         "--conditional)")
    if label is not None and not 0 <= label < 10:
        raise ValueError(f"--label {label}: out of range for 10 classes (0..9)")
    vqvae, _ = load_vqvae(pathlib.Path(opts.vqvae) if opts.vqvae
                          else run / "vqvae" / "vqvae.npz", device)
    prior, _ = build_prior(opts, vqvae.num_embeddings)
    prior.to(device)
    if (run / "prior.npz").exists():
        prior.load_state_dict(load(run / "prior.npz")["state"])
    else:
        state = load_run_state(run, device)
        prior.load_state_dict(state["modules"]["prior"])
        if "ema" in state["extras"]:
            ema = optim.EMA(prior, opts.ema, opts.ema_warmup)
            ema.load_state_dict(state["extras"]["ema"])
            ema.copy_to(prior)
    prior.eval()
    shape = image_shape(opts.data, opts.size)
    with sg.no_grad():
        latent = tuple(vqvae.encode(sg.zeros((1,) + shape, device=device)).shape[1:])
    y = None
    if opts.conditional:
        y = np.full(n, label) if label is not None else np.arange(n) % 10
    with isolated_rng(seed):
        codes = prior.sample(n, latent, y=y, temperature=opts.temperature)
        with sg.no_grad():
            images = vqvae.decode(codes).numpy()
    return np.clip(images + 0.5, 0.0, 1.0).astype(np.float32)


def evaluate(run: str | pathlib.Path, device: str = "cpu", images: int = 10000
             ) -> dict[str, Any]:
    """The prior's test cross-entropy of a ``pixelcnn-prior`` run, as its summary.json reports
    it: ``"test_nats_per_code"`` (mean -log p(c_i | c_<i) over every position of the first
    ``images`` test code maps, given their classes for a ``--conditional`` prior), with
    ``"nats_per_image"`` (the same summed over a map), ``"uniform_nats_per_code"`` (ln K, a
    prior that knows nothing), ``"num_codes"``, ``"images"``, ``"data"`` and ``"step"``. The
    prior's weights are those ``sample`` uses (prior.npz when the run has finished, else the
    newest checkpoint's). Deterministic: nothing is sampled.

    Args:
        images: test code maps to measure on (the first ones)
    """
    if images < 1:
        raise ValueError(f"--images {images}: must be at least 1")
    run = pathlib.Path(run)
    opts = argparse.Namespace(**read_run_config(run, "pixelcnn-prior")["options"])
    opts.device = device
    state = load_run_state(run, device)
    vq_path = pathlib.Path(opts.vqvae) if opts.vqvae else run / "vqvae" / "vqvae.npz"
    vqvae, _ = load_vqvae(vq_path, device)
    prior, _ = build_prior(opts, vqvae.num_embeddings)
    if (run / "prior.npz").exists():
        prior.load_state_dict(load(run / "prior.npz")["state"])
    else:
        prior.load_state_dict(state["modules"]["prior"])
        if "ema" in state["extras"]:
            ema = optim.EMA(prior, opts.ema, opts.ema_warmup)
            ema.load_state_dict(state["extras"]["ema"])
            ema.copy_to(prior)
    xtr, _, xte, yte = load_images(opts.data, opts.data_dir, opts.size)
    cte = None
    codes_file = vq_path.parent / "codes.npz"
    if codes_file.exists():   # the maps training used, unless they are of another data set
        with np.load(codes_file) as z:
            if len(z["train"]) == len(xtr) and len(z["test"]) == len(xte):
                cte = z["test"][:images]
    xte, yte = xte[:images], yte[:images]
    if cte is None:
        cte = batched(vqvae.encode, xte, device)
    nats = validation_nll(prior, cte, yte if opts.conditional else None, device=device)
    K = vqvae.num_embeddings
    return {"test_nats_per_code": nats, "nats_per_image": nats * int(np.prod(cte.shape[1:])),
            "uniform_nats_per_code": float(np.log(K)), "num_codes": K, "images": len(cte),
            "data": opts.data, "step": int(state["step"])}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
