"""SNGAN: T. Miyato, T. Kataoka, M. Koyama, Y. Yoshida, "Spectral Normalization for Generative
Adversarial Networks", ICLR 2018.

Every weight W of the discriminator is divided by its largest singular value, W / sigma(W)
(their eq. 8; sigma from one power iteration per step), which bounds D's Lipschitz constant by 1
without a penalty. The loss is the hinge loss of the official runs,

    L_D = E_x[ relu(1 - D(x)) ] + E_z[ relu(1 + D(G(z))) ],      L_G = -E_z[ D(G(z)) ]

The networks are the paper's standard CNN (its Table 3), narrower. Of the paper's optimiser
settings (its Table 1) this uses C: Adam, lr 2e-4, betas (0.5, 0.999), one discriminator step
per generator step (the official runs' 5 steps with betas (0, 0.9) draw rougher digits in the
same few minutes).

    python examples/sngan.py                     # 28x28 digits, about 5 minutes

The full recipe (the ResNets, the class-conditional projection discriminator, MNIST, FD / KID):
``scratchgen train sngan``.
"""

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.losses import gan
from scratchgen.models.sngan import SNDiscriminator, SNGenerator
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "sngan.png", 3000, "optimiser steps of each network")
p.add_argument("--width", type=int, default=16, help="channels of the widest-resolution layer "
                                                     "(paper: 64)")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the networks: the standard CNN; spectral normalisation in every layer of D
G = SNGenerator(z_dim=128, image_size=28, channels=1, width=args.width, arch="cnn")
D = SNDiscriminator(image_size=28, channels=1, width=args.width, arch="cnn")
opt_g = optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
opt_d = optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))

# 2. the data: the embedded digits at 28x28, scaled to [-1, 1], G's tanh range
x_train, _, _, _ = load_image_arrays("digits", size=28)
loader = DataLoader(ArrayDataset(x_train * 2 - 1), batch_size=32, shuffle=True,
                    drop_last=True, seed=args.seed, device="cpu")

# 3. training: one D step, then one G step on the same generated batch
step = 0
while step < args.steps:
    for (x,) in loader:
        fake = G(sg.randn(len(x), 128))
        loss_d = gan.discriminator_loss(D(x), D(fake.detach()), "hinge")   # no gradient to G
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)                   # G's step through D, D held fixed
        loss_g = gan.generator_loss(D(fake), "hinge")
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        step += 1
        if step % 200 == 0 or step == args.steps:
            print(f"step {step}: L_D {loss_d.item():.3f}, L_G {loss_g.item():.3f}")
        if step == args.steps:
            break

# 4. pictures: 64 samples G(z), with batch norm on its running statistics
G.eval()
with sg.no_grad():
    samples = G(sg.randn(64, 128))
save_image_grid(samples, args.out, nrow=8, value_range=(-1.0, 1.0), scale=2,
                caption=f"64 samples G(z), z ~ N(0, I), of an SNGAN after {step} steps")
print(f"wrote {args.out}")
