"""gan_tools on generators whose output is known exactly: sampling and truncation, the class
grid's layout, linear and spherical interpolation, equations and latent arithmetic."""
from __future__ import annotations

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.nn as nn
from scratchgen.autograd import Tensor
from scratchgen.models import gan_tools
from scratchgen.models.cgan import ConditionalGenerator


class LatentImage(nn.Module):
    """G(z) = z shown as a 1 x 1 x d image (or G(z, y) = z + y): what goes in comes out."""

    def __init__(self, z_dim: int = 6, num_classes: int | None = None) -> None:
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.unused = nn.Linear(1, 1)      # a parameter: the tools read device and dtype off it

    def forward(self, z, y=None):
        out = z.data if y is None else z.data + y.data[:, None].astype(z.dtype)
        return Tensor(out.reshape(z.shape[0], 1, 1, self.z_dim))


class FirstCoordinates(nn.Module):
    """A 'classifier' whose logits are the first K pixels: class = argmax of z[:K]."""

    def __init__(self, k: int = 4) -> None:
        super().__init__()
        self.k = k
        self.unused = nn.Linear(1, 1)

    def forward(self, x):
        return Tensor(x.data.reshape(x.shape[0], -1)[:, :self.k] * 5.0)


def _z(seed, n, d=6):
    return sg.tensor(np.random.default_rng(seed).standard_normal((n, d)), dtype="float32")


def test_sample_truncation_bounds_and_the_untruncated_spread():
    G = LatentImage(z_dim=8)
    z = gan_tools.sample(G, 2000, truncation=0.5).numpy()
    assert z.shape == (2000, 1, 1, 8)
    assert np.abs(z).max() <= 0.5 and np.abs(z).max() > 0.45
    free = gan_tools.sample(G, 2000).numpy()
    assert np.abs(free).max() > 2.5 and free.std() == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match="truncation"):
        gan_tools.sample(G, 4, truncation=-1.0)
    with pytest.raises(ValueError, match="n must be"):
        gan_tools.sample(G, 0)


def test_sample_labels_of_a_conditional_generator():
    G = LatentImage(z_dim=3, num_classes=4)
    out = gan_tools.sample(G, 8, truncation=0.1).numpy().reshape(8, 3)
    # default labels cycle through the classes: 0 1 2 3 0 1 2 3
    np.testing.assert_array_equal(np.round(out.mean(axis=1)), [0, 1, 2, 3, 0, 1, 2, 3])
    out = gan_tools.sample(G, 3, labels=2, truncation=0.1).numpy()
    assert np.all(np.abs(out - 2) <= 0.1)
    with pytest.raises(ValueError, match="label 4 is out of range for 4 classes"):
        gan_tools.sample(G, 2, labels=[1, 4])
    with pytest.raises(ValueError, match="need 3 labels"):
        gan_tools.sample(G, 3, labels=[1, 2])
    with pytest.raises(ValueError, match="unconditional"):
        gan_tools.sample(LatentImage(), 2, labels=1)


def test_class_grid_layout_rows_are_classes_columns_share_latents():
    G = LatentImage(z_dim=3, num_classes=5)
    grid = gan_tools.class_grid(G, per_class=4).numpy().reshape(5, 4, 3)
    assert grid.shape == (5, 4, 3)
    # row i is labelled i: each row minus row 0 is exactly i (the same z down every column)
    for i in range(5):
        np.testing.assert_allclose(grid[i] - grid[0], i, atol=1e-6)
    loose = gan_tools.class_grid(G, per_class=4, shared_latents=False).numpy().reshape(5, 4, 3)
    assert np.abs((loose[1] - loose[0]) - 1).max() > 1e-3
    assert gan_tools.class_grid(G, num_classes=2, per_class=3).shape == (2, 3, 1, 1, 3)
    with pytest.raises(ValueError, match="conditional"):
        gan_tools.class_grid(LatentImage())


def test_class_grid_of_a_real_conditional_generator_restores_train_mode():
    G = ConditionalGenerator(4, 28, 1, 4, 10, "cbn")
    assert G.training
    grid = gan_tools.class_grid(G, per_class=2)
    assert grid.shape == (10, 2, 1, 28, 28) and G.training


