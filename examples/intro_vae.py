"""IntroVAE: H. Huang, Z. Li, R. He, Z. Sun, T. Tan, "IntroVAE: Introspective Variational
Autoencoders for Photographic Image Synthesis", NeurIPS 2018.

A VAE whose encoder E also plays the discriminator: its "energy" is the KL of an image's code,
L_REG(x) = KL(q(z|x) || N(0, I)). E pushes the KL of real images down and, up to a margin m,
that of generated ones up; the generator G wants its images to get a small KL. With
x_r = G(E(x)) the reconstructions, x_p = G(z_p), z_p ~ N(0, I) the samples, ng a stop-gradient
and L_AE = 1/2 ||x_r - x||^2, the two losses of Algorithm 1 are

    L_E = L_REG(x) + alpha sum_{s = r, p} [m - L_REG(ng(x_s))]^+ + beta L_AE
    L_G =            alpha sum_{s = r, p}      L_REG(x_s)         + beta L_AE

each minimised by its own Adam, the other network held fixed. A few plain-VAE steps first
(beta L_AE + L_REG) give the encoder something to judge.

    python examples/intro_vae.py                 # 8x8 digits, about 3 minutes

The full recipe (MNIST, checkpoints, resume): ``scratchgen train intro-vae``.
"""

import scratchgen as sg
from scratchgen.data import ArrayDataset, DataLoader, load_image_arrays
from scratchgen.models.intro_vae import IntroVAE, IntroVAETrainStep
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "intro_vae.png", 1200, "iterations (one E and one G step each)")
p.add_argument("--warmup", type=int, default=230, help="plain-VAE steps first")
args = script_args(p)  # refuses an existing --out without --force; seeds

# 1. the model: residual conv networks for 8x8 images, z of 16 units; the losses above live in
#    IntroVAETrainStep (encoder_loss, generator_loss, vae_loss), with one Adam per network
model = IntroVAE(in_channels=1, z_dim=16, channels=(32,), image_size=8)
losses = IntroVAETrainStep(model, alpha=0.5, beta=10.0, margin=15.0, lr_e=1e-3, lr_g=1e-3)
opt_e, opt_g = losses.opt_e, losses.opt_g

# 2. the data: the embedded digits as recorded, 8x8, in [0, 1]
x_train, _, _, _ = load_image_arrays("digits", size=8)
loader = DataLoader(ArrayDataset(x_train), batch_size=64, shuffle=True, drop_last=True,
                    seed=args.seed, device="cpu")

# 3. training
model.train()
step = 0
while step < args.steps:
    for (x,) in loader:
        if step < args.warmup:                            # plain VAE: both networks at once
            loss = losses.vae_loss(x)
            opt_e.zero_grad()
            opt_g.zero_grad()
            loss.backward()
            opt_e.step()
            opt_g.step()
            log = f"VAE loss {loss.item():.2f}"
        else:
            model.decoder.requires_grad_(False)           # E's step, G held fixed
            loss_e, parts = losses.encoder_loss(x)
            opt_e.zero_grad()
            loss_e.backward()
            opt_e.step()
            model.decoder.requires_grad_(True)
            model.encoder.requires_grad_(False)           # G's step, E held fixed
            loss_g, _ = losses.generator_loss(x, parts["z"], parts["z_p"])   # same z, z_p
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            model.encoder.requires_grad_(True)
            log = (f"L_E {loss_e.item():.2f}, L_G {loss_g.item():.2f}, KL real "
                   f"{parts['kl_real'].item():.1f} / fake {parts['kl_fake'].item():.1f} nats")
        step += 1
        if step % 100 == 0 or step == args.steps:
            print(f"step {step}: {log}")
        if step == args.steps:
            break

# 4. pictures: 64 samples G(z), z ~ N(0, I)
model.eval()
with sg.no_grad():
    samples = model.sample(64)
save_image_grid(samples, args.out, nrow=8, value_range=(0.0, 1.0), scale=6,
                caption=f"64 samples G(z), z ~ N(0, I), of an IntroVAE after {step} steps")
print(f"wrote {args.out}")
