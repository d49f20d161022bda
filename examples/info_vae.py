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

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.models.info_vae import InfoVAE
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "info_vae.png", 2000)
p.add_argument("--lambda", dest="lam", type=float, default=1000.0, help="weight of the MMD")
args = script_args(p)  # refuses an existing --out without --force; seeds

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