def test_interpolation_end_points_and_paths():
    G = LatentImage(z_dim=6)
    z0, z1 = _z(0, 3), _z(1, 3) * 2.0
    for method in gan_tools.INTERPOLATIONS:
        path = gan_tools.interpolate(G, z0, z1, steps=5, method=method).numpy().reshape(3, 5, 6)
        np.testing.assert_allclose(path[:, 0], z0.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(path[:, -1], z1.numpy(), rtol=1e-5, atol=1e-6)
    lin = gan_tools.interpolate(G, z0, z1, 5, "linear").numpy().reshape(3, 5, 6)
    np.testing.assert_allclose(lin[:, 2], (z0.numpy() + z1.numpy()) / 2, rtol=1e-5, atol=1e-6)
    sph = gan_tools.interpolate(G, z0, z1, 5, "spherical").numpy().reshape(3, 5, 6)
    # slerp: the norm moves linearly and every point lies in the plane of z0 and z1
    n0, n1 = np.linalg.norm(z0.numpy(), axis=1), np.linalg.norm(z1.numpy(), axis=1)
    t = np.linspace(0, 1, 5)
    np.testing.assert_allclose(np.linalg.norm(sph, axis=2), (1 - t) * n0[:, None]
                               + t * n1[:, None], rtol=1e-5)
    for i in range(3):
        basis = np.stack([z0.numpy()[i], z1.numpy()[i]], axis=1)
        coef, *_ = np.linalg.lstsq(basis, sph[i].T, rcond=None)
        np.testing.assert_allclose(basis @ coef, sph[i].T, atol=1e-4)
    # the straight line cuts inside the sphere: its midpoint is shorter than slerp's
    assert np.all(np.linalg.norm(lin[:, 2], axis=1) < np.linalg.norm(sph[:, 2], axis=1))


def test_interpolation_keeps_each_rows_label_and_checks_arguments():
    G = LatentImage(z_dim=2, num_classes=3)
    z0, z1 = _z(0, 2, 2), _z(1, 2, 2)
    out = gan_tools.interpolate(G, z0, z1, 4, "linear", labels=[2, 0]).numpy().reshape(2, 4, 2)
    base = gan_tools.interpolate(LatentImage(2), z0, z1, 4).numpy().reshape(2, 4, 2)
    np.testing.assert_allclose(out - base, np.broadcast_to(np.array([2.0, 0.0])[:, None, None],
                                                       out.shape), atol=1e-6)
    with pytest.raises(ValueError, match="method"):
        gan_tools.interpolate(G, z0, z1, 4, "slerpy")
    with pytest.raises(ValueError, match="steps"):
        gan_tools.interpolate(G, z0, z1, 1)
    with pytest.raises(ValueError, match="shape"):
        gan_tools.interpolate(G, z0, _z(1, 3, 2), 4)


@pytest.mark.parametrize("text, terms", [
    ("7 - 1 + 0", [(1, 7), (-1, 1), (1, 0)]),
    ("3+4", [(1, 3), (1, 4)]),
    ("-2 + 9", [(-1, 2), (1, 9)]),
    (" 5 ", [(1, 5)]),
])
def test_parse_equation(text, terms):
    assert gan_tools.parse_equation(text) == terms


@pytest.mark.parametrize("text", ["", "7 -", "7 1", "7 * 2", "12 + 1", "a - b"])
def test_parse_equation_refuses(text):
    with pytest.raises(ValueError):
        gan_tools.parse_equation(text)


def test_latent_arithmetic_averages_the_chosen_latents_exactly():
    sg.manual_seed(4)
    G, clf = LatentImage(z_dim=6), FirstCoordinates(k=4)
    res = gan_tools.latent_arithmetic(G, clf, "2 - 1 + 3", candidates=300, per_group=3,
                                      variants=5, noise=0.25, preprocess=lambda x: x)
    assert res.equation == "2 - 1 + 3" and res.title == "z(2) - z(1) + z(3)"
    groups = res.group_images.numpy().reshape(3, 3, 6)           # G(z) = z: these are the z's
    # each group holds samples the classifier put in its class, the most confident first
    for (_, c), g in zip(res.terms, groups):
        assert np.all(g[:, :4].argmax(axis=1) == c)
        margins = g[:, c] - np.sort(g[:, :4], axis=1)[:, -2]
        assert margins[0] > 0
    means = groups.mean(axis=1)
    np.testing.assert_allclose(res.mean_images.numpy().reshape(3, 6), means, rtol=1e-5)
    expected = means[0] - means[1] + means[2]
    np.testing.assert_allclose(res.result_latent.numpy(), expected, rtol=1e-5, atol=1e-6)
    out = res.result_images.numpy().reshape(5, 6)
    np.testing.assert_allclose(out[0], expected, rtol=1e-5, atol=1e-6)
    assert np.abs(out[1:] - expected).max() <= 0.25 + 1e-6           # U[-0.25, 0.25] variants
    assert res.result_classes == [int(v) for v in out[:, :4].argmax(axis=1)]
    assert sum(res.counts.values()) == 300


def test_latent_arithmetic_errors():
    G, clf = LatentImage(z_dim=6), FirstCoordinates(k=4)
    with pytest.raises(ValueError, match="out of range for 4 classes"):
        gan_tools.latent_arithmetic(G, clf, "5 - 1", candidates=20, preprocess=lambda x: x)
    with pytest.raises(ValueError, match="classified as"):
        gan_tools.latent_arithmetic(G, clf, "1 + 2", candidates=4, per_group=4,
                                    preprocess=lambda x: x)
    with pytest.raises(ValueError, match="unconditional"):
        gan_tools.latent_arithmetic(LatentImage(6, 3), clf, "1")


def test_to_unit():
    np.testing.assert_allclose(gan_tools.to_unit(np.array([-1.0, 0.0, 1.0, 3.0])).numpy(),
                               [0.0, 0.5, 1.0, 1.0])
