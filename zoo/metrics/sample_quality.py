"""Sample-quality metrics: distances between a model's samples and the data.

Every function takes two sets of features, arrays of shape ``(n, d)`` (features of
a network for images; the points themselves for 2-D data), and computes in
float64. Lower is better for the distances (FID, KID, MMD, sliced Wasserstein);
higher for precision, recall and the classifier score.
"""

import numpy as np


def _features(x, name, min_rows=2):
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype.kind not in "iuf":
        raise ValueError(f"{name}: expected a numeric array of shape (n, d), got "
                         f"{x.dtype} of shape {x.shape}")
    if len(x) < min_rows:
        raise ValueError(f"{name}: expected at least {min_rows} rows, got {len(x)}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: expected finite features, got "
                         f"{int(np.sum(~np.isfinite(x)))} NaN/Inf entries")
    return x


def _pair(a, b, min_rows=2):
    a, b = _features(a, "features a", min_rows), _features(b, "features b", min_rows)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"expected features of the same dimension, got {a.shape[1]} "
                         f"and {b.shape[1]}")
    return a, b


def _psd_sqrt(matrix):
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def gaussian_statistics(features):
    """Mean and covariance (float64, unbiased) of features of shape (n, d).

    A full-rank covariance needs more examples than dimensions: fewer raise an
    error that says how many are needed.
    """
    x = _features(features, "features")
    n, d = x.shape
    if n <= d:
        raise ValueError(f"a covariance of {d}-dimensional features needs more than {d} "
                         f"examples, got {n}: use at least {d + 1} (10,000 is usual)")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2):
    """The Frechet distance between N(mu1, cov1) and N(mu2, cov2):
    ``|mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1^1/2 cov2 cov1^1/2)^1/2)``.

    ``tr((cov1 cov2)^1/2)`` is computed as the trace of the square root of the
    symmetric matrix ``cov1^1/2 cov2 cov1^1/2`` (same eigenvalues), by
    eigendecompositions, which stays real and stable where ``sqrtm(cov1 cov2)``
    returns complex round-off.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    root1 = _psd_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    trace_sqrt = np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None)))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)


def fid(real_features, fake_features):
    """Frechet Inception Distance between two sets of features.

    Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter, "GANs Trained by a Two
    Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017,
    https://arxiv.org/abs/1706.08500: the Frechet distance between Gaussians
    fitted to the features. It is biased upwards for few samples (compare FIDs
    only at the same sample count).
    """
    return frechet_distance(*gaussian_statistics(real_features),
                            *gaussian_statistics(fake_features))


def _polynomial_mmd2(a, b):
    """Unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3."""
    d = a.shape[1]

    def kernel(u, v):
        k = u @ v.T / d + 1.0
        return k * k * k

    kaa, kbb, kab = kernel(a, a), kernel(b, b), kernel(a, b)
    m, n = len(a), len(b)
    return ((kaa.sum() - np.trace(kaa)) / (m * (m - 1))
            + (kbb.sum() - np.trace(kbb)) / (n * (n - 1)) - 2.0 * kab.mean())


def kid(real_features, fake_features, num_subsets=100, subset_size=1000, seed=0):
    """Kernel Inception Distance: mean and standard error over random subsets.

    Binkowski, Sutherland, Arbel & Gretton, "Demystifying MMD GANs", ICLR 2018,
    https://arxiv.org/abs/1801.01401: the unbiased estimator of the squared MMD
    with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over
    `num_subsets` subsets of `subset_size` examples of each set (all of a set if
    it has fewer), drawn from `seed`. Unbiased: its expectation is 0 when both
    sets come from one distribution, so small negative values occur.

    Returns:
        ``(mean, standard_error)``, the error being the subsets' standard deviation
        over the square root of their number.
    """
    a, b = _pair(real_features, fake_features)
    if num_subsets < 1 or subset_size < 2:
        raise ValueError(f"kid: expected num_subsets >= 1 and subset_size >= 2, got "
                         f"{num_subsets} and {subset_size}")
    rng = np.random.RandomState(seed)
    m = min(subset_size, len(a), len(b))
    values = np.array([
        _polynomial_mmd2(a[rng.choice(len(a), m, replace=False)],
                         b[rng.choice(len(b), m, replace=False)])
        for _ in range(num_subsets)
    ])
    error = values.std(ddof=1) / np.sqrt(num_subsets) if num_subsets > 1 else float("nan")
    return float(values.mean()), float(error)


def _squared_distances(a, b):
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def _kth_neighbour_radii(x, k, block=1024):
    """Squared distance from each row of x to its k-th nearest other row."""
    radii = np.empty(len(x))
    for start in range(0, len(x), block):
        d2 = _squared_distances(x[start:start + block], x)
        # Column k of the sorted row: index 0 is the row itself (distance 0).
        radii[start:start + block] = np.partition(d2, k, axis=1)[:, k]
    return radii


def _inside_manifold(points, support, radii, block=1024):
    """Whether each point lies within some support point's k-NN ball."""
    inside = np.empty(len(points), dtype=bool)
    for start in range(0, len(points), block):
        d2 = _squared_distances(points[start:start + block], support)
        inside[start:start + block] = np.any(d2 <= radii[None, :], axis=1)
    return inside


