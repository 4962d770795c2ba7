"""Shared test setup: one thread everywhere so results are identical run after run."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import course  # noqa: E402  (sets TensorFlow's quiet flags before anything imports it)

course.seed_everything()
