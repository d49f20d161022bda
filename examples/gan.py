"""Generative adversarial nets: I. Goodfellow et al., "Generative Adversarial Nets", NeurIPS
2014, on a mixture of 2-D Gaussians, where what the generator misses can be seen.

A generator G maps noise z ~ N(0, I) to a point G(z); a discriminator D(x) = sigmoid(l(x))
tells real points from generated ones. They play (eq. 1)

    min_G max_D  E_x[ log D(x) ] + E_z[ log(1 - D(G(z))) ]

alternately (Algorithm 1): one step of D on the negative of that value, then one step of G on
the non-saturating loss -E_z[log D(G(z))] (the paper's Sec. 3 fix for early training).

    python examples/gan.py                       # ring of 8 Gaussians, about 1 minute
    python examples/gan.py --data grid --steps 100000   # 25 Gaussians: harder, longer

The full recipe (PacGAN packing, EMA, mode-coverage metrics, images):
``scratchgen train gan``.
"""

import numpy as np

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, grid_of_gaussians, ring_of_gaussians
from scratchgen.losses import gan
from scratchgen.models.gan import MLPDiscriminator, MLPGenerator
from scratchgen.train import scatter_2d
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "gan.png", 10000, "optimiser steps of each network")
p.add_argument("--data", choices=["ring", "grid"], default="ring")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the data: 100,000 points, 8 Gaussians (std 0.01) on the unit circle, or 25 (std 0.05)
#    on the grid {-4, -2, 0, 2, 4}^2
if args.data == "ring":
    data = ring_of_gaussians(100_000, k=8, radius=1.0, std=0.01, seed=args.seed)
else:
    data = grid_of_gaussians(100_000, grid=5, spacing=2.0, std=0.05, seed=args.seed)
loader = DataLoader(ArrayDataset(data.points), batch_size=100, shuffle=True, seed=args.seed,
                    device="cpu")

# 2. the networks: 3 hidden layers of 128 units each (ReLU in G, LeakyReLU(0.2) in D)
G = MLPGenerator(z_dim=2, out_dim=2, hidden=128, layers=3, batch_norm=False, init="pytorch")
D = MLPDiscriminator(in_dim=2, hidden=128, layers=3, maxout=None, init="pytorch")
opt_g = optim.Adam(G.parameters(), lr=3e-3, betas=(0.5, 0.999))
opt_d = optim.Adam(D.parameters(), lr=3e-3, betas=(0.5, 0.999))

# 3. training: the learning rates stay for half the steps, then fall linearly to 0
step = 0
while step < args.steps:
    for (x,) in loader:
        lr = 3e-3 * min(1.0, 2.0 * (1.0 - step / args.steps))
        for opt in (opt_g, opt_d):
            opt.param_groups[0]["lr"] = lr
        fake = G(sg.randn(len(x), 2))
        # D's step: real points up, generated ones down; detach: no gradient reaches G
        loss_d = gan.discriminator_loss(D(x), D(fake.detach()), "bce")
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        # G's step on the same samples, through D, whose weights are held fixed
        D.requires_grad_(False)
        loss_g = gan.generator_loss(D(fake), "non-saturating")
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        step += 1
        if step % 1000 == 0 or step == args.steps:
            print(f"step {step}: L_D {loss_d.item():.3f}, L_G {loss_g.item():.3f}")
        if step == args.steps:
            break

# 4. pictures: 2,000 generated points over 2,000 real ones
G.eval()
with sg.no_grad():
    fake = G(sg.randn(2000, 2)).numpy()
points = np.concatenate([data.points[:2000], fake])
labels = np.array(["data"] * 2000 + ["G(z)"] * 2000)
half = 1.5 if args.data == "ring" else 5.5
scatter_2d(points, labels, args.out, title=f"GAN on the {args.data} after {step} steps",
           extent=(-half, half, -half, half), point_radius=1.5, xlabel="x1", ylabel="x2")
print(f"wrote {args.out}")
