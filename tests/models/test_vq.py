"""VQ-VAE and VQ-VAE-2: the quantiser's math (nearest code, straight-through, the terms of eq. 3,
EMA updates, perplexity, dead codes), end-to-end float64 gradient checks of both models' losses,
and a short training run.

Gradient checks and stop-gradients. The loss uses sg[.] (``Tensor.detach``) in three places and
an argmin; autograd treats sg[f(theta)] as a constant, but finite differences see it move with
theta. So the checks compare autograd with finite differences of the *surrogate* in which every
sg[.] is frozen at its value at the checked point (``frozen_stop_gradients``): that function has,
at that point, exactly the derivative autograd is meant to compute. Each check also asserts that
the point is away from ties of the argmin (the nearest code wins by a clear margin), where the
surrogate and the real loss coincide in a neighbourhood.

A gradient check verifies that autograd differentiates the code as written; *where* the paper
says the gradients must go (straight-through copy to the encoder, codebook term to the codes
only, commitment term to the encoder only) is checked by the tests that follow the lookup tests.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.autograd import Tensor
from scratchgen.losses import vq as vql
from scratchgen.models.vq_vae import VectorQuantizer, VQVAE
from scratchgen.models.pixelcnn import PixelCNNTrainStep
from scratchgen.models.steps import TrainStep
from scratchgen.models.vq_vae2 import VQVAE2
from scratchgen.testing import gradcheck


@contextlib.contextmanager
def frozen_stop_gradients():
    """Inside the block, the k-th ``detach()`` of an evaluation returns the value the k-th
    ``detach()`` of the first evaluation returned. Call ``rewind()`` at the start of each
    evaluation."""
    original = Tensor.detach
    record: list = []
    state = {"i": 0}

    def detach(self):
        i = state["i"]
        state["i"] += 1
        if i < len(record):
            assert record[i].shape == self.shape
            return Tensor(record[i].copy())
        out = original(self)
        record.append(out.data.copy())
        return out

    def rewind():
        state["i"] = 0

    Tensor.detach = detach
    try:
        yield rewind
    finally:
        Tensor.detach = original


def _margin(z_rows, codebook) -> float:
    """Gap between the nearest and the second-nearest code, smallest over the rows."""
    d = np.sort(vql.squared_distances(z_rows, codebook), axis=1)
    return float((d[:, 1] - d[:, 0]).min())


def _perturb(module, seed=0, scale=0.2):
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data = p.data + scale * rng.standard_normal(p.shape).astype(p.dtype)
    return module


def _images(n=2, size=8, seed=1):
    rng = np.random.default_rng(seed)
    return sg.tensor(rng.uniform(-0.5, 0.5, (n, 1, size, size)))


# ---- the lookup ----------------------------------------------------------------------------------

def test_nearest_code_is_the_brute_force_argmin():
    rng = np.random.default_rng(0)
    z, e = rng.standard_normal((50, 3)), rng.standard_normal((7, 3))
    brute = ((z[:, None, :] - e[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(vql.squared_distances(z, e), brute, atol=1e-12)
    np.testing.assert_array_equal(vql.nearest_code(z, e), brute.argmin(1))


def test_quantizer_values_and_loss_terms():
    q = VectorQuantizer(6, 3, beta=0.25).to("float64")
    rng = np.random.default_rng(1)
    q.codebook.data = rng.standard_normal((6, 3))
    z = sg.tensor(rng.standard_normal((2, 3, 2, 2)), requires_grad=True)
    out = q(z)
    rows = z.numpy().transpose(0, 2, 3, 1).reshape(-1, 3)
    k = ((rows[:, None] - q.codebook.numpy()[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(out.indices.reshape(-1), k)
    e = q.codebook.numpy()[k].reshape(2, 2, 2, 3).transpose(0, 3, 1, 2)
    # z_e + sg[z_q - z_e] has z_q's value (up to the rounding of one addition)
    np.testing.assert_allclose(out.z_q.numpy(), e, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(out.z_q_codes.numpy(), e)
    mse = float(((z.numpy() - e) ** 2).mean())
    assert out.codebook_loss.item() == pytest.approx(mse, rel=1e-12)
    assert out.commitment_loss.item() == pytest.approx(mse, rel=1e-12)
    assert out.loss.item() == pytest.approx(1.25 * mse, rel=1e-12)
    np.testing.assert_array_equal(q.lookup(out.indices).numpy(), e)


def test_codebook_and_commitment_gradients_go_where_the_paper_says():
    """d codebook_loss / d e_j = (2/n) sum_{i: k_i = j} (e_j - z_i); no gradient to z_e.
    d commitment / d z_e = (2/n)(z_e - e_k); no gradient to the codebook."""
    q = VectorQuantizer(4, 2).to("float64")
    rng = np.random.default_rng(2)
    q.codebook.data = rng.standard_normal((4, 2))
    z = sg.tensor(rng.standard_normal((1, 2, 3, 3)), requires_grad=True)
    out = q(z)
    n = z.size
    rows = z.numpy().transpose(0, 2, 3, 1).reshape(-1, 2)
    k = out.indices.reshape(-1)
    e = q.codebook.numpy()
    expected = np.zeros_like(e)
    for i, j in enumerate(k):
        expected[j] += 2.0 / n * (e[j] - rows[i])
    g_e, = sg.grad([out.codebook_loss], [q.codebook], retain_graph=True)
    np.testing.assert_allclose(g_e.numpy(), expected, atol=1e-14)
    assert sg.grad([out.codebook_loss], [z], retain_graph=True, allow_unused=True)[0] is None
    g_z, = sg.grad([out.commitment_loss], [z], retain_graph=True)
    np.testing.assert_allclose(g_z.numpy(), 2.0 / n * (z.numpy() - out.z_q.numpy()), atol=1e-14)
    assert sg.grad([out.commitment_loss], [q.codebook], allow_unused=True)[0] is None


@pytest.mark.parametrize("ema", [False, True])
def test_straight_through_gradient_is_copied_exactly(ema):
    """dL/dz_e = dL/dz_q for the reconstruction term (bit for bit); the VQ terms add exactly
    beta * commitment's gradient (2 beta / n)(z_e - e) to the encoder output."""
    sg.manual_seed(2)  # a draw where several codes are used and no ReLU layer is all dead
    model = _perturb(VQVAE(num_embeddings=5, embedding_dim=2, hidden=(3, 4), ema=ema)
                     .to("float64"))
    model.eval()
    x = _images()
    z_e = model.encoder(x)
    z_e.retain_grad()
    q = model.quantizer(z_e)
    q.z_q.retain_grad()
    recon = F.mse_loss(model.decoder(q.z_q), x)
    recon.backward(retain_graph=True)
    assert np.abs(z_e.grad.numpy()).max() > 0
    np.testing.assert_array_equal(z_e.grad.numpy(), q.z_q.grad.numpy())
    z_e.grad = q.z_q.grad = None
    (recon + q.loss).backward()
    commit = 2 * 0.25 / z_e.size * (z_e.numpy() - q.z_q_codes.numpy())
    np.testing.assert_allclose(z_e.grad.numpy(), q.z_q.grad.numpy() + commit, rtol=1e-12,
                               atol=1e-15)


