"""The VQ-VAE: nearest-neighbour codes, the straight-through gradient, the EMA
codebook, perplexity and the bound, against brute force and closed forms."""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

import zoo
from zoo.vae.vq_vae import code_perplexity

from helpers import TWO_REPLICAS

TINY = dict(latent_dim=3, num_embeddings=5, filters=8, hidden_units=8, num_residual_blocks=1)


def tiny_vq(**overrides):
    keras.utils.set_random_seed(0)
    model = zoo.get("vq_vae", dataset="digits", **{**TINY, **overrides})
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:
        v.assign(v.numpy() + 0.1 * rng.standard_normal(v.shape).astype("float32"))
    return model


def digits_batch(n=4, start=0):
    """Scikit-learn's digits as raw levels (n, 8, 8, 1)."""
    return load_digits().images[start:start + n, :, :, None].astype("float32")


def ema_closed_form(z_e, codebook, cluster_size, embedding_sum, decay, eps):
    """Appendix A.1 by hand (float64): nearest codes, counts and sums, the moving
    averages, the Laplace-smoothed sizes, the new codebook."""
    flat = z_e.reshape(-1, codebook.shape[1]).astype("float64")
    codes = np.argmin(((flat[:, None, :] - codebook[None]) ** 2).sum(-1), axis=1)
    k = len(codebook)
    counts = np.array([np.sum(codes == j) for j in range(k)], "float64")
    sums = np.array([flat[codes == j].sum(0) for j in range(k)])
    size = decay * cluster_size + (1 - decay) * counts
    total_sum = decay * embedding_sum + (1 - decay) * sums
    n = size.sum()
    smoothed = (size + eps) / (n + k * eps) * n
    return size, total_sum, total_sum / smoothed[:, None], counts


def test_codes_are_the_nearest_codebook_vectors():
    model = tiny_vq()
    assert model.latent_shape == (4, 4) and model.num_latents == 16
    rng = np.random.default_rng(1)
    z_e = rng.standard_normal((6, 4, 4, 3)).astype("float32")
    codebook = model.codebook.numpy()
    brute = ((z_e[..., None, :] - codebook) ** 2).sum(-1)  # (6, 4, 4, K)
    codes = model.nearest_codes(tf.constant(z_e)).numpy()
    assert codes.dtype == np.int32 and codes.shape == (6, 4, 4)
    np.testing.assert_array_equal(codes, brute.argmin(-1))
    np.testing.assert_allclose(model.squared_distances(tf.constant(z_e)).numpy(), brute,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.embed(codes).numpy(), codebook[codes])
    # encode is the nearest codes of the encoder's output on the levels.
    x = digits_batch()
    np.testing.assert_array_equal(
        model.encode(x).numpy(),
        (((model.encoder_output(tf.constant(x)).numpy()[..., None, :] - codebook) ** 2)
         .sum(-1).argmin(-1)))
    # reconstruct = decode(encode), and decode takes any integer dtype.
    np.testing.assert_allclose(model.decode(model.encode(x).numpy().astype("int64")).numpy(),
                               model.reconstruct(x).numpy(), rtol=1e-6, atol=1e-6)


