"""Convert torchvision's ImageNet-trained VGG-16 weights into the ``.npz`` that
``scratchgen.models.vgg.load_vgg16`` reads (run once, where PyTorch is installed):

    python scripts/convert_vgg16.py vgg16-397923af.pth vgg16_relu4_3.npz

The input is a state dict of ``torchvision.models.vgg16`` (the file torchvision downloads,
``vgg16-397923af.pth``, or ``torch.save(vgg16(weights=...).state_dict(), path)``). Its
convolutions live in ``features``, a ``Sequential`` whose indices count the ReLUs and pools
too, so conv1_1 ... conv4_3 are ``features.0, 2, 5, 7, 10, 12, 14, 17, 19, 21``
(``TORCHVISION_INDEX`` in ``scratchgen.models.vgg``). Those 20 arrays are renamed
(``features.0.weight`` -> ``conv1_1.weight``, ...) and kept unchanged: both libraries store a
convolution's weight as (out, in, kh, kw), torchvision's network reads RGB in [0, 1]
normalised with ImageNet's mean and std exactly as ``VGG16Features(normalize=True)`` does,
and both compute a cross-correlation. The rest (block 5, ``features.24`` on, and the
``classifier`` layers) is not needed by the loss network and is dropped.

(Johnson et al. used the Caffe VGG-16, which reads BGR in [0, 255] minus the mean pixel; its
weights would need the input channels reversed and the first layer rescaled. torchvision's
weights need neither.)

Only ``main`` needs torch, and imports it only to read a ``.pth``; the renaming is
``convert_state_dict``, plain NumPy. A ``.npz`` of torchvision-named arrays is accepted too.
"""
from __future__ import annotations

import argparse
import pathlib
import re
import sys
from typing import Any, Mapping

import numpy as np

from scratchgen.models.vgg import TORCHVISION_INDEX, check_vgg16_arrays, vgg16_shapes

#: torchvision ``features`` index -> our convolution name, for conv1_1 ... conv4_3
CONV_OF_INDEX = {i: name for name, i in TORCHVISION_INDEX.items() if name.startswith("conv")}
_KEY = re.compile(r"^features\.(\d+)\.(weight|bias)$")


def convert_state_dict(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """torchvision VGG-16 state dict (name -> array) -> ``{"conv1_1.weight": ..., ...}``.

    ``features.<i>.weight|bias`` for the ten convolutions of blocks 1-4 are renamed and
    converted to float32 NumPy arrays; block 5 (``features.24`` to ``features.28``) and
    ``classifier.*`` are dropped (a ``module.`` prefix, from ``DataParallel``, is ignored).
    Any other key, or a result missing a layer or with a wrong
    shape, raises a ``ValueError`` naming the keys.
    """
    out: dict[str, np.ndarray] = {}
    unknown = []
    for key, value in state.items():
        if key.startswith("module."):     # saved from a DataParallel wrapper
            key = key[len("module."):]
        m = _KEY.match(key)
        if m is not None and int(m.group(1)) in CONV_OF_INDEX:
            out[f"{CONV_OF_INDEX[int(m.group(1))]}.{m.group(2)}"] = np.asarray(value, np.float32)
        elif (m is not None and int(m.group(1)) >= 24) or key.startswith("classifier."):
            continue   # block 5 and the fully connected layers: not part of the loss network
        else:
            unknown.append(key)
    if unknown:
        raise ValueError("convert_state_dict: not keys of torchvision's vgg16: "
                         + ", ".join(unknown))
    check_vgg16_arrays(out, "convert_state_dict (after renaming)")
    return {k: out[k] for k in vgg16_shapes()}


def _read(path: pathlib.Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    try:
        import torch
    except ImportError:
        raise SystemExit(f"convert_vgg16: reading {path} needs PyTorch (pip install torch); "
                         "or pass a .npz of the state dict's arrays") from None
    try:   # weights_only: a state dict of tensors, never arbitrary pickled objects
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SystemExit(f"convert_vgg16: cannot read {path} as a state dict ({e})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SystemExit(f"convert_vgg16: {path} holds a {type(state).__name__}, not a state "
                         "dict (save one with torch.save(model.state_dict(), path))")
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=pathlib.Path, help="torchvision vgg16 state dict (.pth) "
                    "or a .npz of its arrays")
    ap.add_argument("output", type=pathlib.Path, help="the .npz to write")
    args = ap.parse_args(argv)
    if not args.source.is_file():
        raise SystemExit(f"convert_vgg16: no such file {args.source}")
    try:
        arrays = convert_state_dict(_read(args.source))
    except ValueError as e:
        raise SystemExit(f"convert_vgg16: {args.source}: {e}") from None
    with open(args.output, "wb") as f:
        np.savez(f, **arrays)
    n = sum(a.size for a in arrays.values())
    print(f"wrote {args.output}: {len(arrays)} arrays, {n:,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
