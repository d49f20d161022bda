"""CycleGAN (Zhu et al. 2017) on an unpaired task with a measurable answer: thin <-> thick digits.

    scratchgen train cyclegan                   # embedded digits, no download (a few minutes)
    scratchgen train cyclegan --data mnist --data-dir ../shared/data/mnist --max-images 4000 \\
        --epochs 2 --epochs-decay 2 --out runs/cyclegan-mnist
    scratchgen train cyclegan --domain-a photos/ --domain-b paintings/ --out runs/mine
    scratchgen sample runs/cyclegan --n 64 --out g_of_a.png     # G(a) of 64 test images of A
    scratchgen eval runs/cyclegan                               # the metrics below, as JSON

The task (``data.strokes``): domain A = the first half of the training digits, eroded (thin
strokes); domain B = the second half, dilated (thick strokes). No image of A has its pair in B.
G: A -> B should thicken the strokes and F: B -> A thin them, keeping the digit. The labels are
never used in training; at the end they measure (on the test set, cut in halves the same way):

* content: the shipped classifier's accuracy on G(a) and F(b) against the labels of a and b,
  next to its accuracy on the real images of A and B (what a perfect translation would get);
* style: the mean stroke mass (mean ink per image, ``data.strokes.stroke_mass``) of A, G(A) and
  B, and ``moved_a_to_b`` = (m(G(A)) - m(A)) / (m(B) - m(A)), the fraction of the way from A's
  value to B's (1: G(A) has B's ink), and the same for B -> A;
* cycle reconstruction: mean |F(G(a)) - a| and |G(F(b)) - b| per pixel, images in [0, 1];
* seconds per step and per epoch of training.

Networks and training (``models.cyclegan``): the paper's losses, weights and optimiser (LSGAN,
lambda = 10 for both cycles, identity 0.5 lambda, pools of 50 fakes, Adam 2e-4 (0.5, 0.999),
N(0, 0.02) init, instance norm, the rate constant for ``--epochs`` then linearly to 0 over
``--epochs-decay``), with networks sized for 28x28 digits: ``--ngf 16 --ndf 16 --n-blocks 3
--d-layers 2 --batch-size 8`` by default (the paper: 64, 64, 6 or 9, 3, 1, for 128- or 256-px
photographs). Why: after the generator's two stride-2 layers a 28x28 digit is a 7x7 map, and
each residual block widens the receptive field by 4 of those cells; three blocks (plus the 7x7
and strided layers) already see the whole digit, where the paper's 9 blocks at 64x64 cells see
about a quarter of a 256-px photo. The 70x70 PatchGAN (3 layers) would leave one logit for the
whole 28x28 image; 2 layers give a 5x5 map of 34-px patches. Batch 8 instead of 1: instance
norm makes every image independent anyway, and it is 5x fewer steps on a CPU.

``--domain-a DIR --domain-b DIR`` trains on a user's own pictures (``data.folders``: PNG/JPEG,
one size and mode throughout; sides divisible by 4) with the paper's settings (``--ngf 64
--ndf 64 --n-blocks 9 --d-layers 3 --batch-size 1``, 100 + 100 epochs; use ``--n-blocks 6``
for 128-px pictures, and a GPU); no classifier then, the "stroke mass" is
simply the mean brightness, and the statistics are measured on (up to ``--eval-images`` of)
the training pictures themselves.

Measured on a shared 2-core CPU, run with ``nice -n 10`` beside other jobs (load average 7 to
9, so wall clock is about 2.5 times the CPU time; one step of the default networks takes 0.15 s
on an idle machine). Accuracy is "translated (real images of the target domain)":

    scratchgen train cyclegan                   # the default run, on the digits
      930 steps (10 epochs of 93) in 8 min 21 s wall, 3 min 9 s CPU; 0.53 s per step;
      148 / 149 test digits per domain, the shipped digits classifier:
      accuracy G(A) 0.980 (real B 0.872), F(B) 0.953 (real A 0.953);
      stroke mass A 0.183 -> G(A) 0.400 (B 0.425: 90% of the way), B -> F(B) 0.202 (92%);
      cycle L1 |F(G(a)) - a| 0.024, |G(F(b)) - b| 0.033
    scratchgen train cyclegan --data mnist --data-dir ../shared/data/mnist --max-images 4000 \
        --epochs 1 --epochs-decay 1 --out runs/cyclegan-mnist
      1000 steps (2 epochs of 500, batch 8) in 7 min 41 s wall, 3 min 31 s CPU; 0.44 s per step,
      219 s per epoch; 2000 test digits per domain, the shipped MNIST classifier:
      accuracy G(A) 0.971 (real B 0.988), F(B) 0.964 (real A 0.900);
      stroke mass A 0.060 -> G(A) 0.175 (B 0.206: 78% of the way), B -> F(B) 0.078 (88%);
      cycle L1 0.028 and 0.030

The translations keep the digit (the thinned MNIST digits F(b) are read better than the real
eroded ones, whose 2x2 erosion breaks some strokes) and move the ink most of the way; the
translations.png rows show clean, sharp strokes of the target width. The stroke mass alone
would also move for a blurred or noisy image; read it together with the accuracy and the
picture.
"""
from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any

