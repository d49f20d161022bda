"""Hierarchical VAE in the style of VDVAE: R. Child, "Very Deep VAEs Generalize Autoregressive
Models and Can Outperform Them on Images", ICLR 2021 (the top-down inference of the ladder VAE,
Sonderby et al. 2016).

Latent layers z_L, ..., z_1 from coarse (1x1, the top) to fine (8x8). The generator runs top-down;
the posterior factorises in the same order, each layer a diagonal Gaussian computed from the shared
top-down state (and, for q, from the bottom-up features of x at the same resolution):

    p(x, z) = p(z_L) prod_{l<L} p(z_l | z_>l) p(x | z)
    q(z | x) = q(z_L | x) prod_{l<L} q(z_l | x, z_>l)
    ELBO(x) = E_q[ log p(x | z) ] - sum_l E_q[ KL( q(z_l | x, z_>l) || p(z_l | z_>l) ) ]

The loss is -ELBO in nats per image; it reports the KL of each layer, top first.

    python examples/hierarchical_vae.py          # binarised 8x8 digits, 2-5 minutes

The full recipe (against single-layer VAEs of the same size, IWAE bounds, free bits):
``scratchgen train hierarchical-vae``.
"""

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.models.hierarchical_vae import HierarchicalVAE
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "hierarchical_vae.png", 1500)
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the model: resolutions 8 -> 4 -> 1; latents: one at 1x1, two at 4x4, one at 8x8
model = HierarchicalVAE(in_channels=1, image_size=8, resolutions=(8, 4, 1),
                        layers="1x1,4x2,8x1", width=32, mid=16, z_channels=4)
opt = optim.Adam(model.parameters(), lr=1e-3)

# 2. the data: the embedded 8x8 digits, binarised at 0.5 (a Bernoulli decoder's data)
x_train, _, _, _ = load_image_arrays("digits", size=8)
x_train = (x_train >= 0.5).astype("float32")
loader = DataLoader(ArrayDataset(x_train), batch_size=64, shuffle=True, seed=args.seed,
                    device="cpu")

# 3. training
step = 0
while step < args.steps:
    for (x,) in loader:
        loss, stats = model.loss(x)           # -ELBO = recon + sum of the layers' KLs
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 200.0)   # as VDVAE, against rare spikes
        opt.step()
        step += 1
        if step % 100 == 0 or step == args.steps:
            kls = " / ".join(f"{k.item():.2f}" for k in stats["kl_layers"])
            print(f"step {step}: -ELBO {loss.item():.2f} nats, KL per layer (top first) {kls}")
        if step == args.steps:
            break

# 4. pictures: 64 images drawn top-down from the prior (Bernoulli means)
model.eval()
with sg.no_grad():
    samples = model.sample(64)
save_image_grid(samples, args.out, nrow=8, value_range=(0.0, 1.0), scale=6,
                caption=f"64 samples of a hierarchical VAE after {step} steps: z_L, ..., z_1 "
                        "drawn top-down from the prior, then the pixel probabilities")
print(f"wrote {args.out}")
