"""DCGAN and the class-conditional GANs: shapes at every supported size, DCGAN's initial weight
statistics, the three ways a label enters (concatenation uses it, conditional batch norm starts
as plain batch norm, the projection term is exactly <V_y, phi(x)>), label errors, and every
model's losses gradient-checked end to end in float64."""
from __future__ import annotations

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.nn as nn
from scratchgen.losses import gan
from scratchgen.models.cgan import (
    CONDITIONINGS, ConcatDiscriminator, ConditionalGenerator, ProjectionDiscriminator,
    build_conditional_gan,
)
from scratchgen.models.dcgan import DCGANDiscriminator, DCGANGenerator, check_image_size
from scratchgen.models.gan_training import GANTrainStep
from scratchgen.testing import gradcheck


def _x(seed, *shape, dtype="float32"):
    return sg.tensor(np.random.default_rng(seed).uniform(-1, 1, size=shape), dtype=dtype)


def _z(seed, n, d, dtype="float32"):
    return sg.tensor(np.random.default_rng(seed).standard_normal((n, d)), dtype=dtype)


def _y(labels):
    return sg.tensor(np.asarray(labels, dtype=np.int64))


# ---- shapes and sizes -------------------------------------------------------------------------

@pytest.mark.parametrize("size, start", [(28, 7), (32, 4), (64, 4)])
def test_dcgan_shapes_and_plan(size, start):
    G = DCGANGenerator(z_dim=8, image_size=size, channels=1, width=4)
    D = DCGANDiscriminator(image_size=size, channels=1, width=4)
    x = G(_z(0, 3, 8))
    assert x.shape == (3, 1, size, size)
    assert float(np.abs(x.numpy()).max()) <= 1.0                      # tanh output
    assert D(x).shape == (3,)
    # the chain doubles from a start x start map; D's last map is start x start again
    k = {28: 2, 32: 3, 64: 4}[size]
    assert G.start == (4 * 2 ** (k - 1), start) and len(G.ups) == k
    assert D.feature_dim == 4 * 2 ** (k - 1) * start * start and len(D.convs) == k


def test_dcgan_28_is_the_mnist_layout():
    G, D = DCGANGenerator(100, 28, 1, 64), DCGANDiscriminator(28, 1, 64)
    assert isinstance(G.project, nn.Linear) and G.project.weight.shape == (128 * 7 * 7, 100)
    assert [(u.weight.shape[0], u.weight.shape[1]) for u in G.ups] == [(128, 64), (64, 1)]
    assert [c.weight.shape[:2] for c in D.convs] == [(64, 1), (128, 64)]
    # BN on G's hidden maps and on D's second conv only: never at D's input or G's output
    assert [n.num_features for n in G.norms] == [128, 64] and len(D.norms) == 1


@pytest.mark.parametrize("size", [30, 0, 6, 48, True, 28.0])
def test_sizes_the_nets_cannot_take(size):
    with pytest.raises(ValueError, match=str(size)):
        check_image_size(size)
    with pytest.raises(ValueError):
        DCGANGenerator(8, size, 1, 4)


def test_wrong_input_shapes_are_named():
    G, D = DCGANGenerator(8, 28, 1, 4), DCGANDiscriminator(28, 1, 4)
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        G(_z(0, 2, 5))
    with pytest.raises(ValueError, match="28"):
        D(_x(0, 2, 1, 32, 32))


# ---- initialisation ---------------------------------------------------------------------------

