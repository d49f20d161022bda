"""SAGAN: H. Zhang, I. Goodfellow, D. Metaxas, A. Odena, "Self-Attention Generative Adversarial
Networks", ICML 2019.

A self-attention block lets every position of a feature map read from all the others (their
eq. 1-3): with 1x1 convolutions f, g, h, v of the features x,

    beta_{j,i} = softmax_i( f(x_i)^T g(x_j) ),   o_j = v( sum_i beta_{j,i} h(x_i) ),
    y_j = gamma o_j + x_j,   gamma starting at 0

It sits in both networks of a spectrally normalised GAN (SN in G too), trained with the hinge
loss and two time-scales, Adam lr 1e-4 for G and 4e-4 for D, betas (0, 0.9), one D step per
G step:

    L_D = E_x[ relu(1 - D(x)) ] + E_z[ relu(1 + D(G(z))) ],      L_G = -E_z[ D(G(z)) ]

    python examples/sagan.py                     # 28x28 digits, 5-8 minutes

The full recipe (class-conditional as the paper, MNIST, FD / KID): ``scratchgen train sagan``.
"""

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.losses import gan
from scratchgen.models.sagan import SADiscriminator, SAGenerator
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "sagan.png", 2500, "optimiser steps of each network")
p.add_argument("--width", type=int, default=16, help="channels of the widest-resolution layer "
                                                     "(paper: 64)")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the networks: residual blocks with spectral norm, self-attention on the 14x14 maps
G = SAGenerator(z_dim=128, image_size=28, channels=1, width=args.width, attention_resolution=14)
D = SADiscriminator(image_size=28, channels=1, width=args.width, attention_resolution=14)
opt_g = optim.Adam(G.parameters(), lr=1e-4, betas=(0.0, 0.9))
opt_d = optim.Adam(D.parameters(), lr=4e-4, betas=(0.0, 0.9))

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
                caption=f"64 samples G(z), z ~ N(0, I), of a SAGAN after {step} steps")
print(f"wrote {args.out}")
