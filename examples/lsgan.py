"""Least-squares GAN: X. Mao, Q. Li, H. Xie, R. Y. K. Lau, Z. Wang, S. P. Smolley, "Least
Squares Generative Adversarial Networks", ICCV 2017.

DCGAN's networks with the sigmoid cross-entropy replaced by least squares on D's raw output l
(their eq. 2 with the 0-1 coding a = 0, b = c = 1):

    L_D = 1/2 E_x[ (l(x) - 1)^2 ] + 1/2 E_z[ l(G(z))^2 ],      L_G = 1/2 E_z[ (l(G(z)) - 1)^2 ]

For the optimal D, G then minimises a Pearson chi^2 divergence; unlike the cross-entropy, the
loss keeps pulling generated samples that D already calls real but that lie far from the data.
Adam with lr 1e-3 and beta1 = 0.5, as the official code.

    python examples/lsgan.py                     # 28x28 digits, about 2 minutes

The full recipe (MNIST, checkpoints, FD / KID / precision / recall): ``scratchgen train lsgan``.
"""

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.losses import gan
from scratchgen.models.dcgan import DCGANDiscriminator, DCGANGenerator
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "lsgan.png", 3000, "optimiser steps of each network")
p.add_argument("--width", type=int, default=32, help="channels of the first layer (paper: 64)")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. DCGAN's networks: G: z (100) -> 2w x 7 x 7 -> w x 14 x 14 -> 1 x 28 x 28; D mirrors G
G = DCGANGenerator(z_dim=100, image_size=28, channels=1, width=args.width)
D = DCGANDiscriminator(image_size=28, channels=1, width=args.width, norm="batch")
opt_g = optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
opt_d = optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))

# 2. the data: the embedded digits at 28x28, scaled to [-1, 1], G's tanh range
x_train, _, _, _ = load_image_arrays("digits", size=28)
loader = DataLoader(ArrayDataset(x_train * 2 - 1), batch_size=32, shuffle=True,
                    drop_last=True, seed=args.seed, device="cpu")

# 3. training: one D step, then one G step on the same generated batch
step = 0
while step < args.steps:
    for (x,) in loader:
        fake = G(sg.randn(len(x), 100))
        loss_d = gan.discriminator_loss(D(x), D(fake.detach()), "lsgan")  # no gradient to G
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)                   # G's step through D, D held fixed
        loss_g = gan.generator_loss(D(fake), "lsgan")
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
    samples = G(sg.randn(64, 100))
save_image_grid(samples, args.out, nrow=8, value_range=(-1.0, 1.0), scale=2,
                caption=f"64 samples G(z), z ~ N(0, I), of an LSGAN after {step} steps")
print(f"wrote {args.out}")
