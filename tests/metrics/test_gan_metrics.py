"""Sample-quality metrics against closed forms and brute force, and the shipped classifiers."""
from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

from scratchgen.metrics.gan import (classifier_score, frechet_distance,
                                    frechet_distance_from_features, kid, mmd2_unbiased,
                                    precision_recall, sqrtm_psd)

MNIST_DIR = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(),
                                 reason=f"no MNIST files in {MNIST_DIR}")


def random_psd(rng: np.random.Generator, d: int, rank: int | None = None) -> np.ndarray:
    a = rng.standard_normal((d, rank or d))
    return a @ a.T


# --------------------------------------------------------------------------------------------
# matrix square root and Frechet distance


@pytest.mark.parametrize("d, rank", [(1, 1), (5, 5), (12, 12), (12, 4)])
def test_sqrtm_psd_squares_back_and_is_symmetric_psd(d, rank):
    a = random_psd(np.random.default_rng(d + rank), d, rank)
    s = sqrtm_psd(a)
    np.testing.assert_allclose(s @ s, a, atol=1e-9 * np.abs(a).max())
    np.testing.assert_allclose(s, s.T, atol=1e-12)
    assert np.linalg.eigvalsh(s).min() > -1e-7


def test_sqrtm_psd_of_a_diagonal_matrix():
    np.testing.assert_allclose(sqrtm_psd(np.diag([4.0, 9.0, 0.0])), np.diag([2.0, 3.0, 0.0]),
                               atol=1e-12)


@pytest.mark.parametrize("bad", [np.ones((2, 3)), np.array([[1.0, 2.0], [0.0, 1.0]]),
                                 np.diag([1.0, -1.0])])
def test_sqrtm_psd_rejects_non_square_asymmetric_or_indefinite(bad):
    with pytest.raises(ValueError):
        sqrtm_psd(bad)


@pytest.mark.parametrize("a, b, d", [(1.0, 4.0, 3), (0.25, 0.25, 7), (2.0, 0.5, 16)])
def test_frechet_distance_of_isotropic_gaussians_is_the_closed_form(a, b, d):
    shift = np.linspace(-1.0, 2.0, d)
    got = frechet_distance(np.zeros(d), a * np.eye(d), shift, b * np.eye(d))
    want = d * (math.sqrt(a) - math.sqrt(b)) ** 2 + float(shift @ shift)
    assert got == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_frechet_distance_with_non_commuting_covariances_matches_eigenvalues_of_c1_c2():
    rng = np.random.default_rng(0)
    d = 10
    c1, c2 = random_psd(rng, d), random_psd(rng, d)
    assert not np.allclose(c1 @ c2, c2 @ c1)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    # independent route: Tr (C1 C2)^{1/2} = sum sqrt(eigenvalues of the non-symmetric C1 C2)
    lam = np.linalg.eigvals(c1 @ c2)
    assert np.abs(lam.imag).max() < 1e-8 * np.abs(lam).max()
    trace_root = np.sqrt(np.clip(lam.real, 0.0, None)).sum()
    want = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(c1) + np.trace(c2) - 2 * trace_root)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(want, rel=1e-9)
    # a distance: symmetric in its two Gaussians
    assert frechet_distance(mu2, c2, mu1, c1) == pytest.approx(want, rel=1e-9)


def test_frechet_distance_of_one_dimensional_gaussians_is_w2_squared():
    got = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]),
                           np.array([[0.25]]))
    assert got == pytest.approx(3.0 ** 2 + (2.0 - 0.5) ** 2, rel=1e-12)


def test_frechet_distance_of_a_feature_set_with_itself_is_zero():
    f = np.random.default_rng(1).standard_normal((500, 32)) * np.linspace(0.1, 3.0, 32)
    assert 0.0 <= frechet_distance_from_features(f, f) < 1e-9


def test_frechet_distance_from_features_uses_mean_and_unbiased_covariance():
    rng = np.random.default_rng(2)
    f1 = rng.standard_normal((300, 4))
    f2 = rng.standard_normal((200, 4)) * 2.0 + 1.0
    c1 = (f1 - f1.mean(0)).T @ (f1 - f1.mean(0)) / 299
    c2 = (f2 - f2.mean(0)).T @ (f2 - f2.mean(0)) / 199
    want = frechet_distance(f1.mean(0), c1, f2.mean(0), c2)
    assert frechet_distance_from_features(f1, f2) == pytest.approx(want, rel=1e-12)
    # and close to the population value d (1 - 2)^2 + ||1||^2 = 8 for these Gaussians
    assert 6.5 < want < 9.5


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="means"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="feature sizes"):
        frechet_distance_from_features(np.zeros((5, 3)), np.zeros((5, 2)))


# --------------------------------------------------------------------------------------------
# kernel distance


def brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_unbiased_matches_the_double_loop():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((13, 5)), rng.standard_normal((9, 5)) + 0.3
    assert mmd2_unbiased(x, y) == pytest.approx(brute_force_mmd2(x, y), rel=1e-12)


