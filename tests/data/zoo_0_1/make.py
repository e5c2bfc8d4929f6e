"""Writes the zoo 0.1 checkpoints of this folder and what zoo 0.1 computed from them.

Run from a checkout of zoo 0.1 (commit 1f3bf66), e.g.
``git worktree add /tmp/zoo01 1f3bf66 && cd /tmp/zoo01 && python PATH/make.py``
with zoo 0.1 first on sys.path: small models as ``zoo train`` saved them (model and
optimizer state after two steps), and their samples and log-densities.
"""
import json
import keras
import numpy as np

import zoo

keras.utils.set_random_seed(5)
out = {}
cases = {
    "realnvp_moons": dict(name="realnvp", dataset="moons", hidden_units=8, num_couplings=2),
    "vae_digits": dict(name="vae", dataset="digits", latent_dim=2, filters=4, hidden_units=8),
    "wgan_gp_digits": dict(name="wgan_gp", dataset="digits", latent_dim=4, filters=4, hidden_units=8),
}
rng = np.random.RandomState(0)
for key, kw in cases.items():
    name = kw.pop("name")
    model = zoo.get(name, **kw)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    shape = tuple(model.data_shape)
    if len(shape) == 1:
        x = rng.randn(16, *shape).astype("float32")
    else:
        x = rng.randint(0, 17, size=(16, *shape)).astype("float32")
    for _ in range(2):
        model.train_on_batch(x)
    model.save(f"{key}.keras")
    rec = {"sample": np.asarray(model.sample(4, seed=1)).tolist()}
    if hasattr(model, "log_prob") and len(shape) == 1:
        rec["x"] = x[:4].tolist()
        rec["log_prob"] = np.asarray(model.log_prob(x[:4])).tolist()
    out[key] = rec
json.dump(out, open("expected.json", "w"))
