"""Variational autoencoder: D. P. Kingma, M. Welling, "Auto-Encoding Variational Bayes",
ICLR 2014.

An encoder gives q(z|x) = N(mu(x), diag sigma^2(x)), a decoder gives Bernoulli pixel
probabilities p(x|z), and both maximise the evidence lower bound (their eq. 3 and 10):

    ELBO(x) = E_{q(z|x)}[ log p(x|z) ] - KL( q(z|x) || N(0, I) ),   z = mu + sigma * eps

The loss below is -ELBO in nats per image. After training, z ~ N(0, I) decoded gives new digits.

    python examples/vae.py                 # fully connected 784-400-20, about a minute
    python examples/vae.py --conv          # convolutional encoder and decoder, about 2 minutes

The full recipe (run folder, checkpoints, resume, IWAE bound, more pictures):
``scratchgen train vae``.
"""

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.models.vae import VAE
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "vae.png", 2000)
p.add_argument("--conv", action="store_true", help="convolutional networks instead of MLPs")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the model: z of 20 units, the PyTorch example's networks
model = VAE(image_shape=(1, 28, 28), z_dim=20, arch="conv" if args.conv else "fc")
opt = optim.Adam(model.parameters(), lr=1e-3)
print(f"{model.num_parameters():,} parameters")

# 2. the data: 1,500 hand-written digits shipped with the package, resized to 28x28, in [0, 1]
x_train, _, x_test, _ = load_image_arrays("digits", size=28)
loader = DataLoader(ArrayDataset(x_train), batch_size=128, shuffle=True, seed=args.seed,
                    device="cpu")

# 3. training: maximise the ELBO, i.e. minimise -ELBO
step = 0
while step < args.steps:
    for (x,) in loader:
        terms = model.loss(x)                 # {"loss": -ELBO, "recon": -log p(x|z), "kl"}
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        step += 1
        if step % 200 == 0 or step == args.steps:
            print(f"step {step}: -ELBO {terms['loss'].item():.1f} = recon "
                  f"{terms['recon'].item():.1f} + KL {terms['kl'].item():.1f} nats")
        if step == args.steps:
            break

# 4. pictures: decode 64 draws from the prior
model.eval()
with sg.no_grad():
    samples = model.decode(sg.randn(64, 20))  # E[x | z], z ~ N(0, I)
save_image_grid(samples, args.out, nrow=8, value_range=(0.0, 1.0), scale=2,
                caption=f"64 samples of a VAE after {step} steps: z ~ N(0, I) decoded")
print(f"wrote {args.out}")
