"""What a trained image GAN is shown and measured by: the pictures its run writes (the fixed-noise
grids during training; samples, interpolations and latent arithmetic at the end) and its
evaluation on the shipped classifier's features, each figure beside the real-vs-real baseline.
``recipes/image_gan.py`` calls them; its docstring lists the files and the protocol."""
from __future__ import annotations

import pathlib
import time
from typing import Any, Callable

import numpy as np

import scratchgen as sg
from scratchgen.models import gan_tools
from scratchgen.models.gan_training import GANTrainStep, sample_latents
from scratchgen.train import isolated_rng, save_image_grid, save_png, to_grid

__all__ = ["classifier_for", "classifier_view", "host_images01", "print_evaluation",
           "labelled_rows", "fixed_latents", "sample_hook",
           "draw_final_pictures", "evaluate"]


def classifier_view(images01: np.ndarray, opts: dict[str, Any]) -> np.ndarray:
    """Images in [0, 1] as the shipped classifiers read them: 28x28 (MNIST at 32 cropped back,
    digits at another size resampled bilinearly with Pillow)."""
    x = np.asarray(images01, dtype=np.float32)
    s = x.shape[-1]
    if s == 28:
        return x
    if opts["data"] == "mnist" and s == 32:
        return x[..., 2:30, 2:30]
    from PIL import Image

    bilinear = getattr(Image, "Resampling", Image).BILINEAR
    out = np.empty((x.shape[0], 1, 28, 28), dtype=np.float32)
    for i, img in enumerate(x[:, 0]):
        out[i, 0] = np.asarray(Image.fromarray(img).resize((28, 28), bilinear))
    return np.clip(out, 0.0, 1.0)


def classifier_for(opts: dict[str, Any]) -> Any:
    """The shipped LeNet for the data set, or None when its weights are not installed."""
    try:
        from scratchgen.metrics.classifier import pretrained_classifier
        return pretrained_classifier(opts["data"], opts.get("device", "cpu"))
    except (ImportError, FileNotFoundError, ValueError) as exc:
        print(f"no classifier for {opts['data']} ({str(exc).splitlines()[0]}): "
              "skipping what needs one")
        return None


# ---- pictures ---------------------------------------------------------------------------------

def host_images01(images: Any) -> np.ndarray:
    """G's [-1, 1] images as a host float32 array in [0, 1]."""
    return gan_tools.to_unit(images).numpy().astype(np.float32)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font only
        return ImageFont.load_default()


