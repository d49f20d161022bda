"""Fast style transfer (Johnson, Alahi & Fei-Fei 2016) on the shipped colour photos, or with
``--optimize`` the optimisation of one picture's pixels (Gatys, Ecker & Bethge 2016).

    scratchgen train style-transfer                          # mosaic style, the 4 shipped photos
    scratchgen train style-transfer --style hubble --out runs/st-hubble
    scratchgen train style-transfer --style my_painting.jpg --content my_photo.png chelsea
    scratchgen train style-transfer --optimize --content coffee --out runs/st-gatys
    scratchgen train style-transfer --vgg-weights vgg16.npz  # the papers' loss network
    scratchgen sample runs/style-transfer --n 4 --out stylised.png

``--style`` and ``--content`` take a shipped image's name (``scratchgen.data.photos``: content
photos chelsea, coffee, astronaut, rocket; style images mosaic, hubble, retina) or an image
file; ``--content`` takes one or more (default: the four shipped photos).

What a run does (``models.style_transfer`` has the networks and the equations):

* Training (default): the transformation network f_W learns to stylise random
  ``--image-size`` crops (64 px; flipped at random) of the content photos, each photo first
  resized so that its shorter side is 1.5 crops; one Adam step per batch of ``--batch-size``
  crops on lambda_c l_feat + lambda_s l_style + lambda_TV l_TV, with the content loss at
  relu2_2 and the style loss at relu1_2, relu2_2, relu3_3 and relu4_3 of the loss network
  (Johnson's layers). The style image is resized to a shorter side of ``--style-size``
  pixels: the Gram matrices describe the style at the scale of the loss network's pixels, so
  this sets how big the style's strokes come out.
* ``--optimize``: Gatys' variant on the first ``--content`` photo (cropped to the
  ``--show-size`` picture): ``--steps`` Adam steps (default 300) on its pixels, from the photo
  (``--init content``) or noise.

The paper trains 40,000 steps of batch 4 on 256x256 crops of 80,000 COCO photos with a 1.7M
parameter network on a GPU. Here everything is shrunk to a few CPU minutes: 64x64 crops of 4
photos, ``--width 16`` (425k parameters; the paper's is 32), 400 steps. The network sees too
few photos to generalise far beyond them, and too few steps to reach the paper's quality.

The loss network is VGG-16 (``models.vgg``) with *random* weights (``random_vgg16``, He
initialisation from ``--vgg-seed``), because the package ships no ImageNet weights and the
machines it was measured on cannot download them; ``--vgg-weights FILE.npz`` uses trained
ones (``load_vgg16``). A random VGG still sees colours and textures through its Gram matrices
(He, Wang & Hopcroft 2016), but not objects: its relu2_2 content loss keeps edges and colours
rather than "what is where".

Loss weights: lambda_c = 1 and lambda_TV = 1e-4 (on the sum of squared neighbour differences
of [0, 1] pixels, a small term here); lambda_s = 0.5 for training and 10 for ``--optimize``,
chosen by measurement. With the random VGG, the relu2_2 content loss is dominated by colour:
the 64x64 coffee photo with its RGB channels permuted is further from the photo (2.04) than a
flat grey picture (1.71), a 4x blur much nearer (0.19). So a network that recolours the photo
pays about as much content loss as one that erases it, and at lambda_s = 10 (or 2) the network
gave up the content (lambda_s = 10, 400 steps: content loss 2.11 -> 1.75, the grey picture's
level, its pictures stripes of the style's colours over faint outlines; lambda_s = 2, 150
steps: 2.07 -> 1.70, alike); at 0.5 it keeps the outlines (below). The optimisation starts
from the photo and stops long before the loss's minimum, so a strong style weight there still
leaves the photo recognisable.

Outputs in the run folder: ``stylised.png`` (each content photo beside its stylisation at
``--show-size``; an ``--optimize`` run: content, style and result), ``style.png``,
``samples/step_*.png`` along the way, ``losses.png`` (content and style losses, unweighted, log
scale), ``metrics.json`` (seconds per step, the losses at the start and the end: means over
the first and the last 10 steps), ``checkpoint.npz``; ``--resume`` continues a run exactly.

Measured on a shared 2-core CPU (other jobs running; ``nice -n 10``):

    nice -n 10 scratchgen train style-transfer --out runs/st          # the defaults: mosaic
      400 steps in 429 s, 1.06 s per step (7 min 12 s for the whole command); means over the
      first / last 10 steps: content 1.90 -> 1.24, style 12.95 -> 1.23, TV 153 -> 316. The
      style loss falls within 50 steps, the content loss slowly all along (losses.png).
      stylised.png: every photo is recognisable, the cat's eyes, nose and ears, the cup and
      saucer, the astronaut's orange suit and dark helmet, the launch tower and its glow, with
      the photo's colours washed into the style's (red, green, blue and magenta) and covered
      by a texture of short parallel colour streaks, finer than the mosaic's cells; nothing of
      the mosaic's flat cells or dark lead lines.
    nice -n 10 scratchgen train style-transfer --optimize --content coffee --out runs/st-gatys
      300 steps in 330 s, 1.10 s per step on the 128x192 picture (5 min 32 s in all); content
      0.22 -> 1.15 (it starts at the photo), style 10.8 -> 0.060, TV 2474 -> 2898.
      stylised.png: the cup and saucer stay sharp and clear; their colours are the style's
      (a red-magenta saucer, a blue cup, a yellow-green coffee, the wooden table olive and
      orange with green, blue and magenta patches), speckled with pixel-sized colour noise;
      again no cells and no dark lines.
    nice -n 10 scratchgen train style-transfer --style hubble --out runs/st-hubble
      400 steps in 342 s, 0.85 s per step (5 min 44 s in all); content 2.20 -> 2.29, style
      43.2 -> 1.63, TV 125 -> 139. stylised.png: black pictures strewn with small magenta, red
      and blue-green specks like the deep field's galaxies, the specks lined up along the
      photos' main edges (the cup's and saucer's rims, the cat's face, the tower), which are
      all that is left of the content: the content loss did not fall.
"""
from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any