def precision_recall(real_features, fake_features, k=3):
    """Improved precision and recall of a generative model.

    Kynkaanniemi, Karras, Laine, Lehtinen & Aila, "Improved Precision and Recall
    Metric for Assessing Generative Models", NeurIPS 2019,
    https://arxiv.org/abs/1904.06991: each set's manifold is the union of balls
    around its points reaching their k-th nearest neighbour; precision is the
    fraction of generated examples inside the real manifold (quality), recall the
    fraction of real examples inside the generated one (coverage).

    Returns:
        ``(precision, recall)``.
    """
    a, b = _pair(real_features, fake_features, min_rows=k + 1)
    precision = _inside_manifold(b, a, _kth_neighbour_radii(a, k)).mean()
    recall = _inside_manifold(a, b, _kth_neighbour_radii(b, k)).mean()
    return float(precision), float(recall)


def classifier_score(probabilities):
    """``exp(E_x KL(p(y|x) || p(y)))`` from a classifier's class probabilities.

    The Inception Score of Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen,
    "Improved Techniques for Training GANs", NeurIPS 2016,
    https://arxiv.org/abs/1606.03498, with the zoo's classifier of the dataset in
    place of Inception: between 1 and the number of classes, high when samples
    are confidently classified and the classes are balanced.
    """
    p = _features(probabilities, "probabilities", min_rows=1)
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("classifier_score: expected rows of class probabilities "
                         "(non-negative, summing to 1)")
    marginal = p.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(marginal)), 0.0)
    return float(np.exp(terms.sum(axis=1).mean()))


def mmd_rbf(x, y, scales=(0.5, 1.0, 2.0)):
    """Unbiased squared MMD with a mixture of Gaussian (RBF) kernels.

    Gretton, Borgwardt, Rasch, Scholkopf & Smola, "A Kernel Two-Sample Test",
    JMLR 2012: ``k(u, v) = sum_s exp(-|u - v|^2 / (2 s^2 h))`` over the `scales`
    s, with ``h`` the median squared distance between the pooled points (the
    median heuristic), so the scales are relative to the data's spread.
    """
    a, b = _pair(x, y)
    d2 = _squared_distances(np.concatenate([a, b]), np.concatenate([a, b]))
    positive = d2[d2 > 0]
    h = np.median(positive) if positive.size else 1.0
    k = sum(np.exp(-d2 / (2.0 * s * s * h)) for s in scales)
    m, n = len(a), len(b)
    kaa, kbb, kab = k[:m, :m], k[m:, m:], k[:m, m:]
    return float((kaa.sum() - np.trace(kaa)) / (m * (m - 1))
                 + (kbb.sum() - np.trace(kbb)) / (n * (n - 1)) - 2.0 * kab.mean())


