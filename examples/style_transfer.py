"""Fast style transfer: J. Johnson, A. Alahi, L. Fei-Fei, "Perceptual Losses for Real-Time
Style Transfer and Super-Resolution", ECCV 2016 (the losses after L. A. Gatys, A. S. Ecker,
M. Bethge, "Image Style Transfer Using Convolutional Neural Networks", CVPR 2016).

A fixed loss network phi (VGG-16) measures how far a picture y^ is from a content photo y_c in
its features and from a style image y_s in the correlations of its features (Gram matrices
G = F F^T / (C H W)):

    L(y^) = lambda_c ||phi_relu2_2(y^) - phi_relu2_2(y_c)||^2 / (C H W)
            + lambda_s sum_j ||G(phi_j(y^)) - G(phi_j(y_s))||_F^2      j in relu1_2 ... relu4_3
            + lambda_TV TV(y^)

Gatys et al. minimise L over the pixels of one picture (``--optimize``: a few lines with
autodiff); Johnson et al. train an image transformation network f to minimise L(f(y_c)) over
many photos, and then stylise any photo in one forward pass. With no download possible, phi
is VGG-16 with fixed random weights: it carries colours and textures, not a painter's strokes.

    python examples/style_transfer.py               # the network, about 2 minutes
    python examples/style_transfer.py --optimize    # the pixels of one photo, about a minute

The full recipe (other styles and photos, real VGG weights, loss curves):
``scratchgen train style-transfer``.
"""

import numpy as np

import scratchgen as sg
from scratchgen.data import photo
from scratchgen.losses.perceptual import PerceptualLoss
from scratchgen.models.style_transfer import TransformerNet, optimize_image
from scratchgen.models.vgg import random_vgg16
from scratchgen.optim import Adam
from scratchgen.train import save_image_grid
from scratchgen.train.options import script_args, script_parser

p = script_parser(__doc__, "style_transfer.png", 200)
p.add_argument("--optimize", action="store_true", help="optimise one photo's pixels (Gatys)")
p.add_argument("--width", type=int, default=16, help="channels of the network's first layer")
args = script_args(p)  # refuses an existing --out without --force; seeds
rng = np.random.default_rng(args.seed)

# 1. the loss: VGG-16 (random He-scaled weights), content at relu2_2, style at the four layers;
#    the style image's Gram matrices are computed once
loss_fn = PerceptualLoss(random_vgg16(seed=0), content_weight=1.0,
                         style_weight=10.0 if args.optimize else 0.5, tv_weight=1e-4)
grams = loss_fn.style_targets(sg.tensor(photo("mosaic", 128)[None]))
photos = [photo(name, (96, 128)) for name in ("chelsea", "coffee", "astronaut", "rocket")]

if args.optimize:
    # 2a. Gatys: the pixels of the coffee photo are the parameters; Adam, clipped to [0, 1]
    content = sg.tensor(photos[1][None])
    result, history = optimize_image(lambda x: loss_fn(x, content, grams), content,
                                     steps=args.steps, lr=0.02)
    print(f"loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}")
    pictures = [content.numpy()[0], result.numpy()[0]]
    caption = f"the photo and its pixels after {args.steps} steps"
else:
    # 2b. Johnson: the network f, trained on random 64x64 crops of the four photos
    net = TransformerNet(width=args.width)
    opt = Adam(net.parameters(), lr=1e-3)
    for step in range(1, args.steps + 1):
        crops = []
        for _ in range(4):
            img = photos[rng.integers(len(photos))]
            i, j = rng.integers(img.shape[1] - 63), rng.integers(img.shape[2] - 63)
            crops.append(img[:, i:i + 64, j:j + 64])
        y_c = sg.tensor(np.stack(crops))
        total, parts = loss_fn(net(y_c), y_c, grams)      # L(f(y_c)): content is the input
        opt.zero_grad()
        total.backward()
        opt.step()
        if step % 20 == 0 or step == args.steps:
            print(f"step {step}: content {parts['content']:.3f}, style {parts['style']:.3f}")
    # 3. pictures: each photo and f of it, in one forward pass
    net.eval()
    with sg.no_grad():
        pictures = []
        for img in photos:
            pictures += [img, net(sg.tensor(img[None])).numpy()[0]]
    caption = f"each photo and its stylisation by the network after {args.steps} steps"
save_image_grid(np.stack(pictures), args.out, nrow=2, value_range=(0.0, 1.0), scale=2,
                caption=caption + " (style: mosaic)")
print(f"wrote {args.out}")