def test_mmd2_estimate_is_unbiased_for_shifted_gaussians():
    # 1-D, k(x, y) = (xy + 1)^3 = x^3 y^3 + 3 x^2 y^2 + 3 x y + 1, so
    # MMD^2 = (m3 - m3')^2 + 3 (m2 - m2')^2 + 3 (m1 - m1')^2 with the raw moments of
    # N(0, 1) (0, 1, 0) and N(s, 1) (s, 1 + s^2, s^3 + 3 s).
    s = 0.5
    exact = (s ** 3 + 3 * s) ** 2 + 3 * s ** 4 + 3 * s ** 2
    rng = np.random.default_rng(4)
    n, draws = 40, 4000
    unbiased, biased = np.empty(draws), np.empty(draws)
    for t in range(draws):
        x, y = rng.standard_normal((n, 1)), rng.standard_normal((n, 1)) + s
        unbiased[t] = mmd2_unbiased(x, y)
        # the V-statistic keeps the diagonal k(x_i, x_i), which overweights E k(x, x)
        biased[t] = ((x @ x.T + 1) ** 3).mean() + ((y @ y.T + 1) ** 3).mean() \
            - 2 * ((x @ y.T + 1) ** 3).mean()
    se = unbiased.std() / math.sqrt(draws)
    assert abs(unbiased.mean() - exact) < 4 * se and se < 0.03 * exact
    assert abs(biased.mean() - exact) > 8 * se


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(5)
    f1, f2 = rng.standard_normal((1500, 16)), rng.standard_normal((1500, 16))
    same = kid(f1, f2, subsets=20, subset_size=500)
    shifted = kid(f1, f2 + 0.5, subsets=20, subset_size=500)
    assert abs(same.mean) < 0.01 and same.std > 0.0
    assert shifted.mean > 0.1 and shifted.mean > 10 * shifted.std / math.sqrt(20)


def test_kid_with_whole_sets_is_the_single_estimate():
    rng = np.random.default_rng(6)
    f1, f2 = rng.standard_normal((40, 3)), rng.standard_normal((30, 3)) + 1.0
    est = kid(f1[:30], f2, subsets=3, subset_size=1000)  # subsets of min(1000, 30) = everything
    assert est.mean == pytest.approx(mmd2_unbiased(f1[:30], f2), rel=1e-12)
    assert est.std == pytest.approx(0.0, abs=1e-9)
    assert kid(f1, f2, subsets=5, subset_size=10, seed=1) == kid(f1, f2, subsets=5,
                                                                  subset_size=10, seed=1)


def test_kid_rejects_bad_arguments():
    f = np.zeros((10, 3))
    with pytest.raises(ValueError, match="subsets"):
        kid(f, f, subsets=0)
    with pytest.raises(ValueError, match="shape"):
        kid(np.zeros((10,)), f)


# --------------------------------------------------------------------------------------------
# classifier (Inception) score


def test_classifier_score_is_the_number_of_classes_for_confident_uniform_predictions():
    probs = np.eye(10)[np.arange(200) % 10]
    assert classifier_score(probs).mean == pytest.approx(10.0, rel=1e-12)
    split = classifier_score(probs, splits=4)
    assert split.mean == pytest.approx(10.0, rel=1e-12) and split.std < 1e-12


def test_classifier_score_is_one_for_constant_predictions():
    p = np.random.default_rng(7).dirichlet(np.ones(10))
    assert classifier_score(np.tile(p, (50, 1))).mean == pytest.approx(1.0, abs=1e-12)
    assert classifier_score(np.tile(np.eye(10)[3], (50, 1))).mean == pytest.approx(1.0)


def test_classifier_score_of_a_mixed_case():
    # half certain of class 0, half 50/50: p(y) = (3/4, 1/4),
    # E KL = 1/2 log(4/3) + 1/2 (1/2 log(2/3) + 1/2 log 2) = 3/4 log(4/3)
    probs = np.array([[1.0, 0.0]] * 10 + [[0.5, 0.5]] * 10)
    assert classifier_score(probs).mean == pytest.approx((4 / 3) ** 0.75, rel=1e-12)


def test_classifier_score_rejects_logits():
    with pytest.raises(ValueError, match="sum to 1"):
        classifier_score(np.random.default_rng(0).standard_normal((5, 3)) ** 2)


# --------------------------------------------------------------------------------------------
# precision and recall