import numpy as np

import scratchgen as sg
from scratchgen.data.photos import CONTENT_PHOTOS, cover_crop, image_from, resize_image
from scratchgen.losses.perceptual import PerceptualLoss
from scratchgen.models.style_transfer import (
    ImageOptimizationTrainStep, StyleTransferTrainStep, TransformerNet,
)
from scratchgen.models.vgg import (
    JOHNSON_CONTENT_LAYERS, JOHNSON_STYLE_LAYERS, load_vgg16, random_vgg16,
)
from scratchgen.train import (
    MAY_CHANGE, RunError, TimedStep, Trainer, given_options, load_run_state, plot_curves,
    prepare_run_folder, read_metrics, read_run_config, save_image_grid,
)
from scratchgen.train.options import (
    ArgumentParser, add_run_options, device, flag_error, nonnegative_float, nonnegative_int,
    positive_float, positive_int,
)

__all__ = ["parser", "main", "sample", "stylize", "load_network", "build_loss", "RandomCrops"]

NAME = "style-transfer"
#: Options a resumed run may change besides ``MAY_CHANGE``: they shape only the pictures.
RESUME_MAY_CHANGE = ("sample_every", "show_size")
BATCHES_PER_EPOCH = 100   # an "epoch" of random crops: a unit for the progress line only


