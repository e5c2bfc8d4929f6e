"""What the base class gives every family: class conditioning (a flow's and a VAE's
class-conditional prior, the GAN's projection critic), weight averaging, and
completion with a checked mask."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import zoo
from test_contract import USER_MODELS  # noqa: F401  (puts the user's model module on the path)
from zoo.nn.class_conditional_gaussian import ClassConditionalGaussian

tfd = tfp.distributions


def moved_class_prior(model, scale=1.5, seed=0):
    """Class priors apart from each other (they start equal, at N(0, I))."""
    rng = np.random.default_rng(seed)
    prior = model.class_prior
    prior.loc.assign(scale * rng.standard_normal(prior.loc.shape).astype("float32"))
    prior.log_scale.assign(0.3 * rng.standard_normal(prior.log_scale.shape).astype("float32"))


def test_a_model_that_cannot_be_conditional_or_averaged_says_so():
    with pytest.raises(ValueError, match="cannot be class-conditional; expected num_classes=0"):
        zoo.get("iwae", dataset="digits", num_classes=3)
    with pytest.raises(ValueError, match="keeps no weight average; expected ema_decay=0"):
        zoo.get("realnvp", dataset="moons", ema_decay=0.9)
    with pytest.raises(ValueError, match="expected num_classes >= 0"):
        zoo.get("realnvp", dataset="moons", num_classes=-1)
    model = zoo.get("realnvp", dataset="moons", num_classes=3)
    assert model.sample_options["label"].default == -1 and model.get_config()["num_classes"] == 3


def test_class_conditional_gaussian_kl_and_log_prob_match_tfp():
    prior = ClassConditionalGaussian(3, (4,))
    rng = np.random.default_rng(1)
    prior.loc.assign(rng.standard_normal((3, 4)).astype("float32"))
    prior.log_scale.assign(0.5 * rng.standard_normal((3, 4)).astype("float32"))
    labels = tf.constant([2, 0, 1, 2])
    mean = rng.standard_normal((4, 4)).astype("float32")
    log_scale = 0.3 * rng.standard_normal((4, 4)).astype("float32")
    loc, prior_log_scale = prior(labels)
    p = tfd.Independent(tfd.Normal(loc, tf.exp(prior_log_scale)), 1)
    q = tfd.Independent(tfd.Normal(mean, np.exp(log_scale)), 1)
    np.testing.assert_allclose(prior.kl_from(mean, log_scale, labels).numpy(),
                               tfd.kl_divergence(q, p).numpy(), rtol=1e-5)
    z = rng.standard_normal((5, 4, 4)).astype("float32")  # samples first, as infer's
    np.testing.assert_allclose(prior.log_prob(z, labels).numpy(), p.log_prob(z).numpy(),
                               rtol=1e-5)


def test_conditional_flow_density_and_samples():
    """log p(x) without labels is the uniform mixture of the classes' log p(x | y);
    a class's samples come from its prior (encoded back, at a tiny temperature,
    they sit at the class's mean); the log_prob signature takes the label."""
    model = zoo.get("realnvp", dataset="moons", num_classes=3, hidden_units=8, num_couplings=2)
    moved_class_prior(model)
    x = np.random.default_rng(2).normal(size=(6, 2)).astype("float32")
    per_class = np.stack([model.log_prob(x, np.full(6, k, np.int32)).numpy() for k in range(3)])
    assert np.ptp(per_class, axis=0).min() > 1e-3  # the classes differ
    np.testing.assert_allclose(model.log_prob(x).numpy(),
                               np.logaddexp.reduce(per_class, axis=0) - math.log(3), rtol=1e-5)
    np.testing.assert_allclose(model.nll(x).numpy(), -model.log_prob(x).numpy(), rtol=1e-6)
    z = model.encode(model.sample(4, seed=0, label=2, temperature=1e-4)).numpy()
    np.testing.assert_allclose(z, np.broadcast_to(model.class_prior.loc.numpy()[2], z.shape),
                               atol=1e-3)
    fn, specs = model.serving_signatures()["log_prob"]
    assert [s.name for s in specs] == ["x", "label"]
    np.testing.assert_allclose(fn(x, np.full(6, 1, np.int32))["log_prob"].numpy(), per_class[1],
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"labels: integers of shape \(batch,\) in \[0, 3\)"):
        model.log_prob(x, np.full(6, 3, np.int32))


