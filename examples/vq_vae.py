"""VQ-VAE: A. van den Oord, O. Vinyals, K. Kavukcuoglu, "Neural Discrete Representation
Learning", NeurIPS 2017.

The encoder maps an image to a 7x7 grid of vectors z_e(x); each is replaced by its nearest
entry e_k of a codebook of K = 128 vectors (eq. 1-2), and the decoder maps the grid of codes
back to an image. Training minimises (eq. 3, with sg a stop-gradient)

    L = ||x - decoder(z_q(x))||^2 / Var(x) + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2

where the gradient of the first term reaches the encoder by the straight-through estimator, and
the codebook follows moving averages of the encoder outputs (the paper's appendix A.1) instead
of the second term. A VQ-VAE has no prior to sample from: a small gated PixelCNN (van den Oord
et al. 2016) is then fitted to the code maps of the training images, and its samples decoded.

    python examples/vq_vae.py                    # about 2 minutes
    python examples/vq_vae.py --prior-steps 0    # reconstructions only

The full recipes: ``scratchgen train vq-vae``, then ``scratchgen train pixelcnn-prior``.
"""

import numpy as np

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.models.pixelcnn import PixelCNN
from scratchgen.models.vq_vae import VQVAE
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "vq_vae.png", 600, "optimiser steps of the VQ-VAE")
p.add_argument("--prior-steps", type=int, default=500, help="optimiser steps of the prior")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the data: the embedded digits at 28x28, shifted to [-0.5, 0.5] (the Keras example's)
x_train, _, x_test, _ = load_image_arrays("digits", size=28)
x_train, x_test = x_train - 0.5, x_test - 0.5
loader = DataLoader(ArrayDataset(x_train), batch_size=128, shuffle=True, seed=args.seed,
                    device="cpu")

# 2. the model: two stride-2 convolutions to 7x7 codes of 16 numbers, K = 128, EMA codebook
model = VQVAE(num_embeddings=128, embedding_dim=16, beta=0.25, ema=True,
              data_variance=float(x_train.var()))
opt = optim.Adam(model.parameters(), lr=1e-3)

# 3. training the VQ-VAE
step = 0
while step < args.steps:
    for (x,) in loader:
        terms = model.loss(x)                 # reconstruction + beta * commitment
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        step += 1
        if step % 100 == 0 or step == args.steps:
            used = len(np.unique(terms["indices"]))
            print(f"step {step}: normalised MSE {terms['recon'].item():.3f}, commitment "
                  f"{terms['commitment'].item():.3f}, {used} codes used in the batch")
        if step == args.steps:
            break

# 4. a prior over the 7x7 code maps: a gated PixelCNN trained by cross-entropy (nats per code)
model.eval()
codes = np.concatenate([model.encode(sg.tensor(x_train[i:i + 500]))
                        for i in range(0, len(x_train), 500)])
prior = PixelCNN(num_codes=128, channels=32, num_layers=5)
prior_opt = optim.Adam(prior.parameters(), lr=1e-3)
code_loader = DataLoader(ArrayDataset(codes), batch_size=64, shuffle=True, seed=args.seed)
step = 0
while step < args.prior_steps:
    for (c,) in code_loader:
        loss = prior.loss(c)                  # -log p(c_i | c_<i), averaged over positions
        prior_opt.zero_grad()
        loss.backward()
        prior_opt.step()
        step += 1
        if step % 100 == 0 or step == args.prior_steps:
            print(f"prior step {step}: {loss.item():.3f} nats per code")
        if step == args.prior_steps:
            break

# 5. pictures: two rows of (test image, reconstruction) pairs, then two rows of prior samples
with sg.no_grad():
    rec = model.reconstruct(sg.tensor(x_test[:16])).numpy()
    pairs = np.stack([x_test[:16], rec], axis=1).reshape(32, 1, 28, 28)
    rows, labels = [pairs], ["test | recon."] * 2
    if args.prior_steps > 0:
        rows.append(model.sample(prior, 32, (7, 7)).numpy())
        labels += ["prior samples"] * 2
save_image_grid(np.concatenate(rows), args.out, nrow=16, value_range=(-0.5, 0.5), scale=2,
                row_labels=labels,
                caption="test digits, each followed by its reconstruction from 49 codes"
                        + ("; below: code maps drawn from the PixelCNN prior, decoded"
                           if args.prior_steps > 0 else ""))
print(f"wrote {args.out}")
