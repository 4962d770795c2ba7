"""course.data: the digits split, layouts and minibatches."""
import numpy as np
import pytest

from course import data


def test_split_shapes_dtypes_and_scale(digits):
    assert digits.x_train.shape == (1437, 64) and digits.x_test.shape == (360, 64)
    assert digits.x_train.dtype == np.float32 and digits.y_train.dtype == np.int64
    both = np.concatenate([digits.x_train, digits.x_test])
    assert both.min() == 0.0 and both.max() == 1.0
    assert set(np.unique(digits.y_test)) == set(range(10))


def test_split_is_stratified(digits):
    train = np.bincount(digits.y_train) / len(digits.y_train)
    test = np.bincount(digits.y_test) / len(digits.y_test)
    assert np.max(np.abs(train - test)) < 0.01


def test_split_is_deterministic_and_seeded(digits):
    again = data.load_digits()
    np.testing.assert_array_equal(digits.x_train, again.x_train)
    np.testing.assert_array_equal(digits.y_test, again.y_test)
    other = data.load_digits(seed=1)
    assert not np.array_equal(digits.y_test, other.y_test)
    assert len(data.load_digits(test_size=0.5).y_test) == 899


def test_train_and_test_do_not_overlap(digits):
    train = {row.tobytes() for row in digits.x_train}
    overlap = sum(row.tobytes() in train for row in digits.x_test)
    assert overlap <= 2  # sklearn's digits hold a couple of duplicate images, nothing more


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1])
def test_bad_test_size(bad):
    with pytest.raises(ValueError, match="test_size"):
        data.load_digits(test_size=bad)


def test_image_layouts(digits):
    x = digits.x_test[:5]
    nchw, nhwc = data.images(x), data.images_nhwc(x)
    assert nchw.shape == (5, 1, 8, 8) and nhwc.shape == (5, 8, 8, 1)
    assert nchw.flags.c_contiguous and nhwc.flags.c_contiguous
    # pixel (row 2, column 5) of image 3 is feature 2*8+5 in both layouts
    assert nchw[3, 0, 2, 5] == nhwc[3, 2, 5, 0] == x[3, 21]


def test_image_layouts_reject_wrong_shape():
    with pytest.raises(ValueError, match=r"\(N, 64\)"):
        data.images(np.zeros((3, 63), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 64\)"):
        data.images_nhwc(np.zeros((3, 1, 8, 8), np.float32))


def test_minibatches_cover_everything_once():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10)
    batches = list(data.minibatches(x, y, 4, seed=3))
    assert [len(b) for b, _ in batches] == [4, 4, 2]
    seen = np.concatenate([yb for _, yb in batches])
    assert sorted(seen) == list(range(10)) and not np.array_equal(seen, y)
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], yb)


def test_minibatches_order_is_deterministic():
    x, y = np.zeros((50, 2)), np.arange(50)
    first = [yb for _, yb in data.minibatches(x, y, 8, seed=7)]
    again = [yb for _, yb in data.minibatches(x, y, 8, seed=7)]
    other = [yb for _, yb in data.minibatches(x, y, 8, seed=8)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_minibatches_in_order_without_shuffle():
    x, y = np.zeros((7, 2)), np.arange(7)
    got = [yb.tolist() for _, yb in data.minibatches(x, y, 3, shuffle=False)]
    assert got == [[0, 1, 2], [3, 4, 5], [6]]


def test_minibatches_bad_input():
    with pytest.raises(ValueError, match="same length"):
        list(data.minibatches(np.zeros((3, 2)), np.zeros(4), 2))
    with pytest.raises(ValueError, match="batch_size"):
        list(data.minibatches(np.zeros((3, 2)), np.zeros(3), 0))