def test_straight_through_passes_the_decoders_gradient_to_the_encoder():
    model = tiny_vq()
    x = tf.constant(digits_batch())
    with tf.GradientTape(persistent=True) as tape:
        z_e = model.encoder_output(x)
        z_q = model.embed(model.nearest_codes(z_e))
        z = model.straight_through(z_e, z_q)
        reconstruction = -tf.reduce_sum(model.decoder_log_prob(x, z))
    through_encoder = tape.gradient(reconstruction, z_e).numpy()
    assert tape.gradient(reconstruction, model.codebook) is None  # e learns from eq. 3 only
    np.testing.assert_array_equal(z.numpy(), z_q.numpy())  # forward: z_q itself
    fixed = tf.constant(z_q)
    with tf.GradientTape() as tape:
        tape.watch(fixed)
        reconstruction = -tf.reduce_sum(model.decoder_log_prob(x, fixed))
    at_z_q = tape.gradient(reconstruction, fixed).numpy()
    assert np.abs(at_z_q).max() > 1e-3
    np.testing.assert_allclose(through_encoder, at_z_q, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("ema", [False, True])
def test_loss_terms_and_the_codebook_gradient(ema):
    """loss = reconstruction + codebook (not with EMA) + beta commitment; both
    squared terms are sum min_k ||z_e - e_k||^2; the loss's gradient w.r.t. e_k is
    the codebook term's, -2/B sum over the vectors coded k of (z_e - e_k)."""
    model = tiny_vq(ema=ema, commitment_weight=0.3)
    x = digits_batch(6)
    z_e = model.encoder_output(tf.constant(x)).numpy().astype("float64")
    codebook = model.codebook.numpy().astype("float64")
    distances = ((z_e[..., None, :] - codebook) ** 2).sum(-1)
    expected = distances.min(-1).sum(axis=(1, 2)).mean()
    with tf.GradientTape() as tape:
        tape.watch(model.codebook.value)
        terms = model.compute_losses(tf.constant(x), training=True)
    t = {k: float(v) for k, v in terms.items()}
    np.testing.assert_allclose([t["codebook"], t["commitment"]], expected, rtol=1e-5)
    np.testing.assert_allclose(
        t["loss"], t["reconstruction"] + (0 if ema else t["codebook"]) + 0.3 * t["commitment"],
        rtol=1e-6)
    codes = distances.argmin(-1).reshape(-1)
    flat = z_e.reshape(-1, 3)
    grad = tape.gradient(terms["loss"], model.codebook.value)
    if ema:
        assert grad is None and all(w is not model.codebook for w in model.trainable_weights)
        return
    expected_grad = np.stack([-2.0 / len(x) * (flat[codes == k] - codebook[k]).sum(0)
                              for k in range(len(codebook))])
    np.testing.assert_allclose(tf.convert_to_tensor(grad).numpy(), expected_grad,
                               rtol=1e-4, atol=1e-6)


def test_ema_update_matches_its_closed_form():
    decay, eps = 0.9, 0.1  # large enough that the smoothing shows
    model = tiny_vq(ema=True, latent_dim=2, num_embeddings=4, ema_decay=decay, ema_epsilon=eps)
    codebook = np.array([[0.0, 0.0], [1.0, 1.0], [-1.0, 2.0], [5.0, 5.0]], "float32")
    cluster_size = np.array([2.0, 0.5, 1.0, 0.3], "float32")
    embedding_sum = np.array([[0.1, 0.2], [0.5, 0.4], [-1.0, 1.5], [1.0, 2.0]], "float32")
    model.codebook.assign(codebook)
    model.ema_cluster_size.assign(cluster_size)
    model.ema_embedding_sum.assign(embedding_sum)
    z_e = np.array([[0.1, -0.2], [0.9, 1.2], [1.1, 0.7], [-0.8, 1.9], [0.2, 0.1]], "float32")
    size, total, new, counts = ema_closed_form(z_e, codebook, cluster_size, embedding_sum,
                                               decay, eps)
    assert list(counts) == [2, 2, 1, 0]  # one code unused: its size only decays
    model.update_codebook(tf.constant(z_e[None]), model.nearest_codes(tf.constant(z_e[None])))
    np.testing.assert_allclose(model.ema_cluster_size.numpy(), size, rtol=1e-6)
    np.testing.assert_allclose(model.ema_embedding_sum.numpy(), total, rtol=1e-6)
    np.testing.assert_allclose(model.codebook.numpy(), new, rtol=1e-5)
    # The start: N_k = 1 and m_k = e_k, so that e_k = m_k / N_k.
    fresh = tiny_vq(ema=True)
    np.testing.assert_array_equal(fresh.ema_cluster_size.numpy(), 1.0)
    np.testing.assert_array_equal(fresh.ema_embedding_sum.numpy(), fresh.codebook.numpy())


def test_the_training_step_updates_the_ema_codebook():
    """A fit step (learning rate 0: the encoder stays put) moves the codebook by
    the closed form on the batch's encoder outputs."""
    model = tiny_vq(ema=True)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    x = digits_batch(8)
    z_e = model.encoder_output(tf.constant(x)).numpy()
    size, total, new, _ = ema_closed_form(
        z_e, model.codebook.numpy(), model.ema_cluster_size.numpy(),
        model.ema_embedding_sum.numpy(), model.ema_decay, model.ema_epsilon)
    model.fit(x, batch_size=8, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(model.ema_cluster_size.numpy(), size, rtol=1e-5)
    np.testing.assert_allclose(model.codebook.numpy(), new, rtol=1e-5, atol=1e-6)


# Two replicas on logical CPUs (set before TF starts, so in a fresh process): a
# fit step of the EMA model on 8 examples (4 per replica) at learning rate 0; the
# codebook after it, the stats before it and the encoder outputs of the 8.
MIRRORED = TWO_REPLICAS + r"""
config, x = json.loads(sys.stdin.read())
x = np.array(x, "float32")
with strategy.scope():
    model = zoo.get("vq_vae", dataset="digits", **config)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
before = [model.codebook.numpy(), model.ema_cluster_size.numpy(),
          model.ema_embedding_sum.numpy(), model.encoder_output(tf.constant(x)).numpy()]
model.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=1, verbose=0)
after = [model.codebook.numpy(), model.ema_cluster_size.numpy()]
print("RESULT " + json.dumps([a.tolist() for a in before + after]))
"""


@pytest.mark.slow  # a fresh process (the EMA update's closed form runs by default)
def test_ema_update_sums_counts_over_replicas():
    config = {**TINY, "ema": True, "ema_decay": 0.5}
    x = digits_batch(8, start=10)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", MIRRORED], input=json.dumps([config, x.tolist()]),
                          capture_output=True, text=True, timeout=600, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines, proc.stderr[-3000:]
    codebook, size, total, z_e, codebook_after, size_after = map(
        np.array, json.loads(lines[0][len("RESULT "):]))
    expected_size, _, expected, counts = ema_closed_form(z_e, codebook, size, total, 0.5, 1e-5)
    # Both halves of the batch count: the sizes moved by all 8 * 16 vectors.
    assert counts.sum() == 8 * 16
    np.testing.assert_allclose(size_after, expected_size, rtol=1e-5)
    np.testing.assert_allclose(codebook_after, expected, rtol=1e-4, atol=1e-6)


def test_perplexity_counts_the_codes_in_use():
    k = 6
    uniform = np.tile(np.arange(k, dtype=np.int32), 4).reshape(2, 3, 4)
    np.testing.assert_allclose(code_perplexity(uniform, k).numpy(), k, rtol=1e-6)
    np.testing.assert_allclose(code_perplexity(np.full((2, 3, 4), 2, np.int32), k).numpy(),
                               1.0, rtol=1e-6)
    codes = np.array([0, 0, 1, 3], np.int32)  # p = (1/2, 1/4, 0, 1/4, 0, 0)
    np.testing.assert_allclose(code_perplexity(codes, k).numpy(),
                               math.exp(1.5 * math.log(2)), rtol=1e-6)


def test_the_bound_adds_n_log_k():
    model = tiny_vq()
    x = digits_batch(5)
    n_log_k = 16 * math.log(5)
    evidence = {k: v.numpy() for k, v in model.evidence(x, seed=3).items()}
    np.testing.assert_allclose(evidence["kl"], n_log_k, rtol=1e-6)
    log_likelihood = model.decoder_log_prob(
        tf.constant(x), model.posterior_mode(tf.constant(x))).numpy()
    np.testing.assert_allclose(evidence["reconstruction"], -log_likelihood, rtol=1e-6)
    np.testing.assert_allclose(evidence["elbo"], log_likelihood - n_log_k, rtol=1e-6)
    np.testing.assert_allclose(model.nll(x, seed=3).numpy(), -evidence["elbo"], rtol=1e-6)
    for k in (1, 7, 100):  # the importance-weighted bound of a one-hot posterior
        np.testing.assert_allclose(model.importance_weighted_bound(x, k, seed=3).numpy(),
                                   evidence["elbo"], rtol=1e-6)
    terms = {k: float(v) for k, v in model.compute_losses(tf.constant(x)).items()}
    np.testing.assert_allclose(terms["kl"], n_log_k, rtol=1e-6)
    np.testing.assert_allclose(terms["bits_per_dim"],
                               (terms["reconstruction"] + n_log_k) / (64 * math.log(2)),
                               rtol=1e-6)
    fashion = zoo.get("vq_vae", dataset="fashion_mnist", filters=4, hidden_units=4)
    assert fashion.latent_shape == (7, 7)
    np.testing.assert_allclose(fashion.code_kl, 49 * math.log(fashion.num_embeddings))


def test_samples_decode_uniform_codes_to_levels():
    model = tiny_vq()
    samples = model.sample(6, seed=0).numpy()
    assert samples.shape == (6, 8, 8, 1)
    assert np.array_equal(samples, np.round(samples)) and 0 <= samples.min() <= samples.max() <= 16
    np.testing.assert_array_equal(samples, model.sample(6, seed=0).numpy())


# Slow: the contract's fit step and the EMA step's closed form run by default.
@pytest.mark.slow
@pytest.mark.parametrize("ema", [False, True])
def test_training_lowers_the_reconstruction(ema):
    keras.utils.set_random_seed(1)
    model = zoo.get("vq_vae", dataset="digits", latent_dim=4, num_embeddings=16, filters=16,
                    hidden_units=16, num_residual_blocks=1, ema=ema)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    train, test = digits_batch(1000), tf.constant(digits_batch(200, start=1000))
    before = model.compute_losses(test)
    model.fit(train, batch_size=64, epochs=3, verbose=0)  # 48 steps
    after = model.compute_losses(test)
    assert float(after["reconstruction"]) < 0.8 * float(before["reconstruction"])
    assert float(after["perplexity"]) > 2.0  # more than a code or two in use


def test_bad_codes_give_clear_errors():
    model = tiny_vq()
    good = np.zeros((2, 4, 4), np.int32)
    assert model.decode(good[:0]).shape == (0, 8, 8, 1)
    with pytest.raises(ValueError, match=r"expected code indices in \[0, 5\), got values in "
                                         r"\[0, 5\]"):
        model.decode(np.where(np.eye(4, dtype=bool), 5, 0)[None].astype(np.int32))
    with pytest.raises(ValueError, match=r"expected code indices in \[0, 5\)"):
        model.decode(good - 1)
    for bad in (np.zeros((2, 5, 4), np.int32), np.zeros((2, 16), np.int32), good[0]):
        with pytest.raises(ValueError, match=r"expected codes of shape \(batch, 4, 4\)"):
            model.decode(bad)
    for bad in (good + 0.5, good.astype("float32"), good.astype(bool)):
        with pytest.raises(TypeError, match=r"expected integer codes .*integer dtype.*got dtype"):
            model.decode(bad)
    with pytest.raises(TypeError, match="expected integer codes"):
        model.decode(None)
    # Inside a traced function (as in the exported signature): graph assertions.
    traced = tf.function(model.decode, input_signature=[
        tf.TensorSpec((None, None, None), tf.int32)])
    assert traced(good).shape == (2, 8, 8, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected code indices in \[0, 5"):
        traced(good + 5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected codes of shape"):
        traced(np.zeros((2, 5, 4), np.int32))
    with pytest.raises(ValueError, match="divisible by 16"):
        zoo.get("vq_vae", num_downsamplings=4)
    with pytest.raises(ValueError, match="expected 0 < ema_decay < 1"):
        zoo.get("vq_vae", ema=True, ema_decay=1.0)
