"""Conditional GAN: M. Mirza, S. Osindero, "Conditional Generative Adversarial Nets", 2014.

Both networks are told the class y: G draws an image of digit y, D judges whether (x, y) is a
real pair. The game is the GAN's with every term conditioned on y:

    L_D = -E_{x,y}[ log D(x, y) ] - E_{z,y}[ log(1 - D(G(z, y), y)) ],
    L_G = -E_{z,y}[ log D(G(z, y), y) ]

Here the label enters by concatenation, as the paper: G reads [z, onehot(y)], D reads the image
with 10 one-hot label planes appended. The networks and settings are DCGAN's; each generated
batch carries the real batch's labels.

    python examples/cgan.py                      # 28x28 digits, 2-4 minutes

The full recipe (conditional batch norm, the projection discriminator, MNIST, class accuracy):
``scratchgen train cgan``.
"""

import numpy as np

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.losses import gan
from scratchgen.models.cgan import build_conditional_gan
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "cgan.png", 3000, "optimiser steps of each network")
p.add_argument("--width", type=int, default=32, help="channels of the first layer (paper: 64)")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the networks: DCGAN's, with the label concatenated to both inputs
G, D = build_conditional_gan("concat", z_dim=100, image_size=28, channels=1,
                             width=args.width, num_classes=10)
opt_g = optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
opt_d = optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))

# 2. the data: the embedded digits at 28x28 in [-1, 1], with their labels
x_train, y_train, _, _ = load_image_arrays("digits", size=28)
loader = DataLoader(ArrayDataset(x_train * 2 - 1, y_train.astype(np.int64)), batch_size=32,
                    shuffle=True, drop_last=True, seed=args.seed, device="cpu")

# 3. training: one D step, then one G step on the same generated batch
step = 0
while step < args.steps:
    for x, y in loader:
        fake = G(sg.randn(len(x), 100), y)       # the real batch's classes
        loss_d = gan.discriminator_loss(D(x, y), D(fake.detach(), y), "bce")
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)                   # G's step through D, D held fixed
        loss_g = gan.generator_loss(D(fake, y), "non-saturating")
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        step += 1
        if step % 200 == 0 or step == args.steps:
            print(f"step {step}: L_D {loss_d.item():.3f}, L_G {loss_g.item():.3f}")
        if step == args.steps:
            break

# 4. pictures: one row per class, the same 8 latents down each column
G.eval()
z = sg.randn(8, 100).numpy()
with sg.no_grad():
    samples = G(sg.tensor(np.tile(z, (10, 1))), sg.tensor(np.repeat(np.arange(10), 8)))
save_image_grid(samples, args.out, nrow=8, value_range=(-1.0, 1.0), scale=2,
                row_labels=[str(c) for c in range(10)],
                caption=f"a conditional GAN after {step} steps: row y shows G(z, y), the same "
                        "8 latents z in every row")
print(f"wrote {args.out}")
