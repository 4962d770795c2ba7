"""Shared test setup: one thread everywhere so results are identical run after run."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import course  # noqa: E402  (sets TensorFlow's quiet flags before anything imports it)

course.seed_everything()


import pytest  # noqa: E402

from course import data, models  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    """The digits split every test shares (deterministic: seed 0)."""
    return data.load_digits()


@pytest.fixture(scope="session")
def keras():
    """Keras, imported once, after TensorFlow is set single-threaded and deterministic."""
    return models._tf()[1]
