"""lib/data_utils.py: crops, shuffles (seeded by lib.rng at call time), OneHot, iter_data."""
import random

import numpy as np
import pytest

from lib import rng
from lib.data_utils import OneHot, center_crop, iter_data, list_shuffle, patch, shuffle


@pytest.fixture(autouse=True)
def restore_seed():
    yield
    rng.set_seed(42)


def _py2_round(v):
    """Python 2's round(): halves away from zero."""
    return int(np.floor(v + 0.5)) if v >= 0 else -int(np.floor(-v + 0.5))


@pytest.mark.parametrize("h,w,ph,pw", [(10, 10, 4, None), (9, 8, 4, 5), (7, 12, 6, 9),
                                       (64, 64, 64, None), (218, 178, 160, 128)],
                         ids=["even", "odd_h", "odd_both", "full", "celeba_like"])
def test_center_crop_uses_python2_rounding(h, w, ph, pw):
    x = np.arange(h * w * 3).reshape(h, w, 3)
    out = center_crop(x, ph, pw)
    pw = ph if pw is None else pw
    j, i = _py2_round((h - ph) / 2.), _py2_round((w - pw) / 2.)
    np.testing.assert_array_equal(out, x[j:j + ph, i:i + pw])


def test_patch_is_seeded_from_py_rng_and_inside_the_image():
    x = np.arange(20 * 30).reshape(20, 30)
    rng.set_seed(4)
    out = patch(x, 8, 6)
    ref = random.Random(4)
    j, i = ref.randint(0, 12), ref.randint(0, 24)
    np.testing.assert_array_equal(out, x[j:j + 8, i:i + 6])


def test_shuffle_arrays_uses_np_rng_at_call_time():
    X, Y = np.arange(20).reshape(10, 2), np.arange(10)
    rng.set_seed(3)
    sX, sY = shuffle(X, Y)
    perm = np.random.RandomState(3).permutation(10)
    np.testing.assert_array_equal(sX, X[perm])
    np.testing.assert_array_equal(sY, Y[perm])


def test_shuffle_strings_goes_through_list_shuffle():
    names = [f"img{i}.jpg" for i in range(8)]
    labels = list(range(8))
    rng.set_seed(5)
    s_names, s_labels = shuffle(names, labels)
    perm = np.random.RandomState(5).permutation(8)
    assert s_names == [names[i] for i in perm] and s_labels == [labels[i] for i in perm]
    rng.set_seed(5)
    assert list_shuffle(names) == [names[i] for i in perm]


def test_one_hot():
    out = OneHot([2, 0, 1, 2], 4)
    np.testing.assert_array_equal(out, np.eye(4)[[2, 0, 1, 2]])
    assert OneHot(np.array([[1], [3]])).shape == (2, 4)
    np.testing.assert_array_equal(OneHot([1], 3, negative_class=-1.), [[-1., 1., -1.]])


@pytest.mark.parametrize("n,size", [(10, 3), (9, 3), (2, 128)], ids=["ragged", "exact", "short"])
def test_iter_data(n, size):
    X, Y = np.arange(n * 2).reshape(n, 2), list(range(n))
    batches = list(iter_data(X, Y, size=size))
    assert len(batches) == -(-n // size)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), X)
    assert sum((b[1] for b in batches), []) == Y
    assert all(len(b[0]) == size for b in batches[:-1])
    single = list(iter_data(X, size=size))
    np.testing.assert_array_equal(single[0], X[:size])
