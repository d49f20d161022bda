"""beta-VAE: I. Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework", ICLR 2017.

The VAE's objective with the KL term weighted by beta > 1 (their eq. 4):

    L(x) = E_{q(z|x)}[ log p(x|z) ] - beta KL( q(z|x) || N(0, I) )

The tighter KL budget is spent on few latent units, and each unit that stays in use tends to
control one factor of the digits (width, slant, thickness). The picture sweeps each unit from
-3 to 3 with the others at 0, the units that carry the most KL at the top.

    python examples/beta_vae.py                  # beta = 4, z of 10 units, under a minute
    python examples/beta_vae.py --beta 1         # the plain VAE, to compare

The full recipe (also the capacity-annealed variant of Burgess et al. 2018):
``scratchgen train beta-vae``.
"""

import numpy as np

from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.models import vae_tools
from scratchgen.models.beta_vae import BetaVAE
from scratchgen.train import save_interpolation_strip
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "beta_vae.png", 2000)
p.add_argument("--beta", type=float, default=4.0, help="weight of the KL term")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the model: the VAE's fully connected networks, z of 10 units, beta * KL in the loss
model = BetaVAE(image_shape=(1, 28, 28), z_dim=10, beta=args.beta)
opt = optim.Adam(model.parameters(), lr=1e-3)

# 2. the data: the embedded digits at 28x28, in [0, 1]
x_train, _, x_test, _ = load_image_arrays("digits", size=28)
loader = DataLoader(ArrayDataset(x_train), batch_size=128, shuffle=True, seed=args.seed,
                    device="cpu")

# 3. training
step = 0
while step < args.steps:
    for (x,) in loader:
        terms = model.loss(x)                 # loss = recon + beta * KL
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        step += 1
        if step % 200 == 0 or step == args.steps:
            print(f"step {step}: loss {terms['loss'].item():.1f}, recon "
                  f"{terms['recon'].item():.1f}, KL {terms['kl'].item():.1f} nats")
        if step == args.steps:
            break

# 4. pictures: one row per latent unit, most informative first, swept over [-3, 3]
model.eval()
kl = vae_tools.kl_per_unit(model, x_test)    # nats per unit, averaged over the test digits
order = [int(i) for i in np.argsort(-kl)]
rows = vae_tools.latent_traversal(model, dims=order, steps=11, limit=3.0)
save_interpolation_strip(rows, args.out, value_range=(0.0, 1.0), scale=2,
                         row_labels=[f"z{i}: {kl[i]:.2f}" for i in order],
                         caption=f"beta = {args.beta:g}: each row sweeps one latent unit from -3 "
                                 "to 3 (label: its KL in nats), the others at 0")
print(f"wrote {args.out}")