def sliced_wasserstein(x, y, num_projections=256, seed=0):
    """The sliced Wasserstein-2 distance between two point sets.

    Rabin, Peyre, Delon & Bernot, "Wasserstein Barycenter and its Application to
    Texture Mixing", SSVM 2011; Bonneel et al. 2015: the root mean over random
    unit directions of the squared 1-D Wasserstein-2 distance between the
    projections, each from their sorted values (the larger set first subsampled,
    from `seed`, to the smaller's size).
    """
    a, b = _pair(x, y)
    rng = np.random.RandomState(seed)
    directions = rng.randn(a.shape[1], num_projections)
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    n = min(len(a), len(b))
    if len(a) > n:
        a = a[rng.choice(len(a), n, replace=False)]
    if len(b) > n:
        b = b[rng.choice(len(b), n, replace=False)]
    pa, pb = np.sort(a @ directions, axis=0), np.sort(b @ directions, axis=0)
    return float(np.sqrt(np.mean((pa - pb) ** 2)))


def mode_coverage(samples, centers, std, num_std=3.0, min_share=0.1):
    """Modes covered and the fraction of high-quality samples of a Gaussian mixture.

    As in Srivastava, Valkov, Russell, Gutmann & Sutton, "VEEGAN: Reducing Mode
    Collapse in GANs using Implicit Variational Learning", NeurIPS 2017,
    https://arxiv.org/abs/1705.07761: a sample is of high quality when within
    `num_std` standard deviations of its nearest mode, and a mode is covered when
    high-quality samples are nearest to it. VEEGAN counts a mode with one such
    sample; here a mode needs `min_share` of its fair share of the samples
    (``min_share * n / len(centers)``, at least one), since with thousands of
    samples the tails of one collapsed mode reach 3 std of its neighbours.

    Returns:
        ``(modes_covered, high_quality_fraction)``.
    """
    x = _features(samples, "samples", min_rows=1)
    centers = np.asarray(centers, np.float64)
    if centers.ndim != 2 or centers.shape[1] != x.shape[1]:
        raise ValueError(f"mode_coverage: expected centers of shape (modes, {x.shape[1]}), "
                         f"got {centers.shape}")
    d2 = _squared_distances(x, centers)
    nearest = d2.argmin(axis=1)
    good = np.sqrt(d2[np.arange(len(x)), nearest]) <= num_std * std
    counts = np.bincount(nearest[good], minlength=len(centers))
    min_count = max(1.0, min_share * len(x) / len(centers))
    return int(np.sum(counts >= min_count)), float(good.mean())


# How many points of each set the MMD uses: its kernel matrix is (2m)^2 float64.
MMD_POINTS = 2000


# Samples that are NaN/Inf, as a fraction of those drawn, that evaluation sets
# aside (and reports); more is an error. A flow's inverse can overflow on a few
# ordinary latents (Behrmann et al. 2021, "Understanding and Mitigating Exploding
# Inverses in Invertible Neural Networks"): that is measured, not hidden.
MAX_NON_FINITE = 0.01


def draw(model, n, seed=0, batch_size=1000, max_non_finite=MAX_NON_FINITE, options=None):
    """`n` samples of `model` from `seed` (``model.sample_batches`` with the sampler
    `options`, name -> value), without those
    that hold a NaN or Inf, and what drawing them cost and left out:
    ``(samples, {"non_finite_samples", "sampling_seconds", "samples_per_second"})``,
    the time including the sampling graph's tracing.

    Raises:
        NonFiniteMetricError: more than `max_non_finite` of the samples hold a NaN
            or Inf.
    """
    import time

    from zoo.metrics.likelihood import NonFiniteMetricError

    from zoo import progress

    began = time.perf_counter()
    samples = np.concatenate(list(progress.track(
        model.sample_batches(n, seed, batch_size, **(options or {})), "sampling", n,
        "samples", size=len)))
    seconds = time.perf_counter() - began
    finite = np.all(np.isfinite(samples.reshape(len(samples), -1)), axis=1)
    bad = int(n - finite.sum())
    if bad > max_non_finite * n:
        raise NonFiniteMetricError(
            f"{model.name}: {bad} of its {n} samples hold NaN/Inf values (more than "
            f"{max_non_finite:.0%})")
    return samples[finite], {"non_finite_samples": bad,
                             "sampling_seconds": round(seconds, 3),
                             "samples_per_second": round(n / seconds, 1)}


