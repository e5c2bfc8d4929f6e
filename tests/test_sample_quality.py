"""zoo.metrics.sample_quality: each metric against a reference or a known value."""

import warnings

import numpy as np
import pytest
import scipy.linalg
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_digits

import zoo.metrics
from zoo import datasets
from zoo.datasets import toy
from zoo.metrics import sample_quality as sq


def random_gaussian(rng, d):
    a = rng.randn(d, d)
    return rng.randn(d), a @ a.T / d + 0.1 * np.eye(d)


def scipy_frechet(mu1, cov1, mu2, cov2):
    """The usual reference: sqrtm of the product, real part."""
    with warnings.catch_warnings():  # digits' constant border pixels: singular
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(cov1 @ cov2).real
    return np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2.0 * covmean)


@pytest.fixture(scope="module")
def digits():
    return load_digits().images.reshape(-1, 64).astype(np.float64)


# ------------------------------------------------------------------------ FID
@pytest.mark.parametrize("d", [2, 16, 64])
def test_frechet_distance_matches_scipy_sqrtm(d):
    rng = np.random.RandomState(d)
    mu1, cov1 = random_gaussian(rng, d)
    mu2, cov2 = random_gaussian(rng, d)
    ours = sq.frechet_distance(mu1, cov1, mu2, cov2)
    np.testing.assert_allclose(ours, scipy_frechet(mu1, cov1, mu2, cov2), rtol=1e-6)
    assert ours > 0


def test_frechet_distance_of_commuting_gaussians_in_closed_form():
    # Diagonal covariances: sum (mu1-mu2)^2 + sum (s1 - s2)^2 with s the std devs.
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    mu1, mu2 = np.zeros(3), np.array([1.0, -1.0, 2.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    np.testing.assert_allclose(
        sq.frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2)), expected, rtol=1e-12)


def test_fid_of_a_set_against_itself_is_zero_and_matches_the_reference(digits):
    assert abs(sq.fid(digits, digits)) < 1e-8 * np.trace(np.cov(digits, rowvar=False))
    a, b = digits[:900], digits[900:]
    reference = scipy_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                              np.cov(b, rowvar=False))
    np.testing.assert_allclose(sq.fid(a, b), reference, rtol=1e-6)


def degraded(images, kind, level, seed=0):
    """Digits (n, 64) in [0, 16] with noise of std `level` or a blur of sigma `level`."""
    if level == 0:
        return images
    if kind == "noise":
        return images + np.random.RandomState(seed).randn(*images.shape) * level
    blurred = gaussian_filter(images.reshape(-1, 8, 8), sigma=(0, level, level))
    return blurred.reshape(-1, 64)


@pytest.mark.parametrize("kind, levels", [("noise", [0, 1, 2, 4, 8]),
                                          ("blur", [0, 0.5, 1, 1.5, 2])])
def test_fid_and_kid_grow_as_images_are_degraded(digits, kind, levels):
    # Raw pixels stand in for a feature network's features.
    real, test = digits[:900], digits[900:]
    fids = [sq.fid(real, degraded(test, kind, level)) for level in levels]
    kids = [sq.kid(real, degraded(test, kind, level), num_subsets=20, subset_size=400)[0]
            for level in levels]
    assert all(np.diff(fids) > 0), fids
    assert all(np.diff(kids) > 0), kids


def test_too_few_examples_for_a_covariance_says_how_many():
    with pytest.raises(ValueError, match="needs more than 64 examples, got 64: use at least 65"):
        sq.fid(np.ones((100, 64)), np.random.RandomState(0).randn(64, 64))


@pytest.mark.parametrize("a, b, match", [
    (np.ones((10, 3)), np.ones((10, 4)), "same dimension, got 3 and 4"),
    (np.ones((10, 3, 1)), np.ones((10, 3)), r"shape \(n, d\), got float64 of shape \(10, 3, 1\)"),
    (np.full((10, 3), np.nan), np.ones((10, 3)), "expected finite features, got 30 NaN"),
])
def test_bad_features_are_named(a, b, match):
    with pytest.raises(ValueError, match=match):
        sq.kid(a, b)