def test_conditional_vae_bound_and_samples():
    """The ELBO of x given y uses the class's prior (KL in closed form against it);
    without labels nll bounds -log p(x) under uniform classes; samples of a class
    decode latents of its prior; the elbo signature takes the label; training
    takes (x, label) batches."""
    model = zoo.get("vae", dataset="digits", num_classes=3, latent_dim=2, filters=4,
                    hidden_units=8)
    moved_class_prior(model)
    x = np.random.default_rng(3).integers(0, 17, (4, 8, 8, 1)).astype("float32")
    y = np.array([0, 2, 1, 2], np.int32)
    terms = model.evidence(x, seed=5, labels=y)
    mean, log_scale = (t.numpy() for t in model.encode(x))
    np.testing.assert_allclose(terms["kl"].numpy(),
                               model.class_prior.kl_from(mean, log_scale, y).numpy(), rtol=1e-5)
    per_class = np.stack([model.elbo(x, seed=5, labels=np.full(4, k, np.int32)).numpy()
                          for k in range(3)])
    np.testing.assert_allclose(model.nll(x, seed=5).numpy(),
                               -(np.logaddexp.reduce(per_class, axis=0) - math.log(3)), rtol=1e-5)
    fn, specs = model.serving_signatures()["elbo"]
    assert [s.name for s in specs] == ["x", "seed", "label"]
    np.testing.assert_allclose(fn(x, np.int32(5), y)["elbo"].numpy(), terms["elbo"].numpy(),
                               rtol=1e-6)
    a = model.sample(3, seed=1, label=1).numpy()
    b = model.sample(3, seed=1, label=2).numpy()
    assert a.shape == (3, 8, 8, 1) and not np.array_equal(a, b)
    model.compile(optimizer="adam")
    history = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(2), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    with pytest.raises(ValueError, match="trains on \\(x, label\\) batches"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(2), epochs=1, verbose=0)


def test_completion_keeps_what_the_mask_keeps_and_checks_the_mask():
    model = zoo.get("diagonal_gaussian", dataset="moons")
    x = np.array([[0.5, -1.0], [2.0, 3.0], [-0.25, 0.75]], np.float32)
    mask = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    completed = model.complete(x, mask, seed=4).numpy()
    assert np.array_equal(completed[mask == 1], x[mask == 1])  # bit for bit
    assert not np.any(completed[mask == 0] == x[mask == 0])
    np.testing.assert_array_equal(completed, model.complete(x, mask, seed=4).numpy())
    assert model.complete(x[:0], mask[:0], seed=4).shape == (0, 2)
    with pytest.raises(ValueError, match=r"expected mask of shape \(batch, 2\)"):
        model.complete(x, mask[:, :1], seed=0)
    with pytest.raises(ValueError, match="expected a mask of 0 \\(generate\\) and 1 \\(keep\\)"):
        model.complete(x, mask * 0.5, seed=0)
    with pytest.raises(ValueError, match="expected a mask of x's shape"):
        model.complete(x, mask[:2], seed=0)
    fn, specs = model.serving_signatures()["complete"]
    assert [s.name for s in specs] == ["x", "mask", "seed"]
    np.testing.assert_array_equal(fn(x, mask, np.int32(4))["x"].numpy(), completed)
    assert not zoo.get("realnvp", dataset="moons").can_complete
    with pytest.raises(TypeError, match="cannot complete data"):
        zoo.get("realnvp", dataset="moons").complete(x, mask)