def evaluate_points(model, real, num_samples=10_000, seed=0, modes=None, std=None,
                    options=None):
    """Sample quality of a model of 2-D points, the features being the points.

    Draws ``min(num_samples, len(real))`` samples from `seed` and compares them
    with as many points of `real` (an array of test points): the sliced
    Wasserstein distance on all of them, the RBF-mixture MMD^2 on the first
    ``MMD_POINTS`` of each, and, given the mixture's `modes` and `std`
    (8gaussians, :func:`zoo.datasets.point_measures`), the modes covered and the
    fraction of high-quality samples. The samples are drawn with the sampler
    `options` (name -> value; None: the model's defaults).

    Returns:
        A dict of the metrics, the sample count, the sampling time and
        ``"features": "points"``. Non-finite samples are left out and counted
        (:func:`draw`).
    Raises:
        NonFiniteMetricError: more than 1% of the samples are NaN or Inf.
    """
    n = min(int(num_samples), len(real))
    if n < 2:
        raise ValueError(f"evaluate_points: expected at least 2 samples and data points, "
                         f"got {n}")
    real = np.asarray(real)[:n]
    fake, timing = draw(model, n, seed, options=options)
    m = min(len(fake), MMD_POINTS)
    metrics = {
        "features": "points",
        "num_samples": n,
        "sliced_wasserstein": sliced_wasserstein(real, fake, seed=seed),
        "mmd_rbf": mmd_rbf(real[:m], fake[:m]),
        "mmd_num_samples": m,
        **timing,
    }
    if modes is not None:
        covered, quality = mode_coverage(fake, modes, std)
        metrics.update(modes_covered=covered, num_modes=len(modes),
                       high_quality_fraction=quality)
    return metrics


def evaluate_images(model, real, network, num_samples=10_000, seed=0, k=3, options=None):
    """Sample quality of an image model against real images, in `network`'s features.

    Draws `num_samples` samples from `seed`, clips them to the network's value
    range (the data's levels: a sample a little outside it is what a PNG of it
    would show clipped), and compares the features of samples and `real`: FID,
    KID (mean and standard error over subsets of up to 1,000), precision and
    recall (k-NN manifolds, `k`), and, for a classifier, the classifier score of
    the samples and of the real images for reference. The samples are drawn with
    the sampler `options` (name -> value; None: the model's defaults).

    Returns:
        A dict of the metrics with the network's name and SHA-256, the sample
        counts, the fraction of sample values that were clipped, the samples left
        out as NaN/Inf (:func:`draw`), and the sampling time.
    Raises:
        NonFiniteMetricError: more than 1% of the samples are NaN or Inf.
        ValueError: too few samples or images for the features' covariance.
    """
    real = network.check(real, "real images")
    d = network.dimension
    for what, count in (("samples", int(num_samples)), ("real images", len(real))):
        if count <= d:
            raise ValueError(f"FID with the {d}-dimensional features of {network.name!r} "
                             f"needs more than {d} {what}, got {count}: use at least "
                             f"{d + 1} (10,000 is usual for samples)")
    fake, timing = draw(model, int(num_samples), seed, options=options)
    clipped = 0.0
    if network.value_range:
        low, high = network.value_range
        clipped = float(np.mean((fake < low) | (fake > high)))
        fake = np.clip(fake, low, high)
    (real_features, real_probabilities), (fake_features, probabilities) = (
        network.embed_reference(real), network.embed(fake, what="samples"))
    kid_mean, kid_error = kid(real_features, fake_features, seed=seed)
    precision, recall = precision_recall(real_features, fake_features, k=k)
    metrics = {
        "features": network.name,
        "features_sha256": network.sha256,
        "num_samples": int(num_samples),
        "num_real": len(real),
        "clipped_fraction": clipped,
        "fid": fid(real_features, fake_features),
        "kid": kid_mean,
        "kid_standard_error": kid_error,
        "precision": precision,
        "recall": recall,
        **timing,
    }
    if probabilities is not None:
        metrics["classifier_score"] = classifier_score(probabilities)
        metrics["classifier_score_real"] = classifier_score(real_probabilities)
    return metrics