def brute_force_precision_recall(real, fake, k):
    def radii(s):
        d = np.sqrt(((s[:, None] - s[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def inside(x, s, r):
        d = np.sqrt(((x[:, None] - s[None]) ** 2).sum(-1))
        return (d <= r[None]).any(axis=1).mean()

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


def test_precision_recall_of_identical_sets_is_one():
    f = np.random.default_rng(8).standard_normal((300, 8))
    assert precision_recall(f, f.copy()) == (1.0, 1.0)


def test_precision_recall_of_far_apart_sets_is_zero():
    rng = np.random.default_rng(9)
    real, fake = rng.standard_normal((200, 8)), rng.standard_normal((200, 8)) + 50.0
    assert precision_recall(real, fake) == (0.0, 0.0)


def test_precision_recall_of_half_the_modes_plus_junk_is_one_half():
    rng = np.random.default_rng(10)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    real = np.concatenate([c + rng.standard_normal((100, 2)) for c in centres])
    # fakes: exact copies of the first two clusters (quality, but half the diversity), and as
    # many points in a cluster far from everything (no quality)
    fake = np.concatenate([real[:200], rng.standard_normal((200, 2)) - 500.0])
    assert precision_recall(real, fake, k=3) == (0.5, 0.5)


def test_precision_recall_matches_brute_force_in_small_blocks():
    rng = np.random.default_rng(11)
    real, fake = rng.standard_normal((120, 5)), 0.8 * rng.standard_normal((90, 5)) + 0.4
    for k in (1, 3, 7):
        want = brute_force_precision_recall(real, fake, k)
        got = precision_recall(real, fake, k=k, max_elements=50)  # blocks of a row or so
        assert got == pytest.approx(want, abs=1e-12)
        assert 0.0 < got[0] < 1.0 and 0.0 < got[1] < 1.0


def test_precision_recall_rejects_bad_k():
    f = np.zeros((5, 2))
    with pytest.raises(ValueError, match="k must be"):
        precision_recall(f, f, k=5)


# --------------------------------------------------------------------------------------------
# the shipped classifiers and the metrics on images


def test_shipped_classifiers_load_with_their_documented_shapes():
    from scratchgen.metrics.classifier import LeNet, pretrained_classifier

    x = np.random.default_rng(12).random((3, 1, 28, 28)).astype(np.float32)
    for name, dim, least in (("mnist", 256, 0.99), ("digits", 128, 0.96)):
        model = pretrained_classifier(name)
        assert isinstance(model, LeNet) and not model.training
        assert model.info["dataset"] == name and model.info["test_accuracy"] >= least
        assert model.features(x).shape == (3, dim) and model(x).shape == (3, 10)
        assert all(not p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="cifar"):
        pretrained_classifier("cifar")


def test_benchmark_module_reexports_the_classifier():
    import scratchgen.benchmarks.lenet as bench
    import scratchgen.metrics.classifier as cls

    assert bench.LeNet is cls.LeNet and bench.load_mnist_classifier is cls.load_classifier
    assert (bench.MNIST_MEAN, bench.MNIST_STD) == (cls.MNIST_MEAN, cls.MNIST_STD)


def test_digits_classifier_accuracy_on_its_test_split():
    from scratchgen.data import Digits
    from scratchgen.metrics.classifier import pretrained_classifier
    from scratchgen.metrics.features import class_accuracy

    model = pretrained_classifier("digits")
    test = Digits(train=False, size=28)
    acc = class_accuracy(test.images, test.labels, model)
    assert acc >= model.info["test_accuracy"] - 0.01 and acc >= 0.96


@needs_mnist
def test_mnist_classifier_accuracy_on_the_test_set():
    from scratchgen.data import MNIST
    from scratchgen.metrics.classifier import pretrained_classifier
    from scratchgen.metrics.features import class_accuracy

    model = pretrained_classifier("mnist")
    test = MNIST(train=False, data_dir=MNIST_DIR)
    acc = class_accuracy(test.images, test.labels, model, batch_size=1000)
    assert acc >= 0.99 and acc == pytest.approx(model.info["test_accuracy"], abs=1e-3)


def test_image_metrics_tell_real_digits_from_a_collapsed_generator():
    from scratchgen.data import Digits
    from scratchgen.metrics.classifier import pretrained_classifier
    from scratchgen.metrics.features import image_metrics

    model = pretrained_classifier("digits")
    train, test = Digits(train=True, size=28), Digits(train=False, size=28)
    real, other = test.images, train.images[:297]
    collapsed = train.images[train.labels == 3][:150]
    good = image_metrics(real, other, model, kid_subsets=10)
    bad = image_metrics(real, collapsed, model, kid_subsets=10)
    assert (good["n_real"], good["n_fake"], bad["n_fake"]) == (297, 297, 150)
    assert good["fd"] < 0.2 * bad["fd"] and good["kid_mean"] < 0.2 * bad["kid_mean"]
    assert good["classifier_score"] > 8.0 and bad["classifier_score"] < 1.5
    # 297 points in 128-d cover each other only partly (train vs test: ~0.7), a class ~0.1
    assert good["recall"] > 0.6 and bad["recall"] < 0.2
    assert good["precision"] > 0.6
    assert sum(good["fake_class_histogram"]) == pytest.approx(1.0)
    assert good["fake_class_kl_uniform"] < 0.02
    assert bad["fake_class_histogram"][3] > 0.95
    assert bad["fake_class_kl_uniform"] == pytest.approx(math.log(10), abs=0.25)


def test_image_metrics_reject_images_in_minus_one_one():
    from scratchgen.metrics.classifier import pretrained_classifier
    from scratchgen.metrics.features import classifier_outputs

    x = np.random.default_rng(13).random((4, 1, 28, 28)) * 2 - 1
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        classifier_outputs(x, pretrained_classifier("digits"))
    with pytest.raises(ValueError, match="grey images"):
        classifier_outputs(np.zeros((4, 3, 28, 28)), pretrained_classifier("digits"))