def parser() -> argparse.ArgumentParser:
    """The command line; a value of the wrong type or range is refused with one line naming
    the flag."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--style", default="mosaic", metavar="NAME|PATH",
                   help="the style image: mosaic (default), hubble, retina, or an image file")
    p.add_argument("--content", nargs="+", default=None, metavar="NAME|PATH",
                   help="the content photos (default: chelsea coffee astronaut rocket); "
                        "--optimize uses the first")
    p.add_argument("--optimize", action="store_true",
                   help="Gatys et al.: optimise one picture's pixels instead of training")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="Adam steps (default 400 training, 300 with --optimize)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="Adam's learning rate (default 1e-3 training, as the paper; 0.02 on "
                        "the pixels with --optimize)")
    p.add_argument("--image-size", type=positive_int, default=64,
                   help="side of the training crops, a multiple of 4 (default 64)")
    p.add_argument("--batch-size", type=positive_int, default=4, help="crops per step (4)")
    p.add_argument("--width", type=positive_int, default=16,
                   help="channels of the network's first layer (16; the paper's 32)")
    p.add_argument("--num-residual", type=nonnegative_int, default=5,
                   help="residual blocks (5, as the paper)")
    p.add_argument("--style-size", type=positive_int, default=128,
                   help="shorter side of the style image in pixels (128)")
    p.add_argument("--show-size", type=positive_int, default=128,
                   help="height of the stylised pictures, a multiple of 4 (128; width 1.5x)")
    p.add_argument("--content-weight", type=nonnegative_float, default=1.0,
                   help="lambda_c, of the relu2_2 feature reconstruction loss (1)")
    p.add_argument("--style-weight", type=nonnegative_float, default=None,
                   help="lambda_s (default 0.5 training, 10 with --optimize: see the docstring)")
    p.add_argument("--tv-weight", type=nonnegative_float, default=1e-4,
                   help="lambda_TV, of the total variation (1e-4)")
    p.add_argument("--init", choices=("content", "noise"), default="content",
                   help="--optimize's starting picture (content)")
    p.add_argument("--vgg-weights", default=None, metavar="FILE.npz",
                   help="trained VGG-16 weights (default: random weights from --vgg-seed)")
    p.add_argument("--vgg-seed", type=nonnegative_int, default=0,
                   help="seed of the random VGG-16's weights (0)")
    p.add_argument("--sample-every", type=positive_int, default=100,
                   help="steps between pictures in samples/ (and checkpoints)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default=None,
                   help="the run's folder, a new one (default runs/style-transfer, "
                        "runs/style-transfer-optimize with --optimize)")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the crops, the network's initial weights and --init noise")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_run_options(p)
    return p


def _resolve(opts: dict[str, Any]) -> None:
    """Fill in the defaults that depend on --optimize and check what argparse cannot."""
    opts["content"] = list(opts["content"] or CONTENT_PHOTOS)
    if opts["steps"] is None:
        opts["steps"] = 300 if opts["optimize"] else 400
    if opts["style_weight"] is None:
        opts["style_weight"] = 10.0 if opts["optimize"] else 0.5
    if opts["lr"] is None:
        opts["lr"] = 0.02 if opts["optimize"] else 1e-3
    if opts["out"] is None:
        opts["out"] = "runs/style-transfer" + ("-optimize" if opts["optimize"] else "")
    for flag in ("image_size", "show_size"):
        if opts[flag] % 4 or opts[flag] < 8:
            raise flag_error("--" + flag.replace("_", "-"), opts[flag],
                        "must be a multiple of 4, at least 8 (the network halves it twice)")
    if opts["vgg_weights"] is not None and not pathlib.Path(opts["vgg_weights"]).is_file():
        raise flag_error("--vgg-weights", opts["vgg_weights"], "no such file")


def _image(flag: str, value: str, size: Any = None) -> np.ndarray:
    """A --style / --content image, any error as one line naming the flag."""
    try:
        return image_from(value, size)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{flag}: {exc}") from None


def show_shape(opts: dict[str, Any]) -> tuple[int, int]:
    """(height, width) of the stylised pictures: --show-size by 1.5 times it (multiple of 4)."""
    h = opts["show_size"]
    return h, int(round(h * 1.5 / 4)) * 4


def content_pictures(opts: dict[str, Any]) -> np.ndarray:
    """The --content photos as the pictures are drawn: (K, 3, H, W) in [0, 1]."""
    h, w = show_shape(opts)
    return np.stack([cover_crop(_image("--content", c), h, w) for c in opts["content"]])


def build_loss(opts: dict[str, Any]) -> tuple[PerceptualLoss, list[Any], np.ndarray]:
    """(the perceptual loss on the loss network, the style image's Gram matrices, the style
    image (3, H, W))."""
    dev = opts.get("device", "cpu")
    if opts.get("vgg_weights"):
        try:
            vgg = load_vgg16(opts["vgg_weights"], device=dev)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--vgg-weights: {exc}") from None
    else:
        vgg = random_vgg16(opts["vgg_seed"], device=dev)
    loss = PerceptualLoss(vgg, JOHNSON_CONTENT_LAYERS, JOHNSON_STYLE_LAYERS,
                          opts["content_weight"], opts["style_weight"], opts["tv_weight"])
    style = _image("--style", opts["style"], opts["style_size"])
    grams = loss.style_targets(sg.tensor(style[None], device=dev))
    return loss, grams, style


class RandomCrops:
    """Batches (N, 3, S, S) of random S x S crops of the photos, each flipped left-right with
    probability 1/2, from a seeded generator; ``state_dict`` holds the generator's state so
    that a resumed run gets the same crops. ``BATCHES_PER_EPOCH`` batches per pass."""

    def __init__(self, photos: list[np.ndarray], size: int, batch_size: int, seed: int,
                 device: Any = "cpu") -> None:
        short = int(round(1.5 * size))
        self.photos = [resize_image(p, short) for p in photos]
        self.size, self.batch_size, self.device = size, batch_size, device
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return BATCHES_PER_EPOCH

    def _crop(self) -> np.ndarray:
        p = self.photos[self.rng.integers(len(self.photos))]
        top = self.rng.integers(p.shape[1] - self.size + 1)
        left = self.rng.integers(p.shape[2] - self.size + 1)
        crop = p[:, top:top + self.size, left:left + self.size]
        return crop[:, :, ::-1] if self.rng.random() < 0.5 else crop

    def __iter__(self):
        for _ in range(len(self)):
            batch = np.stack([self._crop() for _ in range(self.batch_size)])
            yield sg.tensor(np.ascontiguousarray(batch), device=self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def _stylise(net: TransformerNet, pictures: np.ndarray, device: Any = "cpu") -> np.ndarray:
    """f_W of each picture, in eval mode, as float32 (K, 3, H, W) on the host."""
    was = net.training
    net.eval()
    with sg.no_grad():
        out = np.stack([net(sg.tensor(p[None], device=device)).numpy()[0] for p in pictures])
    net.train(was)
    return out.astype(np.float32)


def _pairs(content: np.ndarray, result: np.ndarray) -> np.ndarray:
    """(2K, 3, H, W): content 1, result 1, content 2, result 2, ... for a 2-column grid."""
    return np.stack([x for pair in zip(content, result) for x in pair])


def _write_outputs(opts: dict[str, Any], out: pathlib.Path, fit: Any, per_step: float,
                   extra: dict[str, Any]) -> dict[str, Any]:
    series = read_metrics(out / "metrics.jsonl")
    curves = {k: v for k, v in series.items() if k in ("content", "style", "tv")}
    if curves:
        plot_curves(curves, out / "losses.png", log_y=True, title="style transfer losses "
                    "(unweighted; mean over each 10 steps)")
    first = {k: float(v[0][1]) for k, v in series.items() if v}
    last = {k: float(v[-1][1]) for k, v in series.items() if v}
    metrics = {"model": NAME, "mode": "optimize" if opts["optimize"] else "train",
               "style": opts["style"], "content": opts["content"], "steps": fit.step,
               "seconds": fit.seconds, "train_seconds_per_step": per_step,
               "start_losses": first, "final_losses": last, **extra}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"{fit.step} steps in {fit.seconds:.0f} s ({per_step:.2f} s per step); losses at "
          f"the start {_shown(first)}, at the end {_shown(last)}")
    print(f"wrote stylised.png, style.png, losses.png and metrics.json to {out}")
    return metrics


def _shown(losses: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in losses.items())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train (or with --optimize, optimise one picture) as ``argv`` says; returns the dict
    written to metrics.json."""
    p = parser()
    args = p.parse_args(argv)
    opts = vars(args)
    _resolve(opts)
    try:
        # pictures do not change what is trained: a resumed run may redraw them
        out = prepare_run_folder(args.out, NAME, args, args.resume,
                                 may_change=MAY_CHANGE + RESUME_MAY_CHANGE,
                                 given=given_options(p, argv))
    except RunError as exc:
        raise SystemExit(str(exc)) from None
    sg.manual_seed(args.seed)
    loss_fn, grams, style = build_loss(opts)
    pictures = content_pictures(opts)
    h, w = show_shape(opts)
    style_shown = cover_crop(style, h, h)
    save_image_grid(style_shown[None], out / "style.png", value_range=(0, 1),
                    caption=f"style: {args.style} (shorter side {args.style_size} px in the loss)")
    common = dict(max_steps=args.steps, log_every=10, sample_every=args.sample_every,
                  checkpoint_every=args.sample_every, checkpoint_seconds=args.checkpoint_every,
                  allow_nonfinite=args.allow_nonfinite, resume=args.resume, seed=args.seed,
                  device=args.device)
    if args.optimize:
        return _optimize(opts, out, loss_fn, grams, pictures[:1], style_shown, common)

    net = TransformerNet(args.width, args.num_residual).to(args.device)
    step = StyleTransferTrainStep(net, loss_fn, grams, lr=args.lr)
    timed = TimedStep(step)
    crops = RandomCrops([_image("--content", c) for c in args.content], args.image_size,
                        args.batch_size, args.seed, args.device)
    n_params = sum(q.size for q in net.parameters())
    print(f"fast style transfer: style {args.style}, {len(args.content)} content photos, "
          f"{args.image_size}x{args.image_size} crops, batch {args.batch_size}, TransformerNet "
          f"width {args.width} ({n_params:,} parameters), loss network "
          f"{'VGG-16 from ' + args.vgg_weights if args.vgg_weights else 'random VGG-16'}, "
          f"weights content {args.content_weight:g} style {args.style_weight:g} TV "
          f"{args.tv_weight:g}, Adam lr {args.lr:g}, {args.steps} steps")

    def on_sample(s: int, folder: pathlib.Path) -> None:
        save_image_grid(_pairs(pictures, _stylise(net, pictures, args.device)),
                        folder / f"step_{s:06d}.png", nrow=2, value_range=(0, 1),
                        caption=f"content | stylised ({args.style}) after step {s}")

    fit = Trainer(timed, crops, out, modules={"network": net}, on_sample=on_sample,
                  **common).fit()
    stylised = _stylise(net, pictures, args.device)
    names = [pathlib.Path(c).stem for c in args.content]
    save_image_grid(_pairs(pictures, stylised), out / "stylised.png", nrow=2, value_range=(0, 1),
                    row_labels=names, col_labels=["content", "stylised"],
                    caption=f"each content photo and its stylisation in the style of "
                            f"{args.style} by the network after {fit.step} steps")
    return _write_outputs(opts, out, fit, timed.seconds / max(timed.calls, 1),
                          {"parameters": n_params})