import numpy as np

import scratchgen as sg
from scratchgen.data.folders import UnpairedLoader, load_image_folder
from scratchgen.data.strokes import load_stroke_domains, stroke_mass
from scratchgen.models.cyclegan import DEFAULTS, CycleGANTrainStep, build_cyclegan
from scratchgen.nn import Parameter
from scratchgen.optim import SGD
from scratchgen.optim.lr_scheduler import LinearDecayLR
from scratchgen.train import (
    MAY_CHANGE, RunError, TimedStep, Trainer, given_options, isolated_rng, load_run_state,
    plot_curves, prepare_run_folder, read_metrics, read_run_config, save_image_grid,
)
from scratchgen.train.options import (
    ArgumentParser, add_run_options, data_errors, device, flag_error, fraction, nonnegative_float,
    nonnegative_int, positive_float, positive_int,
)

__all__ = ["parser", "main", "sample", "evaluate", "load_domains", "translation_metrics",
           "schedule", "COLUMNS"]

#: Options a resumed run may change besides ``MAY_CHANGE`` (they shape only the pictures and
#: the evaluation).
RESUME_MAY_CHANGE = ("eval_images", "sample_every")
COLUMNS = ["a", "G(a)", "F(G(a))", "b", "F(b)", "G(F(b))"]
#: Network and batch sizes for the 28x28 digits, and the paper's, used for picture folders.
SMALL = {"ngf": 16, "ndf": 16, "n_blocks": 3, "d_layers": 2, "batch_size": 8}
PAPER = {"ngf": DEFAULTS["ngf"], "ndf": DEFAULTS["ndf"], "n_blocks": 9, "d_layers": 3,
         "batch_size": DEFAULTS["batch_size"]}