# ------------------------------------------------------------------------ KID
def test_kid_is_unbiased_over_random_splits_of_one_set():
    x = np.random.RandomState(1).randn(4000, 8)
    values = []
    for seed in range(200):
        order = np.random.RandomState(seed).permutation(len(x))
        values.append(sq.kid(x[order[:100]], x[order[100:200]], num_subsets=1,
                             subset_size=100)[0])
    mean, error = np.mean(values), np.std(values) / np.sqrt(len(values))
    assert abs(mean) < 3 * error, (mean, error)
    # A biased (V-statistic) estimate would sit far above: the kernel's diagonal
    # adds about E k(x, x) / m to it.
    shifted = sq.kid(x[:2000], x[2000:] + 0.3, num_subsets=10, subset_size=500)
    assert shifted[0] > 10 * shifted[1] > 0


# --------------------------------------------------------- precision / recall
def eight_gaussians(n, modes=range(8), seed=0):
    rng = np.random.RandomState(seed)
    centers = toy.EIGHT_GAUSSIANS_MODES[list(modes)]
    return centers[rng.randint(len(centers), size=n)] + rng.randn(n, 2) * toy.EIGHT_GAUSSIANS_STD


def test_precision_and_recall_of_a_set_against_itself_are_one():
    x = eight_gaussians(1000)
    assert sq.precision_recall(x, x) == (1.0, 1.0)


def test_dropping_modes_lowers_recall_not_precision():
    real = eight_gaussians(2000, seed=1)
    full = sq.precision_recall(real, eight_gaussians(2000, seed=2))
    half = sq.precision_recall(real, eight_gaussians(2000, modes=range(4), seed=2))
    assert full[0] > 0.95 and full[1] > 0.95, full
    assert half[0] > 0.95, half
    assert 0.4 < half[1] < 0.6, half  # 4 of 8 equally weighted modes
    # Samples moved off the data (the ring scaled up) lower precision, step by step.
    precisions = [sq.precision_recall(real, s * eight_gaussians(2000, seed=2))[0]
                  for s in (1.0, 1.25, 1.5, 2.0)]
    assert all(np.diff(precisions) < 0) and precisions[-1] < 0.05, precisions


# ------------------------------------------------------------------ 2-D data
def test_mode_coverage_of_the_8gaussians_dataset_and_a_collapsed_model():
    x = toy.generate("8gaussians", 20_000, seed=3)
    modes, quality = sq.mode_coverage(x, toy.EIGHT_GAUSSIANS_MODES, toy.EIGHT_GAUSSIANS_STD)
    assert modes == 8
    # An isotropic 2-D Gaussian lies within 3 std of its mean with probability
    # 1 - exp(-9/2) = 0.9889 (the modes are far apart: none is nearer another).
    assert abs(quality - (1 - np.exp(-4.5))) < 0.003, quality
    collapsed = eight_gaussians(20_000, modes=[5])  # tails reach the neighbours
    assert sq.mode_coverage(collapsed, toy.EIGHT_GAUSSIANS_MODES,
                            toy.EIGHT_GAUSSIANS_STD) == (1, pytest.approx(0.989, abs=0.01))
    far = np.full((10, 2), 100.0)
    assert sq.mode_coverage(far, toy.EIGHT_GAUSSIANS_MODES, toy.EIGHT_GAUSSIANS_STD) == (0, 0.0)


def test_mmd_is_about_zero_within_a_distribution_and_grows_with_a_shift():
    x = eight_gaussians(1000, seed=4)
    same = sq.mmd_rbf(x, eight_gaussians(1000, seed=5))
    shifts = [sq.mmd_rbf(x, eight_gaussians(1000, seed=5) + [d, 0]) for d in (0.2, 0.5, 1.0)]
    assert abs(same) < 2e-3, same
    assert 0 < shifts[0] < shifts[1] < shifts[2], shifts


def test_sliced_wasserstein_of_a_translation():
    # Translating by v moves each projection on direction t by v.t: the distance is
    # sqrt(mean((v.t)^2)), which tends to |v| / sqrt(d) over random directions.
    x = np.random.RandomState(6).randn(3000, 2)
    assert sq.sliced_wasserstein(x, x) == 0.0
    value = sq.sliced_wasserstein(x, x + [3.0, 4.0], num_projections=2000)
    np.testing.assert_allclose(value, 5.0 / np.sqrt(2.0), rtol=0.03)