def _optimize(opts: dict[str, Any], out: pathlib.Path, loss_fn: PerceptualLoss,
              grams: list[Any], picture: np.ndarray, style_shown: np.ndarray,
              common: dict[str, Any]) -> dict[str, Any]:
    """Gatys et al.'s variant under the Trainer (checkpoints, resume, log)."""
    dev = opts["device"]
    content = sg.tensor(picture, device=dev)
    if opts["init"] == "content":
        init = picture
    else:
        init = np.random.default_rng(opts["seed"]).uniform(0, 1, picture.shape)
    step = ImageOptimizationTrainStep(lambda x: loss_fn(x, content, grams),
                                 sg.tensor(init.astype(np.float32), device=dev), opts["lr"])
    timed = TimedStep(step)
    print(f"Gatys style transfer: {opts['content'][0]} in the style of {opts['style']}, "
          f"{picture.shape[2]}x{picture.shape[3]} pixels from {opts['init']}, Adam lr "
          f"{opts['lr']:g}, {opts['steps']} steps")

    def on_sample(s: int, folder: pathlib.Path) -> None:
        save_image_grid(step.image.numpy(), folder / f"step_{s:06d}.png", value_range=(0, 1),
                        caption=f"the picture after step {s}")

    fit = Trainer(timed, [None] * BATCHES_PER_EPOCH, out, on_sample=on_sample, **common).fit()
    result = step.image.numpy()[0]
    h = picture.shape[2]
    style_col = np.ones_like(picture[0])
    style_col[:, :, :h] = style_shown
    save_image_grid(np.stack([picture[0], style_col, result]), out / "stylised.png", nrow=3,
                    value_range=(0, 1), col_labels=["content", "style", "result"],
                    caption=f"Gatys et al.: {fit.step} Adam steps on the pixels, from the "
                            f"{opts['init']}")
    return _write_outputs(opts, out, fit, timed.seconds / max(timed.calls, 1), {})


