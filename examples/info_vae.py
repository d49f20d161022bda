"""InfoVAE / MMD-VAE: S. Zhao, J. Song, S. Ermon, "InfoVAE: Balancing Learning and Inference
in Variational Autoencoders", AAAI 2019.

The VAE's KL term charges every code for the information it carries about its image. The
MMD-VAE (InfoVAE with alpha = 1) drops that per-image KL and instead asks the codes of all the
data, q(z) = E_x q(z|x), to match the prior, measured by the maximum mean discrepancy between
a batch of codes and as many draws of N(0, I):

    loss = E_x E_{q(z|x)}[ -log p(x|z) ] + lambda MMD^2( q(z), N(0, I) )

so the codes stay informative while prior draws still land where the decoder was trained.
The picture: 64 samples z ~ N(0, I) decoded.

    python examples/info_vae.py                  # lambda = 1000, z of 20 units, under a minute

The full recipe (the general alpha / lambda family, the RBF kernel, MNIST):
``scratchgen train info-vae``.
"""
import argparse
import os
import sys

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.models.info_vae import InfoVAE
from scratchgen.train import save_image_grid

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--lambda", dest="lam", type=float, default=1000.0, help="weight of the MMD")
p.add_argument("--steps", type=int, default=2000, help="optimiser steps")
p.add_argument("--out", default="info_vae.png", help="the picture to write")
p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
if os.path.exists(args.out) and not args.force:
    sys.exit(f"{args.out} exists: pass --force to overwrite it, or another --out")
sg.manual_seed(args.seed)

# 1. the model: the VAE's fully connected networks; alpha = 1 (no per-image KL), IMQ kernel
model = InfoVAE(image_shape=(1, 28, 28), z_dim=20, alpha=1.0, lambda_=args.lam, kernel="imq")
opt = optim.Adam(model.parameters(), lr=1e-3)

# 2. the data: the embedded digits at 28x28, in [0, 1]
x_train, _, _, _ = load_image_arrays("digits", size=28)
loader = DataLoader(ArrayDataset(x_train), batch_size=128, shuffle=True, seed=args.seed,
                    device="cpu")

# 3. training
step = 0
while step < args.steps:
    for (x,) in loader:
        terms = model.loss(x)                 # recon + lambda * MMD^2 (codes vs prior draws)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        step += 1
        if step % 200 == 0 or step == args.steps:
            print(f"step {step}: recon {terms['recon'].item():.1f} nats, MMD^2 "
                  f"{terms['mmd'].item():.4f}, (unpenalised) KL {terms['kl'].item():.1f}")
        if step == args.steps:
            break

# 4. pictures: decode 64 draws from the prior
model.eval()
with sg.no_grad():
    samples = model.decode(sg.randn(64, 20))
save_image_grid(samples, args.out, nrow=8, value_range=(0.0, 1.0), scale=2,
                caption=f"64 samples of an MMD-VAE (lambda = {args.lam:g}) after {step} steps: "
                        "z ~ N(0, I) decoded")
print(f"wrote {args.out}")