def test_classifier_score_bounds():
    balanced = np.eye(10)[np.arange(1000) % 10]
    assert sq.classifier_score(balanced) == pytest.approx(10.0)
    assert sq.classifier_score(np.eye(10)[np.zeros(1000, int)]) == pytest.approx(1.0)
    assert sq.classifier_score(np.full((50, 10), 0.1)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="class probabilities"):
        sq.classifier_score(np.full((5, 10), 0.5))


class PointsModel:
    """A stand-in for a model of 2-D points: samples the given mixture modes."""

    name = "points"

    def __init__(self, modes):
        self.modes = modes

    def sample_batches(self, n, seed=0, batch_size=1000):
        for start in range(0, n, batch_size):
            yield self.sample(min(batch_size, n - start), [seed, start])

    def sample(self, n, seed):
        return eight_gaussians(n, modes=self.modes, seed=int(np.sum(seed)) + 100)


@pytest.mark.parametrize("modes, covered", [(range(8), 8), ([2], 1)])
def test_evaluate_points_on_8gaussians(modes, covered):
    data = eight_gaussians(3000, seed=0)
    metrics = sq.evaluate_points(PointsModel(modes), data, num_samples=2500, seed=1,
                                 **datasets.point_measures("8gaussians"))
    assert metrics["num_samples"] == 2500 and metrics["mmd_num_samples"] == 2000
    assert metrics["samples_per_second"] > 0
    assert metrics["modes_covered"] == covered and metrics["num_modes"] == 8
    assert metrics["high_quality_fraction"] > 0.97
    if covered == 8:  # another draw of the data: both distances near their floor
        assert abs(metrics["mmd_rbf"]) < 2e-3 and metrics["sliced_wasserstein"] < 0.2
    else:
        assert metrics["mmd_rbf"] > 0.1 and metrics["sliced_wasserstein"] > 1.0


@pytest.mark.parametrize("name", toy.TOY_NAMES)
def test_a_2d_dataset_declares_the_measures_it_adds(name):
    data = eight_gaussians(300, seed=0)
    plain = sq.evaluate_points(PointsModel(range(8)), data, num_samples=200, seed=1)
    own = sq.evaluate_points(PointsModel(range(8)), data, num_samples=200, seed=1,
                             **datasets.point_measures(name))
    assert set(own) - set(plain) == set(datasets.info(name).point_metrics)
    assert own["sliced_wasserstein"] == plain["sliced_wasserstein"]


def test_evaluate_points_refuses_non_finite_samples():
    class Broken(PointsModel):
        def sample(self, n, seed):
            return np.full((n, 2), np.nan)

    with pytest.raises(zoo.metrics.NonFiniteMetricError,
                       match=r"1000 of its 1000 samples hold NaN/Inf values \(more than 1%\)"):
        sq.evaluate_points(Broken(range(8)), eight_gaussians(1000))


def test_a_few_non_finite_samples_are_left_out_and_counted():
    # As a flow whose inverse overflows on a few latents: 5 of 1000 (0.5%).
    class AFewBad(PointsModel):
        def sample(self, n, seed):
            points = super().sample(n, seed)
            points[:5, 0] = np.inf
            return points

    data = eight_gaussians(1000, seed=0)
    metrics = sq.evaluate_points(AFewBad(range(8)), data, num_samples=1000, seed=1,
                                 modes=toy.EIGHT_GAUSSIANS_MODES, std=toy.EIGHT_GAUSSIANS_STD)
    assert metrics["non_finite_samples"] == 5 and metrics["num_samples"] == 1000
    assert np.isfinite(metrics["mmd_rbf"]) and metrics["modes_covered"] == 8
    with pytest.raises(zoo.metrics.NonFiniteMetricError, match="20 of its 1000 samples"):
        sq.draw(AFewBad(range(8)), 1000, batch_size=250)  # 5 in each of 4 batches: 2%