# ---- using a trained run ------------------------------------------------------------------------

def load_network(run: pathlib.Path | str, device: str = "cpu"
                 ) -> tuple[TransformerNet, dict[str, Any]]:
    """(the run's TransformerNet from its newest checkpoint, in eval mode; the run's options).
    An --optimize run holds a picture, not a network: ``ValueError``."""
    opts = dict(read_run_config(run, NAME)["options"])
    if opts.get("optimize"):
        raise ValueError(f"{run} is an --optimize run: it holds one picture (stylised.png), "
                         "not a network that stylises")
    net = TransformerNet(opts["width"], opts["num_residual"]).to(device)
    net.load_state_dict(load_run_state(run, device)["modules"]["network"])
    net.eval()
    return net, opts


def stylize(run: pathlib.Path | str, image: str | np.ndarray, device: str = "cpu"
            ) -> np.ndarray:
    """An image (a shipped name, a file, or a float (3, H, W) array in [0, 1]) stylised by a
    trained run, float32 (3, H', W') in [0, 1]; H and W are cut down to multiples of 4."""
    net, _ = load_network(run, device)
    x = image_from(image) if isinstance(image, str) else np.asarray(image, np.float32)
    h, w = (x.shape[1] // 4) * 4, (x.shape[2] // 4) * 4
    return _stylise(net, x[None, :, :h, :w], device)[0]


def sample(run: pathlib.Path | str, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """``scratchgen sample RUN``: the run's content photos (the first n, repeated when n is
    larger) stylised at the run's --show-size, float32 (n, 3, H, W) in [0, 1]. There is
    nothing random to draw: ``seed`` is unused; ``label`` must be None."""
    if label is not None:
        raise ValueError(f"--label {label}: style transfer has no classes")
    net, opts = load_network(run, device)
    pictures = content_pictures(opts)
    return _stylise(net, pictures[np.arange(n) % len(pictures)], device)


if __name__ == "__main__":
    main()
