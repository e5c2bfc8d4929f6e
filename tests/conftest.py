"""Shared fixtures (a session data_dir for tfds builds), quiet TF logs, and the
order of the test files."""

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


# The longest files (a minute or more each) run first: the workers take whole files
# in collection order, so the run does not end on one long file while the other
# worker idles.
LONGEST_FIRST = ("test_cli.py", "test_contract_processes.py", "test_nice_glow.py",
                 "test_neural_spline.py", "test_wgan_gp.py", "test_contract_training.py",
                 "test_ffjord.py", "test_training.py", "test_feature_networks.py",
                 "test_report.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