# ---- end-to-end gradient checks -------------------------------------------------------------

def _check_model_loss(model, x, quantizers, **kw):
    params = list(model.parameters())
    with frozen_stop_gradients() as rewind:
        def fn(*ps):
            rewind()
            return model.loss(x)["loss"]
        fn()
        # away from ties: the nearest code wins by much more than the step moves anything
        rewind()
        for q in quantizers:
            assert _margin(*q) > 1e-4
        gradcheck(fn, params, **kw)


@pytest.mark.parametrize("ema", [False, True])
def test_vqvae_loss_gradcheck(ema):
    sg.manual_seed(3)
    model = _perturb(VQVAE(num_embeddings=5, embedding_dim=2, hidden=(3, 4), ema=ema,
                           data_variance=0.1).to("float64"), seed=3)
    model.eval()  # no EMA update between the evaluations of the check
    x = _images()
    with sg.no_grad():
        z = vql.flatten_latents(model.encoder(x)).numpy()
    _check_model_loss(model, x, [(z, model.quantizer.codebook.numpy())], atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("ema", [False, True])
def test_vqvae2_loss_gradcheck(ema):
    sg.manual_seed(4)
    model = _perturb(VQVAE2(hidden=4, res_channels=2, num_res_blocks=1, num_embeddings=4,
                            embedding_dim=2, ema=ema, data_variance=0.1).to("float64"), seed=4)
    model.eval()
    x = _images()
    with sg.no_grad():
        out = model(x)
        h_b = model.enc_b(x)
        zt = vql.flatten_latents(model.pre_quant_t(model.enc_t(h_b))).numpy()
        zb = vql.flatten_latents(model.pre_quant_b(F.concat([h_b, model.dec_t(out.top.z_q)],
                                                            axis=1))).numpy()
    _check_model_loss(model, x, [(zt, model.quant_t.codebook.numpy()),
                                 (zb, model.quant_b.codebook.numpy())],
                      mode="projection", n_projections=6, atol=1e-7, rtol=1e-5)


def test_frozen_surrogate_equals_the_loss():
    """The frozen surrogate has the loss's value (sg is the identity in the forward pass)."""
    sg.manual_seed(5)
    model = VQVAE(num_embeddings=5, embedding_dim=2, hidden=(3, 4)).to("float64").eval()
    x = _images()
    plain = model.loss(x)["loss"].item()
    with frozen_stop_gradients() as rewind:
        rewind()
        assert model.loss(x)["loss"].item() == plain
        rewind()
        assert model.loss(x)["loss"].item() == plain


# ---- EMA codebook ---------------------------------------------------------------------------

def test_ema_update_matches_hand_computation():
    """K = 3 codes in D = 1, decay 0.5, eps 0.1, two steps, every number by hand."""
    q = VectorQuantizer(3, 1, ema=True, decay=0.5, eps=0.1).to("float64")
    q.codebook.data = np.array([[0.0], [1.0], [10.0]])
    # step 1: rows 0.1, 0.3 -> code 0; 0.9 -> code 1; nothing -> code 2
    q(sg.tensor(np.array([0.1, 0.3, 0.9]).reshape(1, 1, 1, 3)))
    # N = 0.5 * (2, 1, 0), m = 0.5 * (0.4, 0.9, 0); debiased by 1 - 0.5 = 0.5: N = (2, 1, 0),
    # m = (0.4, 0.9, 0); total n = 3; smoothed N_i = (N_i + 0.1) / (3 + 0.3) * 3
    n1 = (np.array([2.0, 1.0, 0.0]) + 0.1) / 3.3 * 3.0
    e1 = np.array([0.4, 0.9, 0.0]) / n1
    np.testing.assert_allclose(q.codebook.numpy()[:, 0], e1, rtol=1e-12)
    np.testing.assert_allclose(q.ema_count.numpy(), [1.0, 0.5, 0.0], rtol=1e-12)
    np.testing.assert_allclose(q.ema_sum.numpy()[:, 0], [0.2, 0.45, 0.0], rtol=1e-12)
    # step 2: e1 = (0.2, 0.8182, 0): rows 0.05 -> code 2 (0 is nearest? no: 0.05 - 0 < 0.2 - 0.05)
    assert np.argmin(np.abs(0.05 - e1)) == 2 and np.argmin(np.abs(1.0 - e1)) == 1
    q(sg.tensor(np.array([0.05, 1.0]).reshape(1, 1, 1, 2)))
    # biased: N = 0.5 (1, 0.5, 0) + 0.5 (0, 1, 1) = (0.5, 0.75, 0.5);
    #         m = 0.5 (0.2, 0.45, 0) + 0.5 (0, 1.0, 0.05) = (0.1, 0.725, 0.025)
    # debias by 1 - 0.25 = 0.75: N = (2/3, 1, 2/3), m = (0.1333.., 0.9666.., 0.0333..)
    big_n = np.array([0.5, 0.75, 0.5]) / 0.75
    m = np.array([0.1, 0.725, 0.025]) / 0.75
    total = big_n.sum()
    smoothed = (big_n + 0.1) / (total + 0.3) * total
    np.testing.assert_allclose(q.codebook.numpy()[:, 0], m / smoothed, rtol=1e-12)
    np.testing.assert_allclose(q.code_use(), big_n, rtol=1e-12)


def test_ema_codebook_is_a_buffer_and_round_trips_through_state_dict():
    q = VectorQuantizer(4, 2, ema=True)
    assert [n for n, _ in q.named_parameters()] == []
    q(sg.randn(2, 2, 3, 3))
    sd = q.state_dict()
    assert {"codebook", "ema_sum", "ema_count", "ema_steps"} <= set(sd)
    q2 = VectorQuantizer(4, 2, ema=True)
    q2.load_state_dict(sd)
    np.testing.assert_array_equal(q2.codebook.numpy(), q.codebook.numpy())
    assert q2.ema_steps.item() == 1


def test_eval_mode_does_not_move_the_codebook():
    q = VectorQuantizer(4, 2, ema=True).eval()
    before = q.codebook.numpy().copy()
    q(sg.randn(2, 2, 3, 3))
    np.testing.assert_array_equal(q.codebook.numpy(), before)
    assert q.ema_steps.item() == 0


def test_dead_code_restart_moves_unused_codes_onto_encoder_outputs():
    q = VectorQuantizer(4, 2, restart_dead_codes=True, dead_threshold=1.0).to("float64")
    q.codebook.data = np.array([[0.0, 0.0], [100.0, 100.0], [200.0, 0.0], [0.0, 300.0]])
    z = sg.tensor(np.random.default_rng(0).standard_normal((1, 2, 4, 4)))
    out = q(z)
    assert set(np.unique(out.indices)) == {0}             # everything went to code 0
    rows = vql.flatten_latents(z).numpy()
    for j in (1, 2, 3):                                   # the others now sit on batch rows
        assert np.any(np.all(np.isclose(rows, q.codebook.numpy()[j]), axis=1))
    np.testing.assert_array_equal(q.codebook.numpy()[0], [0.0, 0.0])
    assert np.all(q.code_use() >= 1.0)


# ---- statistics ------------------------------------------------------------------------------

def test_perplexity_and_dead_codes():
    assert vql.codebook_perplexity([5, 0, 0, 0]) == pytest.approx(1.0)
    assert vql.codebook_perplexity([3, 3, 3, 3]) == pytest.approx(4.0)
    # p = (1/4, 1/4, 1/2): H = 1.5 ln 2, exp(H) = 2^1.5
    assert vql.codebook_perplexity([1, 1, 2, 0]) == pytest.approx(2 ** 1.5)
    assert vql.dead_codes([1, 1, 2, 0, 0]) == 2
    assert vql.dead_codes(vql.code_counts(np.array([[0, 2], [2, 2]]), 4)) == 2
    np.testing.assert_array_equal(vql.code_counts(np.array([0, 2, 2, 2]), 4), [1, 0, 3, 0])
    assert math.isnan(vql.codebook_perplexity([0, 0]))


# ---- the models run ---------------------------------------------------------------------------

def test_vqvae_shapes_and_a_few_training_steps_reduce_the_loss():
    from scratchgen.data import Digits

    sg.manual_seed(0)
    x = sg.tensor(Digits(size=16).images[:32] - 0.5)
    model = VQVAE(num_embeddings=16, embedding_dim=4, hidden=(8, 16), ema=True,
                  data_variance=float(x.numpy().var()))
    assert model.latent_shape((16, 16)) == (4, 4) and model.latent_shape((28, 28)) == (7, 7)
    opt = sg.optim.Adam(model.parameters(), lr=3e-3)
    first = TrainStep(model, opt)(x)
    for _ in range(20):
        last = TrainStep(model, opt)(x)
    assert last["recon"] < 0.8 * first["recon"]
    codes = model.encode(x)
    assert codes.shape == (32, 4, 4) and codes.dtype == np.int64
    assert model.decode(codes).shape == (32, 1, 16, 16)
    np.testing.assert_array_equal(model.reconstruct(x).numpy(), model.decode(codes).numpy())


def test_vqvae2_shapes_sampling_and_condition():
    from scratchgen.models.pixelcnn import PixelCNN

    sg.manual_seed(0)
    model = VQVAE2(hidden=8, res_channels=4, num_embeddings=6, embedding_dim=3).eval()
    x = sg.randn(3, 1, 16, 16)
    top, bottom = model.encode(x)
    assert top.shape == (3, 4, 4) and bottom.shape == (3, 8, 8)
    assert model.latent_shapes((16, 16)) == ((4, 4), (8, 8))
    np.testing.assert_allclose(model.reconstruct(x).numpy(), model(x).x_hat.numpy(), atol=1e-5)
    cond = model.bottom_condition(top)
    assert cond.shape == (3, 6, 8, 8)
    # the one-hot of top code (r, c) covers bottom positions (2r..2r+1, 2c..2c+1)
    np.testing.assert_array_equal(cond.numpy().argmax(1), top.repeat(2, 1).repeat(2, 2))
    tp = PixelCNN(6, channels=8, num_layers=2)
    bp = PixelCNN(6, channels=8, num_layers=2, cond_channels=6)
    assert model.sample(tp, bp, 2, (16, 16)).shape == (2, 1, 16, 16)


def test_vqvae_sample_decodes_prior_codes():
    from scratchgen.models.pixelcnn import PixelCNN

    sg.manual_seed(0)
    model = VQVAE(num_embeddings=8, embedding_dim=4, hidden=(4, 8)).eval()
    prior = PixelCNN(8, channels=8, num_layers=2)
    images = model.sample(prior, 3, model.latent_shape((16, 16)))
    assert images.shape == (3, 1, 16, 16)


@pytest.mark.slow
def test_vqvae_and_prior_learn_the_embedded_digits():
    """Digits 16x16 -> 4x4 codes: the VQ-VAE's test reconstructions beat the mean image by far,
    and the prior's validation cross-entropy beats the codes' marginal entropy."""
    from scratchgen.data import Digits
    from scratchgen.models.pixelcnn import PixelCNN

    sg.manual_seed(0)
    tr, te = Digits(train=True, size=16), Digits(train=False, size=16)
    xtr, xte = tr.images - 0.5, te.images - 0.5
    model = VQVAE(num_embeddings=32, embedding_dim=8, ema=True, restart_dead_codes=True,
                  data_variance=float(xtr.var()))
    opt = sg.optim.Adam(model.parameters(), lr=2e-3)
    rng = np.random.default_rng(0)
    for _ in range(15):
        for idx in np.array_split(rng.permutation(len(xtr)), len(xtr) // 100):
            TrainStep(model, opt)(sg.tensor(xtr[idx]))
    model.eval()
    x = sg.tensor(xte)
    mse = float(((model.reconstruct(x).numpy() - xte) ** 2).mean() / xtr.var())
    assert mse < 0.2
    ctr, cte = model.encode(sg.tensor(xtr)), model.encode(x)
    prior = PixelCNN(32, channels=32, num_layers=4, first_kernel=3)
    popt = sg.optim.Adam(prior.parameters(), lr=2e-3)
    for _ in range(15):
        for idx in np.array_split(rng.permutation(len(ctr)), len(ctr) // 100):
            PixelCNNTrainStep(prior, popt)(ctr[idx])
    prior.eval()
    with sg.no_grad():
        val = prior.loss(cte).item()
    p = vql.code_counts(ctr, 32) / ctr.size
    marginal = -(p[p > 0] * np.log(p[p > 0])).sum()
    assert val < marginal - 0.2