EPOCHS = {"digits": (5, 5), "mnist": (2, 2), "folders": (DEFAULTS["epochs"],
                                                         DEFAULTS["epochs_decay"])}


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=("digits", "mnist"), default="digits",
                   help="thin/thick digits from the embedded digits (default) or MNIST")
    p.add_argument("--data-dir", default=None, help="folder with the four MNIST files")
    p.add_argument("--domain-a", default=None, help="a folder of pictures of domain A")
    p.add_argument("--domain-b", default=None, help="a folder of pictures of domain B")
    p.add_argument("--max-images", type=positive_int, default=None,
                   help="train on the first N images of each domain (default all)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs at the constant rate (default 5 on digits, 2 on mnist, 100 on "
                        "folders)")
    p.add_argument("--epochs-decay", type=nonnegative_int, default=None,
                   help="epochs of linear decay to 0 that follow (default as --epochs)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="stop after this many steps instead")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"default {SMALL['batch_size']}; folders: 1 (the paper)")
    p.add_argument("--ngf", type=positive_int, default=None,
                   help=f"generator width (default {SMALL['ngf']}; folders: 64, the paper)")
    p.add_argument("--ndf", type=positive_int, default=None,
                   help=f"discriminator width (default {SMALL['ndf']}; folders: 64)")
    p.add_argument("--n-blocks", type=nonnegative_int, default=None,
                   help=f"residual blocks in G (default {SMALL['n_blocks']}; folders: 9; the "
                        "paper: 6 at 128 px, 9 at 256 px)")
    p.add_argument("--d-layers", type=positive_int, default=None,
                   help=f"PatchGAN stride-2 layers (default {SMALL['d_layers']}: 34-px patches;"
                        " folders: 3, the paper's 70-px)")
    p.add_argument("--lambda-cycle", type=nonnegative_float, default=DEFAULTS["lambda_cycle"],
                   help="weight of both cycle-consistency terms (default 10)")
    p.add_argument("--lambda-identity", type=nonnegative_float,
                   default=DEFAULTS["lambda_identity"],
                   help="identity weight, in units of --lambda-cycle (default 0.5)")
    p.add_argument("--pool-size", type=nonnegative_int, default=DEFAULTS["pool_size"],
                   help="fakes kept for the discriminators (default 50; 0: none)")
    p.add_argument("--lr", type=positive_float, default=DEFAULTS["lr"], help="Adam rate (2e-4)")
    p.add_argument("--beta1", type=fraction, default=DEFAULTS["betas"][0],
                   help="Adam's beta1 (default 0.5)")
    p.add_argument("--beta2", type=fraction, default=DEFAULTS["betas"][1],
                   help="Adam's beta2 (default 0.999)")
    p.add_argument("--eval-images", type=positive_int, default=2000,
                   help="test images per domain for the final metrics (default 2000)")
    p.add_argument("--sample-every", type=positive_int, default=200,
                   help="steps between the pictures in samples/ (and checkpoints)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs/cyclegan", help="the run's folder (a new one)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_run_options(p)
    return p


def check_options(opts: dict[str, Any], given: set[str]) -> None:
    """Fill the defaults that depend on the data; one-line ``SystemExit`` for unusable ones."""
    a, b = opts["domain_a"], opts["domain_b"]
    if a is not None or b is not None:
        if a is None or b is None:
            raise flag_error("--domain-a" if a is not None else "--domain-b", a or b,
                        f"needs {'--domain-b' if a is not None else '--domain-a'} DIR too")
        if "data" in given or "data_dir" in given:
            raise SystemExit(f"--data {opts['data']}: give either --data or --domain-a/--domain-b")
        opts["data"] = "folders"
    for key, value in (PAPER if opts["data"] == "folders" else SMALL).items():
        if opts[key] is None:
            opts[key] = value
    constant, decay = EPOCHS[opts["data"]]
    if opts["epochs"] is None:
        opts["epochs"] = constant
    if opts["epochs_decay"] is None:
        opts["epochs_decay"] = decay if "epochs" not in given else opts["epochs"]


def schedule(lr: float, epochs: int, epochs_decay: int) -> list[float]:
    """The learning rate of each epoch of a run: ``LinearDecayLR``'s values, as the run sets
    them (constant for ``epochs`` epochs, then linearly towards 0 over ``epochs_decay``)."""
    opt = SGD([Parameter(sg.zeros(1))], lr=lr)
    sched = LinearDecayLR(opt, epochs, epochs_decay)
    rates = []
    for _ in range(epochs + epochs_decay):
        rates.append(opt.param_groups[0]["lr"])
        sched.step()
    return rates


# ---- data -------------------------------------------------------------------------------------

def load_domains(opts: dict[str, Any]) -> dict[str, Any]:
    """``{"a", "b"}``: training images (N, C, H, W) in [0, 1]; ``"test_a"``, ``"test_b"`` and
    their ``"test_a_labels"``, ``"test_b_labels"`` (None for folders: the first
    ``--eval-images`` training pictures stand in for a test set)."""
    if opts["data"] == "folders":
        try:
            a = load_image_folder(opts["domain_a"])
        except (FileNotFoundError, ValueError) as exc:
            raise RunError(f"--domain-a {exc}") from None
        try:
            b = load_image_folder(opts["domain_b"], expected=a.shape[1:])
        except (FileNotFoundError, ValueError) as exc:
            like = f" like those of --domain-a {opts['domain_a']}" if "expected" in str(exc) else ""
            raise RunError(f"--domain-b {exc}{like}") from None
        if a.shape[2] % 4 or a.shape[3] % 4:
            raise RunError(f"--domain-a {opts['domain_a']}: pictures of {a.shape[3]}x"
                           f"{a.shape[2]}; the generator needs sides divisible by 4")
        k, m = opts["eval_images"], opts["max_images"]
        return {"a": a[:m], "b": b[:m], "test_a": a[:k], "test_b": b[:k],
                "test_a_labels": None, "test_b_labels": None}
    with data_errors(opts["data"], opts["data_dir"]):
        train, test = load_stroke_domains(opts["data"], opts["data_dir"])
    k, m = opts["eval_images"], opts["max_images"]
    return {"a": train.a[:m], "b": train.b[:m], "test_a": test.a[:k], "test_b": test.b[:k],
            "test_a_labels": test.a_labels[:k], "test_b_labels": test.b_labels[:k]}


def build(opts: dict[str, Any], channels: int) -> tuple[Any, Any, Any, Any]:
    nets = build_cyclegan(channels, ngf=opts["ngf"], ndf=opts["ndf"], n_blocks=opts["n_blocks"],
                          d_layers=opts["d_layers"])
    return tuple(n.to(opts.get("device", "cpu")) for n in nets)


# ---- translation and its measures -------------------------------------------------------------

def translate(net: Any, images01: np.ndarray, device: str = "cpu", batch: int = 100
              ) -> np.ndarray:
    """net's translation of images in [0, 1] (mapped to [-1, 1] and back), in eval mode."""
    was = net.training
    net.eval()
    out = []
    try:
        with sg.no_grad():
            for i in range(0, len(images01), batch):
                x = sg.tensor(images01[i:i + batch] * 2.0 - 1.0, device=device)
                out.append((net(x).numpy() + 1.0) / 2.0)
    finally:
        net.train(was)
    return np.concatenate(out).astype(np.float32)


def _classifier(data: str, device: str) -> Any:
    if data not in ("digits", "mnist"):
        return None
    from scratchgen.metrics.classifier import pretrained_classifier
    return pretrained_classifier(data, device)


def translation_metrics(G: Any, F: Any, domains: dict[str, Any], data: str,
                        device: str = "cpu") -> dict[str, Any]:
    """The figures of the module docstring on the test domains."""
    from scratchgen.metrics.features import class_accuracy

    a, b = domains["test_a"], domains["test_b"]
    g_a, f_b = translate(G, a, device), translate(F, b, device)
    f_g_a, g_f_b = translate(F, g_a, device), translate(G, f_b, device)
    mass = {k: float(stroke_mass(v).mean()) for k, v in
            (("A", a), ("G(A)", g_a), ("B", b), ("F(B)", f_b))}
    out: dict[str, Any] = {
        "test_images": {"A": len(a), "B": len(b)},
        "stroke_mass": mass,
        "moved_a_to_b": (mass["G(A)"] - mass["A"]) / (mass["B"] - mass["A"]),
        "moved_b_to_a": (mass["F(B)"] - mass["B"]) / (mass["A"] - mass["B"]),
        "cycle_l1": {"A": float(np.abs(f_g_a - a).mean()), "B": float(np.abs(g_f_b - b).mean())},
    }
    classifier = _classifier(data, device)
    if classifier is not None:
        ya, yb = domains["test_a_labels"], domains["test_b_labels"]
        out["accuracy"] = {"G(A)": class_accuracy(g_a, ya, classifier),
                           "F(B)": class_accuracy(f_b, yb, classifier),
                           "real A": class_accuracy(a, ya, classifier),
                           "real B": class_accuracy(b, yb, classifier)}
    return out


def draw_translations(G: Any, F: Any, a: np.ndarray, b: np.ndarray, path: pathlib.Path,
                      device: str = "cpu", caption: str = "") -> pathlib.Path:
    """Rows (a | G(a) | F(G(a)) | b | F(b) | G(F(b))), one pair of test images per row."""
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    g_a, f_b = translate(G, a, device), translate(F, b, device)
    cols = [a, g_a, translate(F, g_a, device), b, f_b, translate(G, f_b, device)]
    grid = np.stack(cols, axis=1).reshape(6 * n, *a.shape[1:])
    scale = max(1, 56 // a.shape[-1])
    return save_image_grid(grid, path, nrow=6, value_range=(0, 1), scale=scale,
                           col_labels=COLUMNS, caption=caption or None)


# ---- training ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train CycleGAN as the command line ``argv`` says; returns metrics.json's dict."""
    p = parser()
    args = p.parse_args(argv)
    given = given_options(p, argv)
    opts = vars(args)
    check_options(opts, given)
    try:
        out = prepare_run_folder(args.out, "cyclegan", args, args.resume,
                                 may_change=MAY_CHANGE + RESUME_MAY_CHANGE, given=given)
        sg.manual_seed(args.seed)
        domains = load_domains(opts)
    except RunError as exc:
        raise SystemExit(str(exc)) from None
    a, b = domains["a"], domains["b"]
    G, F, D_A, D_B = build(opts, a.shape[1])
    try:
        D_A.output_size(a.shape[2], a.shape[3])
    except ValueError as exc:
        raise flag_error("--d-layers", args.d_layers, str(exc)) from None
    step = CycleGANTrainStep(G, F, D_A, D_B, lambda_cycle=args.lambda_cycle,
                             lambda_identity=args.lambda_identity, pool_size=args.pool_size,
                             lr=args.lr, betas=(args.beta1, args.beta2), seed=args.seed)
    timed = TimedStep(step)
    try:
        loader = UnpairedLoader(a * 2.0 - 1.0, b * 2.0 - 1.0, args.batch_size, seed=args.seed,
                                device=args.device)
    except ValueError as exc:
        raise flag_error("--batch-size", args.batch_size, str(exc)) from None
    schedulers = {"lr_g": LinearDecayLR(step.opt_g, args.epochs, args.epochs_decay),
                  "lr_d": LinearDecayLR(step.opt_d, args.epochs, args.epochs_decay)}
    n_g = sum(q.size for q in G.parameters())
    n_d = sum(q.size for q in D_A.parameters())
    print(f"CycleGAN on {args.data}: {len(a)} A / {len(b)} B images of {a.shape[1:]}, G and F "
          f"{n_g:,} parameters each, D_A and D_B {n_d:,}; batch {args.batch_size}, "
          f"{len(loader)} steps per epoch, {args.epochs} + {args.epochs_decay} (decay) epochs")

    fixed_a, fixed_b = domains["test_a"][:8], domains["test_b"][:8]

    def on_sample(at: int, folder: pathlib.Path) -> None:
        draw_translations(G, F, fixed_a, fixed_b, folder / f"step_{at:06d}.png", args.device,
                          f"test images after step {at}")

    trainer = Trainer(timed, loader, out, epochs=args.epochs + args.epochs_decay,
                      max_steps=args.steps, modules={"G": G, "F": F, "D_A": D_A, "D_B": D_B},
                      schedulers=schedulers, scheduler_interval="epoch",
                      log_every=min(50, len(loader)), sample_every=args.sample_every,
                      on_sample=on_sample, checkpoint_every=args.sample_every,
                      checkpoint_seconds=args.checkpoint_every,
                      allow_nonfinite=args.allow_nonfinite, resume=args.resume, seed=args.seed,
                      device=args.device)
    fit = trainer.fit()
    per_step = timed.seconds / max(timed.calls, 1)
    metrics: dict[str, Any] = {
        "model": "cyclegan", "data": args.data, "steps": fit.step, "epochs": fit.epoch,
        "steps_per_epoch": len(loader), "seconds": fit.seconds,
        "train_seconds_per_step": per_step, "train_seconds_per_epoch": per_step * len(loader),
        "final_losses": fit.losses, "parameters": {"generator": n_g, "discriminator": n_d},
        "learning_rate": step.opt_g.param_groups[0]["lr"],    # of the next epoch
    }
    with isolated_rng(args.seed):
        metrics["eval"] = translation_metrics(G, F, domains, args.data, args.device)
        draw_translations(G, F, fixed_a, fixed_b, out / "translations.png", args.device,
                          f"test images after step {fit.step}: a | G(a) | F(G(a)) and "
                          "b | F(b) | G(F(b))")
    series = read_metrics(out / "metrics.jsonl")
    curves = {k: v for k, v in series.items() if k in ("loss_g", "gan_g", "gan_f", "cycle_a",
                                                       "cycle_b", "loss_d_a", "loss_d_b")}
    if curves:
        plot_curves(curves, out / "losses.png", title="CycleGAN losses", log_y=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _print_metrics(metrics)
    print(f"wrote translations.png, losses.png, metrics.json and samples/ to {out}")
    return metrics


def _print_metrics(m: dict[str, Any]) -> None:
    e = m["eval"]
    s = e["stroke_mass"]
    print(f"{m['steps']} steps ({m['epochs']} epochs) in {m['seconds']:.0f} s; "
          f"{m['train_seconds_per_step']:.3f} s per step, {m['train_seconds_per_epoch']:.1f} s "
          "per epoch of training steps")
    if "accuracy" in e:
        acc = e["accuracy"]
        print(f"classifier accuracy: G(A) {acc['G(A)']:.3f} (real B {acc['real B']:.3f}), "
              f"F(B) {acc['F(B)']:.3f} (real A {acc['real A']:.3f})")
    print(f"stroke mass: A {s['A']:.4f} -> G(A) {s['G(A)']:.4f} (B {s['B']:.4f}; "
          f"{e['moved_a_to_b']:.0%} of the way); B {s['B']:.4f} -> F(B) {s['F(B)']:.4f} "
          f"({e['moved_b_to_a']:.0%}); cycle L1 A {e['cycle_l1']['A']:.4f}, "
          f"B {e['cycle_l1']['B']:.4f}")


# ---- a finished run ---------------------------------------------------------------------------

def _load_run(run: pathlib.Path | str, device: str, eval_images: int | None = None
              ) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """(G, F) of the run's newest checkpoint in eval mode, its options and its domains."""
    opts = dict(read_run_config(run, "cyclegan")["options"])
    opts["device"] = device
    if eval_images is not None:
        opts["eval_images"] = eval_images
    domains = load_domains(opts)
    G, F, _, _ = build(opts, domains["a"].shape[1])
    state = load_run_state(run, device)
    G.load_state_dict(state["modules"]["G"])
    F.load_state_dict(state["modules"]["F"])
    return G.eval(), F.eval(), opts, domains


def sample(run: pathlib.Path | str, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """G(a) for the first n test images of domain A (of class ``label`` when given), float32
    (n, C, H, W) in [0, 1]; A's images are reused when n is larger. A translation draws no
    random numbers, so ``seed`` changes nothing."""
    G, _, _, domains = _load_run(run, device)
    a, labels = domains["test_a"], domains["test_a_labels"]
    if label is not None:
        if labels is None:
            raise ValueError(f"--label {label}: the run's pictures have no labels")
        a = a[labels == label]
        if len(a) == 0:
            raise ValueError(f"--label {label}: no test image of domain A has that label")
    return translate(G, a[np.arange(n) % len(a)], device)


def evaluate(run: pathlib.Path, device: str = "cpu", eval_images: int | None = None
             ) -> dict[str, Any]:
    """Classifier accuracy of G(A) and F(B), stroke masses and cycle L1 of the run's newest
    checkpoint on the test domains (see the module docstring of ``recipes/cyclegan.py``).

    Args:
        eval_images: test images per domain (default: the run's --eval-images)
    """
    G, F, opts, domains = _load_run(run, device, eval_images)
    return translation_metrics(G, F, domains, opts["data"], device)


if __name__ == "__main__":
    main()
