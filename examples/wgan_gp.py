"""WGAN-GP: I. Gulrajani, F. Ahmed, M. Arjovsky, V. Dumoulin, A. Courville, "Improved Training
of Wasserstein GANs", NeurIPS 2017.

The critic l estimates the Wasserstein-1 distance between data and samples through its dual,
which needs l to be 1-Lipschitz; instead of clipping weights (WGAN), a penalty pushes the norm
of its gradient to 1 on random points between real and generated examples (their eq. 3):

    L_D = E_z[ l(G(z)) ] - E_x[ l(x) ] + lambda E_x^[ (||grad l(x^)||_2 - 1)^2 ],
    x^ = a x + (1 - a) G(z),  a ~ U[0, 1];           L_G = -E_z[ l(G(z)) ]

Algorithm 1's settings: lambda = 10, 5 critic steps per generator step, no batch norm in the
critic (it would mix the examples' gradients). Its Adam (lr 1e-4, betas (0, 0.9)) draws only
blobs in the 1,200 generator steps of the default run; lr 4e-4 with the official MNIST code's
betas (0.5, 0.9) draws digits.

    python examples/wgan_gp.py                   # 28x28 digits, 4-5 minutes

The full recipe (MNIST, layer norm in the critic, FD / KID / precision / recall):
``scratchgen train wgan-gp``.
"""

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.losses import gan
from scratchgen.models.dcgan import DCGANDiscriminator, DCGANGenerator
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "wgan_gp.png", 6000, "critic steps (G steps: a fifth)")
p.add_argument("--width", type=int, default=32, help="channels of the first layer (paper: 64)")
p.add_argument("--lr", type=float, default=4e-4, help="Adam's learning rate (paper: 1e-4)")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the networks: DCGAN's, without batch norm in the critic; z of 128 units
G = DCGANGenerator(z_dim=128, image_size=28, channels=1, width=args.width)
D = DCGANDiscriminator(image_size=28, channels=1, width=args.width, norm="none")
opt_g = optim.Adam(G.parameters(), lr=args.lr, betas=(0.5, 0.9))
opt_d = optim.Adam(D.parameters(), lr=args.lr, betas=(0.5, 0.9))

# 2. the data: the embedded digits at 28x28, scaled to [-1, 1], G's tanh range
x_train, _, _, _ = load_image_arrays("digits", size=28)
loader = DataLoader(ArrayDataset(x_train * 2 - 1), batch_size=32, shuffle=True,
                    drop_last=True, seed=args.seed, device="cpu")

# 3. training: a critic step on every batch, a generator step after every fifth
step = 0
while step < args.steps:
    for (x,) in loader:
        with sg.no_grad():                        # the critic's step needs no graph of G
            fake = G(sg.randn(len(x), 128))
        wasserstein = gan.discriminator_loss(D(x), D(fake), "wasserstein")
        penalty = gan.gradient_penalty(D, x, fake, 10.0)   # double backward through D
        loss_d = wasserstein + penalty
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        step += 1
        if step % 5 == 0:
            D.requires_grad_(False)               # G's step through the critic, held fixed
            loss_g = gan.generator_loss(D(G(sg.randn(len(x), 128))), "wasserstein")
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            D.requires_grad_(True)
        if step % 500 == 0 or step == args.steps:
            print(f"step {step}: W-distance estimate {-wasserstein.item():.3f}, penalty "
                  f"{penalty.item():.3f}")
        if step == args.steps:
            break

# 4. pictures: 64 samples G(z), with batch norm on its running statistics
G.eval()
with sg.no_grad():
    samples = G(sg.randn(64, 128))
save_image_grid(samples, args.out, nrow=8, value_range=(-1.0, 1.0), scale=2,
                caption=f"64 samples G(z), z ~ N(0, I), of a WGAN-GP after {step} critic steps")
print(f"wrote {args.out}")
