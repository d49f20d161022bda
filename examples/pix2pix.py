"""Pix2Pix: P. Isola, J.-Y. Zhu, T. Zhou, A. A. Efros, "Image-to-Image Translation with
Conditional Adversarial Networks", CVPR 2017.

A generator G maps an input image x to an output image (here: a digit's outline to the digit); a
discriminator D sees the pair (x, y) and says, patch by patch, whether y is the real output or
G's. G minimises the conditional GAN loss plus lambda = 100 times the L1 distance to the true
output (eq. 4), D its own loss halved:

    L_D = 1/2 ( -E[ log D(x, y) ] - E[ log(1 - D(x, G(x))) ] )
    L_G = -E[ log D(x, G(x)) ] + lambda E[ |y - G(x)| ]

With ``--loss l1`` the same U-Net learns from L1 alone: where several digits fit one sketch,
regression averages them and the picture blurs; the adversarial term keeps the output on real
digits.

    python examples/pix2pix.py                 # outline -> digit, about a minute
    python examples/pix2pix.py --loss l1       # the regression baseline

The full recipe (MNIST, coarse sketches, L2, sharpness and classifier figures):
``scratchgen train pix2pix``.
"""

import numpy as np

import scratchgen as sg
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays, paired_edges
from scratchgen.models.pix2pix import build_pix2pix, discriminator_loss, generator_loss
from scratchgen.optim import Adam
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "pix2pix.png", 1000, "optimiser steps of each network")
p.add_argument("--loss", choices=["gan+l1", "l1"], default="gan+l1")
p.add_argument("--width", type=int, default=16, help="channels of G's and D's first layers")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the networks: a U-Net from 32x32 down to 1x1 and back, with skip connections and dropout;
#    a PatchGAN of 2 layers (each logit judges a 34x34 patch) on the 2-channel pair (x, y)
G, D = build_pix2pix(1, 1, 32, ngf=args.width, ndf=args.width, n_layers=2, n_dropout=2)
opt_g = Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
opt_d = Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))


# 2. the data: each digit paired with its outline, padded to 32x32, scaled to tanh's [-1, 1]
def pairs(images):
    outlines, digits = paired_edges(images)
    pad = ((0, 0), (0, 0), (2, 2), (2, 2))
    return np.pad(outlines, pad) * 2 - 1, np.pad(digits, pad) * 2 - 1


x_train, _, x_test, _ = load_image_arrays("digits", size=28)
loader = DataLoader(ArrayDataset(*pairs(x_train)), batch_size=16, shuffle=True, seed=args.seed,
                    device="cpu")

# 3. training: a step of D on (x, y) against (x, G(x)), then a step of G through D held fixed
step = 0
while step < args.steps:
    for x, y in loader:
        fake = G(x)
        if args.loss == "gan+l1":
            loss_d, _ = discriminator_loss(D, x, y, fake)          # G(x) detached inside
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        D.requires_grad_(False)
        loss_g, parts = generator_loss(D, x, y, fake, args.loss, lambda_l1=100.0)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        step += 1
        if step % 100 == 0 or step == args.steps:
            print(f"step {step}: L_G {loss_g.item():.3f} (L1 {parts['l1'].item():.4f})")
        if step == args.steps:
            break

# 4. pictures: test outlines, G's digits (eval mode: no dropout, running statistics), the truth
G.eval()
x, y = pairs(x_test[:8])
with sg.no_grad():
    fake = G(sg.tensor(x)).numpy()
rows = np.concatenate([x, fake, y])
save_image_grid(rows, args.out, nrow=8, value_range=(-1.0, 1.0), scale=2,
                caption=f"pix2pix ({args.loss}) after {step} steps: test outlines, G(x), the "
                        "real digits")
print(f"wrote {args.out}")