def test_dcgan_init_statistics():
    G = DCGANGenerator(100, 64, 3, 32)
    D = DCGANDiscriminator(64, 3, 32)
    weights = [m.weight.numpy().ravel() for net in (G, D) for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    w = np.concatenate(weights)
    assert w.size > 500_000
    assert abs(w.mean()) < 1e-3 and w.std() == pytest.approx(0.02, rel=0.02)
    gammas = np.concatenate([m.weight.numpy() for net in (G, D) for m in net.modules()
                             if isinstance(m, nn.BatchNorm2d)])
    assert gammas.mean() == pytest.approx(1.0, abs=0.01)
    assert gammas.std() == pytest.approx(0.02, rel=0.25)
    biases = [m.bias.numpy() for net in (G, D) for m in net.modules()
              if getattr(m, "bias", None) is not None]
    assert all(not b.any() for b in biases)


def test_critic_without_batch_norm_treats_examples_independently():
    """WGAN-GP's critic: one example's logit must not depend on the rest of its batch."""
    for norm, kind in (("none", nn.Identity), ("layer", nn.GroupNorm)):
        D = DCGANDiscriminator(28, 1, 4, norm=norm)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
        assert all(isinstance(m, kind) for m in D.norms)
        x = _x(1, 5, 1, 28, 28)
        alone = D(sg.tensor(x.numpy()[:1])).numpy()
        np.testing.assert_allclose(D(x).numpy()[:1], alone, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="spectral"):
        DCGANDiscriminator(28, 1, 4, norm="spectral")


# ---- conditioning -----------------------------------------------------------------------------

@pytest.mark.parametrize("cond", list(CONDITIONINGS))
@pytest.mark.parametrize("size", [28, 32])
def test_conditional_shapes(cond, size):
    G, D = build_conditional_gan(cond, z_dim=6, image_size=size, width=4, num_classes=10)
    assert G.num_classes == 10 and G.z_dim == 6
    y = _y([0, 9, 3])
    x = G(_z(0, 3, 6), y)
    assert x.shape == (3, 1, size, size) and D(x, y).shape == (3,)


def test_concat_conditioning_uses_the_label():
    G = ConditionalGenerator(6, 28, 1, 4, 10, "concat")
    D = ConcatDiscriminator(28, 1, 4, 10)
    G.eval(), D.eval()                   # running statistics: one example at a time
    z, x = _z(0, 2, 6), _x(0, 2, 1, 28, 28)
    a, b = G(z, _y([1, 1])).numpy(), G(z, _y([1, 2])).numpy()
    np.testing.assert_array_equal(a[0], b[0])
    assert np.abs(a[1] - b[1]).max() > 1e-4
    assert G.project.weight.shape[1] == 6 + 10                        # [z, onehot(y)]
    assert D.convs[0].weight.shape[1] == 1 + 10                       # [x, label planes]
    la, lb = D(x, _y([4, 4])).numpy(), D(x, _y([4, 5])).numpy()
    assert la[0] == lb[0] and la[1] != lb[1]


def _copy_weights(dst, src):
    """dst's first layer and transposed convolutions take src's weights; dst's batch norms
    (plain ones) get gamma = 1, beta = 0."""
    dst.project.weight.data = src.project.weight.data.copy()
    for up_d, up_s in zip(dst.ups, src.ups):
        for name, p in up_d.named_parameters():
            p.data = dict(up_s.named_parameters())[name].data.copy()
    for bn in dst.norms:
        bn.weight.data[...] = 1.0
        bn.bias.data[...] = 0.0


def test_conditional_batch_norm_starts_as_plain_batch_norm():
    sg.manual_seed(3)
    G = ConditionalGenerator(6, 28, 1, 4, 10, "cbn")
    for n in G.norms:
        np.testing.assert_array_equal(n.gamma.weight.numpy(), 1.0)
        np.testing.assert_array_equal(n.beta.weight.numpy(), 0.0)
    # the cbn generator reads [z, onehot(y)] as the concat one does (BigGAN-deep's first
    # layer); with gamma_y = 1, beta_y = 0 it is the concat generator with BN's gamma 1, beta 0
    assert G.label_input and G.project.weight.shape[1] == 6 + 10
    concat = ConditionalGenerator(6, 28, 1, 4, 10, "concat")
    _copy_weights(concat, G)
    z = _z(1, 4, 6)
    for labels in ([0, 1, 2, 3], [9, 9, 9, 9]):
        np.testing.assert_allclose(G(z, _y(labels)).numpy(), concat(z, _y(labels)).numpy(),
                                   rtol=1e-5, atol=1e-6)
    # Miyato & Koyama's generator (label_input=False): z alone; plain BN for any label at start
    pure = ConditionalGenerator(6, 28, 1, 4, 10, "cbn", label_input=False)
    plain = DCGANGenerator(6, 28, 1, 4)
    _copy_weights(plain, pure)
    ref = plain(z).numpy()
    for labels in ([0, 1, 2, 3], [9, 9, 9, 9]):
        np.testing.assert_allclose(pure(z, _y(labels)).numpy(), ref, rtol=1e-5, atol=1e-6)
    # and once the class parameters move, the label matters
    pure.norms[0].gamma.weight.data[2] += 0.5
    assert np.abs(pure(z, _y([2, 2, 2, 2])).numpy() - ref).max() > 1e-4


def test_cbn_generator_uses_the_label_through_both_routes():
    """The label reaches the cbn generator twice: its first layer (which makes G class-dependent
    from the first step; without it only two per-channel scale/shift pairs carry the label and
    the MNIST generators followed it 63-70% of the time after 6 epochs) and every batch norm."""
    sg.manual_seed(4)
    z = _z(0, 2, 6)
    for cond in ("cbn", "projection"):
        G, _ = build_conditional_gan(cond, 6, 28, 1, 4, 10)
        G.eval()
        a, b = G(z, _y([1, 1])).numpy(), G(z, _y([1, 2])).numpy()
        np.testing.assert_array_equal(a[0], b[0])
        assert np.abs(a[1] - b[1]).max() > 1e-4            # first layer, at initialisation
    # the batch-norm route alone: label columns of the first layer zeroed, beta_2 moved
    G.project.weight.data[:, 6:] = 0.0
    z = sg.tensor(np.repeat(z.numpy()[:1], 2, axis=0))    # one latent, drawn as 2 and as 3
    before = G(z, _y([2, 3])).numpy()
    np.testing.assert_allclose(before[0], before[1], rtol=1e-5, atol=1e-6)
    G.norms[1].beta.weight.data[2] += 0.5
    after = G(z, _y([2, 3])).numpy()
    assert np.abs(after[0] - after[1]).max() > 1e-4
    np.testing.assert_allclose(after[1], before[1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="label_input=False"):
        ConditionalGenerator(6, 28, 1, 4, 10, "concat", label_input=False)


@pytest.mark.parametrize("cond", ["cbn", "projection"])
def test_a_training_step_updates_the_classes_of_the_batch(cond):
    """One GANTrainStep on a batch of classes {1, 4}: G's fakes carry those labels, so exactly
    their rows of every gamma / beta table and of the first layer's label columns move (and
    the projection D's rows V_1, V_4)."""
    sg.manual_seed(6)
    G, D = build_conditional_gan(cond, 6, 28, 1, 4, 10)
    step = GANTrainStep(G, D)
    tables = [t.weight for n in G.norms for t in (n.gamma, n.beta)]
    before = [t.numpy().copy() for t in tables]
    cols = G.project.weight.numpy()[:, 6:].copy()
    v = D.embed.weight.numpy().copy() if cond == "projection" else None
    x = _x(3, 4, 1, 28, 28)
    step((x, _y([1, 4, 4, 1])))
    moved = [1, 4]
    for t, b in zip(tables, before):
        changed = np.abs(t.numpy() - b).max(axis=1) > 0
        assert sorted(np.flatnonzero(changed)) == moved
    changed = np.abs(G.project.weight.numpy()[:, 6:] - cols).max(axis=0) > 0
    assert sorted(np.flatnonzero(changed)) == moved
    if v is not None:
        changed = np.abs(D.embed.weight.numpy() - v).max(axis=1) > 0
        assert sorted(np.flatnonzero(changed)) == moved


def test_projection_term_is_exact():
    D = ProjectionDiscriminator(28, 1, 4, 10)
    D.embed.weight.data = np.random.default_rng(0).standard_normal(
        D.embed.weight.shape).astype(np.float32)
    D.eval()
    x, y = _x(2, 3, 1, 28, 28), np.array([0, 7, 7])
    h = D.features(x).numpy().astype(np.float64)
    psi = D.readout(D.features(x)).numpy().reshape(-1).astype(np.float64)
    expected = psi + (D.embed.weight.numpy()[y].astype(np.float64) * h).sum(axis=1)
    np.testing.assert_allclose(D(x, _y(y)).numpy(), expected, rtol=1e-5, atol=1e-6)
    # the class-independent part is psi(phi(x)): same x, another label changes only <V_y, phi>
    other = D(x, _y([1, 1, 1])).numpy()
    np.testing.assert_allclose(
        other - psi, (D.embed.weight.numpy()[[1, 1, 1]] * h).sum(axis=1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cond", list(CONDITIONINGS))
@pytest.mark.parametrize("labels", [[0, 10], [-1, 2], [3, 12]])
def test_labels_out_of_range_are_refused(cond, labels):
    G, D = build_conditional_gan(cond, 6, 28, 1, 4, 10)
    bad = [v for v in labels if not 0 <= v < 10][0]
    with pytest.raises(ValueError, match=rf"label {bad} .*10 classes"):
        G(_z(0, 2, 6), _y(labels))
    with pytest.raises(ValueError, match=rf"label {bad} .*10 classes"):
        D(_x(0, 2, 1, 28, 28), _y(labels))


def test_bad_conditioning_and_label_count():
    with pytest.raises(ValueError, match="bogus"):
        build_conditional_gan("bogus")
    with pytest.raises(ValueError, match="generator conditioning"):
        ConditionalGenerator(6, 28, 1, 4, 10, "projection")
    G = ConditionalGenerator(6, 28, 1, 4, 10, "cbn")
    with pytest.raises(ValueError, match="3 latents but 2 labels"):
        G(_z(0, 3, 6), _y([1, 2]))


# ---- end-to-end gradient checks (float64) -----------------------------------------------------

def _check(loss_fn, params):
    gradcheck(lambda *ps: loss_fn(), params, mode="projection", n_projections=3, atol=1e-6,
              rtol=1e-5)


_CASES = [
    # (name, networks, d_loss, g_loss, gp_lambda)
    ("dcgan-28", lambda: (DCGANGenerator(3, 28, 1, 2), DCGANDiscriminator(28, 1, 2)),
     "bce", "non-saturating", 0.0),
    ("dcgan-8", lambda: (DCGANGenerator(3, 8, 1, 2), DCGANDiscriminator(8, 1, 2)),
     "bce", "non-saturating", 0.0),
    ("lsgan", lambda: (DCGANGenerator(3, 8, 1, 2), DCGANDiscriminator(8, 1, 2)),
     "lsgan", "lsgan", 0.0),
    ("wgan-gp", lambda: (DCGANGenerator(3, 8, 1, 2), DCGANDiscriminator(8, 1, 4, "none")),
     "wasserstein", "wasserstein", 10.0),
    ("wgan-gp-layer", lambda: (DCGANGenerator(3, 16, 1, 2),
                               DCGANDiscriminator(16, 1, 2, "layer")),
     "wasserstein", "wasserstein", 10.0),
] + [(f"cgan-{c}", (lambda c=c: build_conditional_gan(c, 3, 8, 1, 2, 3)), "bce",
      "non-saturating", 0.0) for c in CONDITIONINGS]


@pytest.mark.parametrize("name, nets, d_loss, g_loss, gp", _CASES, ids=[c[0] for c in _CASES])
def test_losses_gradcheck_end_to_end(name, nets, d_loss, g_loss, gp):
    sg.manual_seed(5)
    G, D = nets()
    G, D = G.to("float64"), D.to("float64")
    step = GANTrainStep(G, D, d_loss=d_loss, g_loss=g_loss, gp_lambda=gp)
    n, s = 3, G.image_size
    x = _x(1, n, 1, s, s, dtype="float64")
    z = _z(2, n, G.z_dim, dtype="float64")
    y = _y([0, 2, 1]) if step.num_classes else None

    def fake():
        return G(z) if y is None else G(z, y)

    if gp:  # one alpha per example, held fixed so the loss is a function of D's weights
        alpha = sg.tensor(np.array([0.2, 0.5, 0.9]), dtype="float64")
        fixed = fake().detach()

        def d_loss_fn():
            # the penalty differentiates D inside, also while gradcheck evaluates without a graph
            with sg.enable_grad():
                real, fk = step.critic(y)(x), step.critic(y)(fixed)
                return (gan.discriminator_loss(real, fk, d_loss)
                        + gan.gradient_penalty(step.critic(y), x, fixed, gp, alpha=alpha))
    else:
        fixed = fake().detach()

        def d_loss_fn():
            return step.discriminator_loss(x, y, fixed, y)[0]

    _check(d_loss_fn, list(D.parameters()))
    _check(lambda: gan.generator_loss(step.critic(y)(fake()), g_loss), list(G.parameters()))