def labelled_rows(rows: list[tuple[str, np.ndarray]], path: pathlib.Path, title: str = "",
                  scale: int = 2, padding: int = 2) -> pathlib.Path:
    """A picture of image rows, each with its label written on the left and a title on top:
    ``rows`` = [(label, images (K, C, H, W) in [0, 1])]; rows may differ in length."""
    from PIL import Image, ImageDraw

    font = _font(14)
    strips = [to_grid(imgs, nrow=len(imgs), padding=padding, value_range=(0, 1), scale=scale)
              for _, imgs in rows]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text: str) -> tuple[int, int]:
        left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    label_w = max([text_size(lab)[0] for lab, _ in rows] + [0]) + 12
    title_h = text_size(title)[1] + 14 if title else 4
    width = max(label_w + max(s.shape[1] for s in strips) + 4,
                text_size(title)[0] + 12 if title else 0)
    height = title_h + sum(s.shape[0] for s in strips) + 4
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((6, 5), title, fill=(0, 0, 0), font=font)
    y = title_h
    for (label, _), strip in zip(rows, strips):
        tile = Image.fromarray(strip if strip.shape[2] == 3 else np.repeat(strip, 3, axis=2))
        canvas.paste(tile, (label_w, y))
        th = text_size(label)[1]
        draw.text((6, y + (strip.shape[0] - th) // 2 - 2), label, fill=(0, 0, 0), font=font)
        y += strip.shape[0]
    return save_png(np.asarray(canvas), path)


def fixed_latents(G: Any, opts: dict[str, Any]) -> tuple[sg.Tensor, np.ndarray | None]:
    """The latents of the grids in samples/: 64 (8 a row), or for a conditional model 8 latents
    drawn as each of the 10 classes (one row per class); drawn from their own generator."""
    rng = np.random.default_rng(opts["seed"] + 12345)
    cond = gan_tools.is_conditional(G)
    n = 8 if cond else 64
    z = rng.standard_normal((n, G.z_dim)).astype(np.float32)
    if not cond:
        return sg.tensor(z, device=opts["device"]), None
    k = G.num_classes
    return sg.tensor(np.tile(z, (k, 1)), device=opts["device"]), np.repeat(np.arange(k), n)


def sample_hook(step: GANTrainStep, z: sg.Tensor, y: np.ndarray | None, scale: int
                ) -> Callable[[int, pathlib.Path], None]:
    """The Trainer's ``on_sample``: G (EMA weights if any) at the fixed latents, 8 a row."""
    def on_sample(step_no: int, folder: pathlib.Path) -> None:
        with step.sampling() as G:
            images = gan_tools.generate(G, z, y)
        caption = (f"the same latents after step {step_no}" + ("" if y is None else
                   "; row k: class k"))
        save_image_grid(host_images01(images), folder / f"step_{step_no:06d}.png", nrow=8,
                        value_range=(0, 1), scale=scale, caption=caption,
                        row_labels=None if y is None else [str(k) for k in range(len(y) // 8)])
    return on_sample


def draw_final_pictures(G: Any, opts: dict[str, Any], out: pathlib.Path, scale: int,
                        classifier: Any) -> dict[str, Any]:
    """samples.png, interpolation.png and (unconditional, with a classifier) arithmetic.png;
    returns what the arithmetic found."""
    t = opts["truncation"]
    found: dict[str, Any] = {}
    with isolated_rng(opts["seed"] + 1):
        if gan_tools.is_conditional(G):
            grid = gan_tools.class_grid(G, per_class=10, truncation=t)
            save_image_grid(host_images01(grid.reshape(-1, *grid.shape[2:])), out / "samples.png",
                            nrow=10, value_range=(0, 1), scale=scale,
                            caption="G(z, y): row k asks for class k, 10 latents each"
                                    + (f", truncated at {t}" if t else ""),
                            row_labels=[str(k) for k in range(grid.shape[0])])
        else:
            save_image_grid(host_images01(gan_tools.sample(G, 64, truncation=t)), out / "samples.png",
                            nrow=8, value_range=(0, 1), scale=scale,
                            caption="64 samples G(z), z ~ N(0, I)"
                                    + (f" truncated at {t}" if t else ""))
        like = next(iter(G.parameters()))
        z0, z1 = sample_latents(6, G.z_dim, like), sample_latents(6, G.z_dim, like)
        labels = np.arange(6) % G.num_classes if gan_tools.is_conditional(G) else None
        paths = {m: host_images01(gan_tools.interpolate(G, z0, z1, 10, m, labels))
                 for m in gan_tools.INTERPOLATIONS}
        rows = []
        for i in range(6):
            rows += [("linear", paths["linear"][i]), ("spherical", paths["spherical"][i])]
        labelled_rows(rows, out / "interpolation.png", "z0 -> z1: straight line, then great "
                      "circle (slerp)", scale=scale)
        if classifier is not None and not gan_tools.is_conditional(G):
            try:
                res = gan_tools.latent_arithmetic(
                    G, classifier, opts["equation"], candidates=2000, truncation=t,
                    preprocess=lambda x: sg.tensor(classifier_view(host_images01(x), opts),
                                                   device=opts["device"]))
            except ValueError as exc:
                print(f"latent arithmetic skipped: {exc}")
                found["arithmetic"] = {"equation": opts["equation"], "skipped": str(exc)}
            else:
                rows = []
                for (s, c), group, mean in zip(res.terms, res.group_images.numpy(),
                                               res.mean_images.numpy()):
                    # a white tile (the grid's padding colour) sets the mean apart
                    gap = np.ones_like(mean[None])
                    both = np.concatenate([group, gap, mean[None]], axis=0)
                    rows.append((f"{'-' if s < 0 else '+'} {c}", host_images01(both)))
                rows.append(("=", host_images01(res.result_images)))
                classes = " ".join(map(str, res.result_classes))
                title = (f"{res.title}: {res.group_images.shape[1]} samples and the mean z of "
                         f"each class; result (+ {len(res.result_classes) - 1} jittered) read "
                         f"as {classes}")
                labelled_rows(rows, out / "arithmetic.png", title, scale=scale)
                found["arithmetic"] = {"equation": res.equation,
                                       "result_classes": res.result_classes,
                                       "candidate_class_counts": res.counts}
    return found


# ---- evaluation -------------------------------------------------------------------------------

def evaluate(G: Any, opts: dict[str, Any], data: tuple[np.ndarray, ...], classifier: Any
             ) -> dict[str, Any]:
    """Metrics of G's samples against the test images, next to those of as many training
    images (the real-vs-real baseline); see the module docstring."""
    from scratchgen.metrics.features import class_accuracy, image_metrics

    xtr, ytr, xte, yte = data
    n = min(opts["eval_samples"], len(xte), len(xtr))
    rng = np.random.default_rng(opts["seed"] + 7)
    real = classifier_view(xte[rng.choice(len(xte), n, replace=False)] if n < len(xte)
                           else xte, opts)
    train = classifier_view(xtr[rng.choice(len(xtr), n, replace=False)], opts)
    cond = gan_tools.is_conditional(G)
    with isolated_rng(opts["seed"] + 2):
        labels = np.arange(n) % G.num_classes if cond else None
        fake = classifier_view(host_images01(gan_tools.sample(G, n, labels)), opts)
    t0 = time.perf_counter()
    result = {"n": n, "classifier": opts["data"],
              "model": image_metrics(real, fake, classifier, seed=opts["seed"]),
              "real_vs_real": image_metrics(real, train, classifier, seed=opts["seed"])}
    if cond:
        result["class_accuracy"] = class_accuracy(fake, labels, classifier)
        result["class_accuracy_real_test"] = class_accuracy(classifier_view(xte, opts), yte,
                                                            classifier)
    result["seconds"] = time.perf_counter() - t0
    return result


def print_evaluation(ev: dict[str, Any]) -> None:
    m, r = ev["model"], ev["real_vs_real"]
    print(f"evaluation on {ev['n']} samples ({ev['classifier']} classifier's features); "
          "model | real-vs-real:")
    for key in ("fd", "kid_mean", "classifier_score", "precision", "recall",
                "fake_class_kl_uniform"):
        print(f"  {key:22s} {m[key]:10.4f} | {r[key]:10.4f}")
    if "class_accuracy" in ev:
        print(f"  {'class accuracy':22s} {ev['class_accuracy']:10.4f} | "
              f"{ev['class_accuracy_real_test']:10.4f} (classifier on the test set)")
