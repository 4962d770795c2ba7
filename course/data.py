"""The digits data set (8x8 grey images, 10 classes), split, scaled and cut into minibatches.

It ships with scikit-learn, so nothing is downloaded. Pixels go from 0..16 to 0..1 (float32);
labels stay int64, the dtype torch's cross-entropy expects.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class Digits:
    """A train/test split: `x_*` is float32 (N, 64) in [0, 1], `y_*` is int64 (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __repr__(self) -> str:
        return (f"Digits(train={len(self.y_train)}, test={len(self.y_test)}, "
                f"features={self.x_train.shape[1]}, classes={len(np.unique(self.y_train))})")


def load_digits(test_size: float = 0.2, seed: int = 0) -> Digits:
    """Load sklearn's digits, scale to [0, 1] and split stratified by class, the same every time."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}; "
                         "use e.g. test_size=0.2 for 20% test data")
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y)
    return Digits(*(np.ascontiguousarray(a) for a in (x_train, y_train, x_test, y_test)))


def _check_flat(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 64:
        raise ValueError(f"x must have shape (N, 64) (flat 8x8 digits), got {x.shape}; "
                         "pass data.x_train or data.x_test")
    return x


def images(x: np.ndarray) -> np.ndarray:
    """Flat (N, 64) digits as NCHW images (N, 1, 8, 8), the layout PyTorch's Conv2d takes."""
    return np.ascontiguousarray(_check_flat(x).reshape(-1, 1, 8, 8))


def images_nhwc(x: np.ndarray) -> np.ndarray:
    """Flat (N, 64) digits as NHWC images (N, 8, 8, 1), the layout Keras' Conv2D takes."""
    return np.ascontiguousarray(_check_flat(x).reshape(-1, 8, 8, 1))


def minibatches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = True,
                seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (xb, yb) batches, shuffled by Generator(seed) or in order; the last may be short."""
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    order = np.random.default_rng(seed).permutation(len(x)) if shuffle else np.arange(len(x))
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        yield x[idx], y[idx]
