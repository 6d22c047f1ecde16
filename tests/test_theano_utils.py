"""lib/theano_utils.py: float32 shared variables with static shapes, as the original's helpers."""
import numpy as np

from lib.theano_utils import floatX, intX, shared0s, sharedNs, sharedX


def test_shared0s_is_float32_zeros_of_its_own_with_a_static_shape():
    a, b = shared0s((3, 2, 5, 5), name="m"), shared0s((3, 2, 5, 5))
    for s in (a, b):
        v = s.get_value(borrow=True)
        assert v.dtype == np.float32 and v.shape == (3, 2, 5, 5) and not v.any()
        assert s.type.shape == (3, 2, 5, 5)
    assert a.name == "m"
    assert not np.shares_memory(a.get_value(borrow=True), b.get_value(borrow=True))
    a.set_value(np.ones((3, 2, 5, 5), np.float32))
    assert not b.get_value().any()
    assert shared0s((4,), dtype="int32").get_value().dtype == np.int32


def test_sharedX_copies_the_callers_array():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    s = sharedX(x)
    x[0, 0] = 100.
    assert s.get_value()[0, 0] == 0. and s.type.shape == (2, 3)
    assert sharedX(np.arange(3)).get_value().dtype == np.float32  # int64 in, floatX out


def test_sharedNs_floatX_and_intX():
    np.testing.assert_array_equal(sharedNs((2, 2), 0.5).get_value(), np.full((2, 2), 0.5, np.float32))
    assert floatX([1, 2]).dtype == np.float32 and intX([1.7, 2.2]).tolist() == [1, 2]
