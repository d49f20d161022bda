"""DCGAN: A. Radford, L. Metz, S. Chintala, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", ICLR 2016.

The GAN's game (Goodfellow et al. 2014), D(x) = sigmoid(l(x)), G trained on the non-saturating
loss:

    L_D = -E_x[ log D(x) ] - E_z[ log(1 - D(G(z))) ],      L_G = -E_z[ log D(G(z)) ]

What DCGAN adds are networks and settings that make it train: strided convolutions instead of
pooling, batch norm in both networks (not at G's output nor D's input), ReLU and a tanh output
in G, LeakyReLU(0.2) in D, weights N(0, 0.02^2), Adam with lr 2e-4 and beta1 = 0.5.

    python examples/dcgan.py                     # 28x28 digits, 2-4 minutes

The full recipe (MNIST, checkpoints, interpolations, FD / KID / precision / recall):
``scratchgen train dcgan``.
"""

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.losses import gan
from scratchgen.models.dcgan import DCGANDiscriminator, DCGANGenerator
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "dcgan.png", 3000, "optimiser steps of each network")
p.add_argument("--width", type=int, default=32, help="channels of the first layer (paper: 64)")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the networks: G: z (100) -> 2w x 7 x 7 -> w x 14 x 14 -> 1 x 28 x 28; D mirrors it
G = DCGANGenerator(z_dim=100, image_size=28, channels=1, width=args.width)
D = DCGANDiscriminator(image_size=28, channels=1, width=args.width, norm="batch")
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
        fake = G(sg.randn(len(x), 100))
        loss_d = gan.discriminator_loss(D(x), D(fake.detach()), "bce")   # no gradient to G
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)                   # G's step through D, D held fixed
        loss_g = gan.generator_loss(D(fake), "non-saturating")
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
                caption=f"64 samples G(z), z ~ N(0, I), of a DCGAN after {step} steps")
print(f"wrote {args.out}")
