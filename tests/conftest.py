"""Shared fixtures: a session data_dir for tfds builds, and quiet TF logs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One tfds data_dir for the whole test session (datasets build once)."""
    path = tmp_path_factory.mktemp("tfds")
    os.environ["ZOO_DATA_DIR"] = str(path)
    return str(path)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
