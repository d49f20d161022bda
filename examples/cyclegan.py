"""CycleGAN: J.-Y. Zhu, T. Park, P. Isola, A. A. Efros, "Unpaired Image-to-Image Translation
using Cycle-Consistent Adversarial Networks", ICCV 2017.

Two domains with no pairs between them (here: thin-stroke digits A and thick-stroke digits B,
made from disjoint halves of the data). Two generators G: A -> B and F: B -> A, a discriminator
per domain, and the full objective (eq. 3, with the least-squares GAN loss and the identity
term of Sec. 5.2):

    L = L_GAN(G, D_B) + L_GAN(F, D_A)
        + lambda     ( ||F(G(a)) - a||_1 + ||G(F(b)) - b||_1 )      cycle consistency, lambda = 10
        + lambda / 2 ( ||G(b) - b||_1 + ||F(a) - a||_1 )             identity

The cycle terms are what keeps the content: G may change a digit's stroke width, but F must be
able to undo it. The discriminators learn from a history of 50 generated images.

    python examples/cyclegan.py                # about a minute

The full recipe (MNIST, your own folders of pictures, learning-rate decay, classifier and stroke
figures): ``scratchgen train cyclegan``.
"""

import numpy as np

import scratchgen as sg
from scratchgen.data import ArrayDataset, DataLoader, load_stroke_domains
from scratchgen.functional import l1_loss
from scratchgen.models.cyclegan import ImagePool, build_cyclegan, identity_loss
from scratchgen.optim import Adam
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "cyclegan.png", 400, "iterations (a G and a D update each)")
p.add_argument("--width", type=int, default=16, help="channels of G's and D's first layers")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the networks: ResNet generators (3 residual blocks on the 7x7 maps of a 28x28 digit) and
#    2-layer PatchGANs; one Adam for both generators, one for both discriminators
G, F, D_A, D_B = build_cyclegan(1, ngf=args.width, ndf=args.width, n_blocks=3, d_layers=2)
opt_g = Adam(list(G.parameters()) + list(F.parameters()), lr=2e-4, betas=(0.5, 0.999))
opt_d = Adam(list(D_A.parameters()) + list(D_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
pool_a, pool_b = ImagePool(50, seed=1), ImagePool(50, seed=2)   # past fakes for D_A, D_B

# 2. the data: A = thin strokes, B = thick strokes, in [-1, 1]; a batch of each, unpaired
train, test = load_stroke_domains("digits")
loader_a = DataLoader(ArrayDataset(train.a * 2 - 1), batch_size=8, shuffle=True, seed=1,
                      device="cpu")
loader_b = DataLoader(ArrayDataset(train.b * 2 - 1), batch_size=8, shuffle=True, seed=2,
                      device="cpu")

# 3. training: G and F on L with the discriminators held fixed, then D_A and D_B on real images
#    against fakes from the pools; the least-squares GAN losses are written out
done = 0
while done < args.steps:
    for (a,), (b,) in zip(loader_a, loader_b):
        D_A.requires_grad_(False)
        D_B.requires_grad_(False)
        fake_b, fake_a = G(a), F(b)
        gan_loss = ((D_B(fake_b) - 1) ** 2).mean() + ((D_A(fake_a) - 1) ** 2).mean()
        cycle = l1_loss(F(fake_b), a) + l1_loss(G(fake_a), b)        # F(G(a)) ~ a, G(F(b)) ~ b
        loss_g = gan_loss + 10.0 * cycle + 5.0 * identity_loss(G, F, a, b)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        D_A.requires_grad_(True)
        D_B.requires_grad_(True)

        old_a, old_b = pool_a.query(fake_a).detach(), pool_b.query(fake_b).detach()
        loss_d = 0.5 * (((D_A(a) - 1) ** 2).mean() + (D_A(old_a) ** 2).mean()) + \
            0.5 * (((D_B(b) - 1) ** 2).mean() + (D_B(old_b) ** 2).mean())
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        done += 1
        if done % 50 == 0 or done == args.steps:
            print(f"step {done}: L {loss_g.item():.3f}, cycle {cycle.item():.3f}, "
                  f"L_D {loss_d.item():.3f}")
        if done == args.steps:
            break

# 4. pictures: test digits of A, G(a), F(G(a)); then of B, F(b), G(F(b))
G.eval()
F.eval()
a, b = sg.tensor(test.a[:8] * 2 - 1), sg.tensor(test.b[:8] * 2 - 1)
with sg.no_grad():
    ga, fb = G(a), F(b)
    rows = [a, ga, F(ga), b, fb, G(fb)]
save_image_grid(np.concatenate([r.numpy() for r in rows]), args.out, nrow=8,
                value_range=(-1.0, 1.0), scale=2,
                caption=f"CycleGAN after {done} steps; rows: a, G(a), F(G(a)), b, F(b), G(F(b))")
print(f"wrote {args.out}")
