"""Soft-IntroVAE: T. Daniel, A. Tamar, "Soft-IntroVAE: Analyzing and Improving the
Introspective Variational Autoencoder", CVPR 2021.

IntroVAE with the hinge replaced by a smooth exponential: with ELBO(x) = E_q[log p(x|z)] -
KL(q(z|x) || p(z)), the encoder E and decoder D maximise, for real x and fakes D(z), z ~ p(z),

    L_E(x, z) = ELBO(x) - (1/alpha) exp(alpha ELBO(D(z)))
    L_D(x, z) = ELBO(x) + gamma ELBO(D(z))

E raises the ELBO of data and lowers that of fakes (softly: no margin to tune), D wants its
fakes to look real to E. In the code every ELBO is weighted (beta_rec, beta_kl, beta_neg for
the fakes' KL) and scaled by 1 / (pixels); ``SoftIntroVAETrainStep`` writes both losses out.

    python examples/soft_intro_vae.py            # 8x8 digits, 3-5 minutes

The full recipe (MNIST with the official network, checkpoints, metrics):
``scratchgen train soft-intro-vae``; on 2-D data: ``scratchgen train soft-intro-vae-toy``.
"""

import scratchgen as sg
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.models.soft_intro_vae import SoftIntroVAE, SoftIntroVAETrainStep
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "soft_intro_vae.png", 1400, "iterations (one E and one D step each)")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the model: residual conv networks for 8x8 images, z of 32 units. The official MNIST
#    weights (beta_kl 1, beta_neg 256 for 784 pixels) scaled to 64 pixels: x 64 / 784
model = SoftIntroVAE(in_channels=1, z_dim=32, channels=(32,), image_size=8)
losses = SoftIntroVAETrainStep(model, beta_rec=1.0, beta_kl=64 / 784, beta_neg=256 * 64 / 784,
                               gamma_r=1e-8, lr_e=1e-3, lr_d=1e-3)
opt_e, opt_d = losses.opt_e, losses.opt_d

# 2. the data: the embedded digits as recorded, 8x8, in [0, 1]
x_train, _, _, _ = load_image_arrays("digits", size=8)
loader = DataLoader(ArrayDataset(x_train), batch_size=32, shuffle=True, drop_last=True,
                    seed=args.seed, device="cpu")

# 3. training
model.train()
step = 0
while step < args.steps:
    for (x,) in loader:
        model.decoder.requires_grad_(False)               # E's step, D held fixed
        loss_e, parts = losses.encoder_loss(x)            # -L_E (to minimise)
        opt_e.zero_grad()
        loss_e.backward()
        opt_e.step()
        model.decoder.requires_grad_(True)
        model.encoder.requires_grad_(False)               # D's step, E held fixed
        loss_d, parts_d = losses.decoder_loss(x, parts["z"], parts["noise"])   # -L_D
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        model.encoder.requires_grad_(True)
        step += 1
        if step % 100 == 0 or step == args.steps:
            print(f"step {step}: -L_E {loss_e.item():.3f}, -L_D {loss_d.item():.3f}, KL real "
                  f"{parts['kl_real'].item():.1f} / fake {parts_d['kl_fake'].item():.1f} nats")
        if step == args.steps:
            break

# 4. pictures: 64 samples D(z), z ~ N(0, I)
model.eval()
with sg.no_grad():
    samples = model.sample(64)
save_image_grid(samples, args.out, nrow=8, value_range=(0.0, 1.0), scale=6,
                caption=f"64 samples D(z), z ~ N(0, I), of a Soft-IntroVAE after {step} steps")
print(f"wrote {args.out}")
